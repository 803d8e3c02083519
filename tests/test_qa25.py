"""qa25: defects a sceptical user hits. Each regression test failed before its fix (the defect named in its
docstring); expected values are hand derivations written here, never the engine's own output."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import one_line, run_main, write_spec

ROOT = Path(__file__).resolve().parents[1]
BBGPT = ROOT / "validation" / "runs" / "bloomberggpt-50b-512.yaml"


# ---------------------------------------------------------------- 1. model RUN.yaml: the run's own seq_len

def test_model_of_a_run_spec_counts_attention_at_the_runs_seq_len(tmp_path, capsys):
    """`trainsim model RUN.yaml` read the run's model but counted FLOPs at the command's default 4,096 tokens, not
    the run's training.seq_len (128K here): attention 3.22e9 FLOPs/token instead of 1.03e11. Hand derivation,
    Llama 3.1 8B (32 layers, 32 heads x 128 = 4,096): causal attention averages (s + 1) / 2 keys per query, QK^T
    and AV are 2 x 2 x 4,096 FLOPs per key forward, x 3 with the backward: 6 x 32 x 4,096 x (131,072 + 1) =
    1.0308e11. --seq-len still overrides the spec's value."""
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                                "training: {tokens: 1T, seq_len: 128K, global_batch_seqs: 64}\n", "r.yaml")
    code, out, err = run_main(capsys, "model", spec, "--json")
    assert code == 0, err[-400:]
    d = json.loads(out)
    assert d["seq_len"] == 131072
    assert abs(d["flops_per_token"]["attention"] / (6 * 32 * 4096 * 131073) - 1) < 1e-9
    code, out, err = run_main(capsys, "model", spec, "--seq-len", "8K", "--json")
    assert code == 0 and json.loads(out)["seq_len"] == 8192, err[-400:]
    code, out, err = run_main(capsys, "model", "llama-3.1-8b", "--json")   # a catalog id: 4,096 as before
    assert code == 0 and json.loads(out)["seq_len"] == 4096, err[-400:]


# ---------------------------------------------------------------- 2. plan --fix zero=0 beside a sharding group

def test_plan_fix_zero_0_beside_a_sharding_group_is_refused_as_estimate_refuses_it(tmp_path, capsys):
    """BloombergGPT states training.zero_shard_group 128 (MiCS, paper sec. 3.4); `estimate` of its spec with
    plan.zero 0 is refused (spec.check_shard_group), but `plan --fix zero=0` searched 6 plans under rule 22 (dp x cp
    a multiple of 128, for an optimizer that shards nothing) and printed "no plan fits" with exit 1 -- the group
    neither refused nor ignored. Now --fix and --against refuse it the way the spec does: one line, exit 2."""
    code, out, err = run_main(capsys, "plan", BBGPT, "--fix", "zero=0")
    line = one_line(code, err, 2)
    assert "training.zero_shard_group" in line and "--fix says zero 0" in line, line
    assert "bloomberggpt-50b-512.yaml" in line, line     # the file that states the group
    code, out, err = run_main(capsys, "plan", BBGPT, "--against", "zero=0")
    line = one_line(code, err, 2)
    assert "--against says zero 0" in line, line
    body = BBGPT.read_text().replace("  zero: 3\n", "  zero: 0\n")
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path, body, "bb0.yaml"))
    assert "zero_shard_group" in one_line(code, err, 2)


# ---------------------------------------------------------------- 3. the balanced split on a stack from before it

LLAMA405_BALANCED = ("model: llama-3.1-405b\nsystem: dgx-h100\nchips: 1024\nframework: {fw}\n"
                     "training: {{tokens: 1T, seq_len: 8192, global_batch_seqs: 512, precision: bf16}}\n"
                     "plan: {{tp: 8, pp: 8, pipeline_split: balanced}}\n")


def test_balanced_pipeline_split_is_refused_on_stacks_from_before_megatron_core_0_11(tmp_path, capsys):
    """plan.pipeline_split balanced is Megatron-Core's --account-for-embedding-in-pipeline-split /
    --account-for-loss-in-pipeline-split, added by NVIDIA/Megatron-LM ef490839e8 (3 Feb 2025) and first released
    in core_v0.11.0 (git show core_v0.10.0:megatron/training/arguments.py has neither flag, core_v0.11.0 has
    both). It was priced under megatron-core-2024 (core_r0.9-0.10), nemo-2024 and the Megatron-LM 2021-2023
    stacks, which split only the decoder layers. Now one line naming plan.pipeline_split and the release, exit 2;
    megatron-bridge-2025 (Megatron-Core 0.13-0.15) keeps it."""
    for fw in ("megatron-core-2024", "nemo-2024", "megatron-lm-2023", "mindspeed-2024"):
        code, out, err = run_main(capsys, "check", write_spec(tmp_path, LLAMA405_BALANCED.format(fw=fw), f"{fw}.yaml"))
        line = one_line(code, err, 2)
        assert "plan.pipeline_split" in line and "core_v0.11.0" in line and fw in line, line
    code, out, err = run_main(capsys, "check", write_spec(tmp_path, LLAMA405_BALANCED.format(
        fw="megatron-bridge-2025"), "mb.yaml"))
    assert code == 0, err[-400:]
    # --framework applies the same rule to a run that states the split
    spec = write_spec(tmp_path, LLAMA405_BALANCED.format(fw="megatron-bridge-2025"), "mb2.yaml")
    code, out, err = run_main(capsys, "plan", spec, "--framework", "megatron-core-2024")
    assert "plan.pipeline_split" in one_line(code, err, 2)


# ---------------------------------------------------------------- 4. --emit megatron for layouts the plain flags lack

def _megatron_layout_stages(layout: str) -> list[list[str]]:
    """Megatron-Core's own reading of a layout string, restated from
    megatron/core/transformer/pipeline_parallel_layer_layout.py parse_str_to_list at d98e8a64dd: commas dropped,
    '(..)*n' then 'x*n' unrolled, stages split on '|'."""
    import re
    s = layout.replace(",", "")
    for pattern in (r'\(([^)]+)\)\*(\d+)', r'(.)\*(\d+)'):
        s = re.sub(pattern, lambda x: x.group(1) * int(x.group(2)), s)
    return [list(st) for st in s.split("|")]


def _fragment(out: str) -> str:
    start = out.index("TRAINSIM_ARGS=(")
    return out[start:out.index("\n)", start) + 2]


def test_emit_megatron_writes_a_layout_for_pp6_vpp5_on_32_layers(tmp_path, capsys):
    """Llama 3.1 8B (32 layers) at pp 6, vpp 5: 30 model chunks. The engine prices ceil(32 / 30) x 5 = 10 layers on
    each rank (any layout, Megatron-Core 0.13 on), but --emit megatron answered 'plan.vpp: 32 layers cannot be
    split over pp 6 with vpp 5' (exit 2) for a plan it had itself found. Megatron-Core's
    --pipeline-model-parallel-layout places it: 30 stages (divisible by pp 6, arguments.py), E first and L last,
    exactly 32 't' (validate_layer_layout); chunk c sits on rank c mod 6, so 1 layer per chunk + 2 left over gives
    5 or 6 layers per rank (<= 10 priced); no --num-virtual-stages-per-pipeline-rank beside it (arguments.py:
    'No more than one of ... can be set at the same time')."""
    from conftest import emitted_args
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 240\ntraining: {tokens: 1T, "
                                "seq_len: 8192, global_batch_seqs: 480}\n", "l8.yaml")
    code, out, err = run_main(capsys, "plan", spec, "--fix", "tp=1,pp=6,vpp=5", "--emit", "megatron")
    assert code == 0, err[-600:]
    words = emitted_args(_fragment(out), tmp_path)
    assert "--num-virtual-stages-per-pipeline-rank" not in words
    assert "--num-layers-per-virtual-pipeline-stage" not in words
    stages = _megatron_layout_stages(words[words.index("--pipeline-model-parallel-layout") + 1])
    assert len(stages) == 30
    flat = [u for st in stages for u in st]
    assert flat[0] == "E" and flat[-1] == "L" and flat.count("t") == 32
    per_rank = [sum(stages[j * 6 + r].count("t") for j in range(5)) for r in range(6)]
    assert sorted(per_rank) == [5, 5, 5, 5, 6, 6], per_rank


def test_emit_megatron_writes_the_balanced_split_flags(tmp_path, capsys):
    """Llama 3.1 405B (126 layers), pp 16, vpp 8, pipeline_split balanced (Llama 3 sec. 3.3.2): the engine prices
    (126 + 2) / 16 = 8 units per rank, 7 layers on the first and last; --emit megatron refused it ('126 layers
    cannot be split over pp 16 with vpp 8'), where Megatron-Core writes it as --account-for-embedding-in-pipeline-
    split --account-for-loss-in-pipeline-split with --num-virtual-stages-per-pipeline-rank 8 (transformer_block.py
    get_num_layers_to_build: 128 units / 128 chunks, one each, the first and last chunk one layer short)."""
    from conftest import emitted_args
    spec = write_spec(tmp_path, "model: llama-3.1-405b\nsystem: dgx-h100\nchips: 8192\ntraining: {tokens: 1T, "
                                "seq_len: 8192, global_batch_seqs: 2048}\nplan: {tp: 8, pp: 16, vpp: 8, "
                                "schedule: interleaved, cp: 1, zero: 1, recompute: full, "
                                "pipeline_split: balanced}\n", "l405.yaml")
    code, out, err = run_main(capsys, "plan", spec, "--emit", "megatron")
    assert code == 0, err[-600:]
    words = emitted_args(_fragment(out), tmp_path)
    assert {"--account-for-embedding-in-pipeline-split", "--account-for-loss-in-pipeline-split"} <= set(words)
    assert words[words.index("--num-virtual-stages-per-pipeline-rank") + 1] == "8"
    assert "--decoder-first-pipeline-num-layers" not in words   # Megatron asserts against the pair with them


# ---------------------------------------------------------------- 5. size: each probe's batch is the one it used

def test_size_probes_show_the_batch_each_count_used(tmp_path, capsys):
    """Llama 3.1 70B, global_batch_tokens 16M (16 x 2^20 / 8,192 = 2,048 sequences, 5% tolerance) on GB200 NVL72
    systems: `size --days 30 --unit system` answered 28 systems with 'global batch: 2,016 sequences', while its
    probe table said 2,048 for every row, the stated batch, which dp 504 (2,016 chips / tp 4) cannot split
    (2,048 / 504 is not whole; Megatron's global batch = dp x micro-batch x micro-batches). Each probe now shows
    its best plan's batch: a multiple of that plan's dp x micro-batch."""
    spec = write_spec(tmp_path, "model: llama-3.1-70b\nsystem: gb200-nvl72\nchips: '4 pods'\n"
                                "training: {tokens: 15T, seq_len: 8192, global_batch_tokens: 16M}\n", "p.yaml")
    code, out, err = run_main(capsys, "size", spec, "--days", "30", "--unit", "system", "--json")
    assert code == 0, err[-400:]
    d = json.loads(out)
    best = d["best_plan"]
    row = next(p for p in d["probes"] if p["units"] == d["units"])
    assert row["batch_seqs"] == best["global_batch_seqs"], (row, best["global_batch_seqs"])
    assert row["batch_seqs"] % (best["plan"]["dp"] * best["plan"]["micro_batch"]) == 0
    assert abs(row["batch_seqs"] / 2048 - 1) <= 0.05


def test_emit_torchtitan_lists_the_modules_of_a_stage_count_layers_per_stage_cannot_give(tmp_path, capsys):
    """Llama 3.1 8B, pp 6 x vpp 5 = 30 stages, --emit torchtitan wrote pipeline_parallel_layers_per_stage 2 with
    first / last_stage_less_layers 14 / 14, which torchtitan refuses (torchtitan/distributed/pipeline_parallel.py
    at 24e91056a, generate_llm_fqn_per_model_part: 'input_weight (14) exceeds minimum layers per stage (2)'). No
    weights build 30 stages (k = 1 needs 32 + a + b = 30; k = 2 needs a + b >= 27 with a, b <= 2), but torchtitan
    takes the stages' modules as given (module_fqns_per_model_part; qa26: written, no longer refused): 30 lists,
    32 // 30 = 1 layer each and the first 32 % 30 = 2 stages one more."""
    import tomllib
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 240\ntraining: {tokens: 1T, "
                                "seq_len: 8192, global_batch_seqs: 480}\n", "l8.yaml")
    code, out, err = run_main(capsys, "plan", spec, "--fix", "tp=1,pp=6,vpp=5", "--emit", "torchtitan")
    assert code == 0, err[-400:]
    par = tomllib.loads(out)["parallelism"]
    assert "pipeline_parallel_layers_per_stage" not in par
    fq = par["module_fqns_per_model_part"]
    assert len(fq) == 30 and fq[0] == ["tok_embeddings", "layers.0", "layers.1"] and fq[1] == ["layers.2", "layers.3"]
    assert fq[2] == ["layers.4"] and fq[-1] == ["layers.31", "norm", "output"]


def test_balanced_split_on_a_first_last_stack_needs_the_units_to_divide(tmp_path, capsys):
    """nemo-2025 (Megatron-Core 0.12: only --decoder-first/last-pipeline-num-layers, no layout) with pipeline_split
    balanced and pp 4 on Llama 3.1 8B was priced (first rank ceil(34 / 4) - 1 = 8 layers), though Megatron-Core
    0.12 builds that split from the account-for flags alone and asserts 'num_layers should be divisible by
    pipeline_model_parallel_size' on 32 + 1 + 1 = 34 units (transformer_block.py get_num_layers_to_build at
    core_v0.12.0; the first/last flags are refused beside them). Now no plan (exit 1, rule 21); pp 2 (34 / 2 = 17)
    is answered."""
    body = ("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\nframework: nemo-2025\n"
            "training: {tokens: 1T, seq_len: 8192, global_batch_seqs: 512}\n"
            "plan: {tp: 2, pp: PP, vpp: 1, pipeline_split: balanced}\n")
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path, body.replace("PP", "4"), "b4.yaml"))
    assert code == 1 and "pp must divide the number of layers" in err, (code, err[-600:])
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path, body.replace("PP", "2"), "b2.yaml"))
    assert code == 0, err[-400:]
