"""Uneven pipeline stages with virtual stages, as each stack's flags write them (parallel/validity.py rules 23 and
24, ``middle_ranks_ok`` / ``stage_flags_ok``; trainsim/emit.py ``megatron_stage_args``).

Each rule has a hand-written plan the framework accepts and one it refuses, with the framework's own assertion text
(NVIDIA/Megatron-LM at the commits named; Ascend/MindSpeed-LLM c77308a1). The emit tests run the search, write its
best plan as flags and read the flags back with the framework's rules re-derived here by hand, not with the code's
own functions: the first 31 layers of DeepSeek-V3 at pp 2 were written as --decoder-first-pipeline-num-layers 31
with --num-virtual-stages-per-pipeline-rank 8, which Megatron-Core refuses (31 is not a multiple of 8)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import one_plan, run_main
from trainsim.frameworks import frameworks, stage_flags
from trainsim.model.load import resolve_model
from trainsim.parallel.schedules import code
from trainsim.parallel.validity import check
from trainsim.spec import load_run

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"
RL = Path(__file__).resolve().parents[1] / "validation" / "rl"
IL, F1B = code("interleaved"), code("1f1b")


def _code(arch, pp, vpp, flags, first, last, schedule=None, units=(0, 0)):
    """check()'s reason code for one plan of ``pp`` x ``vpp`` on pp x 8 chips (dp 8, 240 micro-batches, a multiple of
    every pp here: rules 8, 10 and 11 hold) with the run's stated stages and the stack's ``flags``."""
    sched = schedule if schedule is not None else (IL if vpp > 1 else F1B)
    p = one_plan(pp=pp, vpp=vpp, dp=8, schedule=sched)
    return int(check(p, arch, pp * 8, 4096, 1920.0, first_stage_layers=first, last_stage_layers=last,
                     stage_flags=flags, split_units=units)[0])


@pytest.fixture(scope="module")
def dsv3():
    arch = resolve_model("deepseek-v3")
    assert arch.n_layers == 61
    return arch


@pytest.fixture(scope="module")
def llama405():
    arch = resolve_model("llama-3.1-405b")
    assert arch.n_layers == 126
    return arch


def test_profiles_name_the_megatron_core_they_run():
    """megatron-core-2024 (core_r0.9 / 0.10) and nemo-2024 (0.7-0.9): flags without vpp; nemo-2025 (0.12,
    3cdfd613): multiples of vpp; the Megatron-Bridge and Primus stacks (0.13 on): a layout; MindSpeed: its list."""
    want = {"megatron-core-2024": "decoder_no_vpp", "nemo-2024": "decoder_no_vpp", "nemo-2025": "decoder_vpp_multiple",
            "megatron-bridge-2025": "layout", "megatron-bridge-2026": "layout", "primus-megatron-2025": "layout",
            "mindspeed-2024": "num_layer_list", "mindspeed-2025": "num_layer_list", "mindspeed-2026": "num_layer_list"}
    got = {fw: stage_flags(fw) for fw in frameworks()}
    assert {k: got[k] for k in want} == want
    assert all(got[fw] == "layout" for fw in got if fw not in want)   # no Megatron-Core flags: rule 3 alone


def test_middle_ranks_split_the_rest_evenly(dsv3):
    """transformer_block.py get_num_layers_to_build (fa8bb5921b to d98e8a64dd): 'With uneven pipelineing the left
    over layers must be divisible by left over stages'. 61 layers, pp 8, first 7, last 6: 48 over 6 ranks = 8,
    accepted (the Megatron-Bridge DeepSeek-V3 GB200 recipe's sizes); first 6, last 6: 49 over 6, refused. A layout
    (Megatron-Core 0.13 on) or MindSpeed's list places 49 as 9, 8, 8, 8, 8, 8."""
    assert _code(dsv3, 8, 1, "decoder_vpp_multiple", 7, 6) == 0
    assert _code(dsv3, 8, 1, "decoder_vpp_multiple", 6, 6) == 23
    assert _code(dsv3, 8, 1, "decoder_no_vpp", 6, 6) == 23
    assert _code(dsv3, 8, 1, "layout", 6, 6) == 0
    assert _code(dsv3, 8, 1, "num_layer_list", 6, 6) == 0


def test_megatron_core_0_10_refuses_uneven_stages_with_vpp(dsv3):
    """core_r0.10.0 transformer_block.py lines 56-59: with first/last stage sizes, 'Uneven number of layer not
    compatible with interleaved pipeline schedule'. 61 layers, pp 8, first 7, last 6: vpp 1 accepted, vpp 2
    refused; without stated sizes an uneven split (61 over 8 x 2) is refused too, 64 over 8 x 2 is even."""
    assert _code(dsv3, 8, 1, "decoder_no_vpp", 7, 6) == 0
    assert _code(dsv3, 8, 2, "decoder_no_vpp", 7, 6) == 24
    assert _code(dsv3, 8, 2, "decoder_no_vpp", None, None) == 24
    arch64 = resolve_model("llama-3.1-8b")   # 32 layers: 32 / (8 x 2) = 2 per chunk
    assert _code(arch64, 8, 2, "decoder_no_vpp", None, None) == 0


def test_megatron_core_0_12_needs_multiples_of_vpp(dsv3):
    """transformer_config.py __post_init__ at 3cdfd613 (lines 779-842): 'number of layers at first stage: {n} must
    be divisible by virtual pipeline parallel degree {vpp}', the same 'at last stage', and 'number of layers on
    each middle pipeline rank: {n} must be divisible by virtual pipeline parallel degree'. 61 layers: pp 8, vpp 2,
    first 8, last 5 -> 5 is odd, refused (the Megatron-Bridge B200 recipe writes these sizes as a layout,
    Et*4|(t*4|)*14tmL, which a 0.13-on stack takes); first 7, last 6 at vpp 2 -> 7 is odd, refused; pp 4, vpp 4,
    first 16, last 13 -> 13, refused (Kimi K2's recipe, a layout too). 32 layers: pp 4, vpp 2, first 6, last 10 ->
    16 / 2 = 8 per middle rank, all even, accepted; at vpp 4, 6 and 10 are not multiples of 4, refused; pp 4,
    vpp 2, first 4, last 10 -> 18 / 2 = 9 per middle rank, odd, refused."""
    assert _code(dsv3, 8, 2, "decoder_vpp_multiple", 8, 5) == 24
    assert _code(dsv3, 8, 2, "decoder_vpp_multiple", 7, 6) == 24
    assert _code(dsv3, 4, 4, "decoder_vpp_multiple", 16, 13) == 24
    assert _code(dsv3, 8, 2, "layout", 8, 5) == 0
    assert _code(dsv3, 4, 4, "layout", 16, 13) == 0
    arch = resolve_model("llama-3.1-8b")          # 32 layers
    assert _code(arch, 4, 2, "decoder_vpp_multiple", 6, 10) == 0     # 16 / 2 = 8 per middle rank: 6, 8, 8, 10
    assert _code(arch, 4, 4, "decoder_vpp_multiple", 6, 10) == 24    # 6 and 10 are not multiples of 4
    assert _code(arch, 4, 2, "decoder_vpp_multiple", 4, 10) == 24    # 18 / 2 = 9 per middle rank, odd


def test_balanced_split_is_the_other_way_megatron_core_0_12_writes_stated_stages(llama405):
    """NeMo 2.x's Llama 3.1 405B recipe (validation/runs/nemo-2504-llama31-405b-gb200-128-fp8.yaml, NeMo 25.04 on
    Megatron-Core 0.12): pp 8, vpp 8 with account_for_embedding/loss_in_pipeline_split, 126 + 2 = 128 units,
    16 per rank, 2 per chunk: first and last 15 decoder layers. 15 is not a multiple of 8, yet NVIDIA ran it:
    __post_init__ at 3cdfd613 (lines 843-888) checks only 'num_layers: 128 after enable
    account_for_embedding_in_pipeline_split or account_for_loss_in_pipeline_split must be divisible by
    pipeline_model_parallel_size 8' and 'number of layers on each pipeline rank: 16 ... must be divisible by
    virtual_pipeline_model_parallel_size 8'. 14 and 16 at pp 8, vpp 8 are not that split and 14 is not a multiple of
    8: refused; under Megatron-Core 0.10 (no account-for flags, no vpp beside uneven stages) 15 and 15 are refused."""
    assert _code(llama405, 8, 8, "decoder_vpp_multiple", 15, 15) == 0
    assert _code(llama405, 8, 8, "decoder_vpp_multiple", 14, 16) == 24
    assert _code(llama405, 8, 8, "decoder_no_vpp", 15, 15) == 24
    # pp 16, vpp 8, 7 + 7 (Megatron-Bridge 26.06 GB200 rows): 128 / 16 = 8 per rank, a multiple of 8
    assert _code(llama405, 16, 8, "decoder_vpp_multiple", 7, 7, units=(1, 1)) == 0
    # pp 16, vpp 4: 8 per rank is a multiple of 4 too, and 7 is not: the balanced split again
    assert _code(llama405, 16, 4, "decoder_vpp_multiple", 7, 7) == 0


def test_mindspeed_list_refuses_virtual_stages_and_dualpipev(dsv3):
    """MindSpeed-LLM c77308a1 mindspeed_llm/features_manager/pipeline_parallel/num_layer_list.py validate_args:
    'Dynamic pipeline model and virtual pipeline cannot be enabled at the same time.' and 'Dynamic pipeline model
    and dualpipev cannot be enabled at the same time.' 61 layers, pp 4, first 16: 1F1B accepted (16,15,15,15);
    vpp 2 refused; DualPipe (run as dualpipev) refused."""
    assert _code(dsv3, 4, 1, "num_layer_list", 16, None) == 0
    assert _code(dsv3, 4, 2, "num_layer_list", 16, None) == 24
    assert _code(dsv3, 4, 1, "num_layer_list", 16, None, schedule=code("dualpipe")) == 24


def test_megatron_core_0_12_unstated_uneven_split_needs_multiples(dsv3):
    """Without stated sizes the emitter writes first / middle / last counts (emit.stage_split); under Megatron-Core
    0.12 every one a multiple of vpp, so vpp must divide the layers: 61 layers at pp 8, vpp 2 (61 odd) refused; 32
    layers at pp 3, vpp 2: 32 / 2 = 16 chunks' worth, ceil(32 / 6) = 6 per chunk pair -> 10, 12, 10, accepted;
    32 layers at pp 6, vpp 4: M = ceil(32 / 24) = 2 -> 4 x 8 = 32 on the middle ranks leaves nothing for the ends,
    refused."""
    assert _code(dsv3, 8, 2, "decoder_vpp_multiple", None, None) == 24
    arch = resolve_model("llama-3.1-8b")
    assert _code(arch, 3, 2, "decoder_vpp_multiple", None, None) == 0
    assert _code(arch, 6, 4, "decoder_vpp_multiple", None, None) == 24
    assert _code(arch, 6, 4, "layout", None, None) == 0


# ---------------------------------------------------------------- the emitted flags, read back by hand


def _args(out: str) -> dict[str, str]:
    """The emitted bash array as {flag: value} ('' for a switch)."""
    body = out[out.index("TRAINSIM_ARGS=(") + len("TRAINSIM_ARGS=("):out.rindex(")")]
    got = {}
    for line in body.strip().splitlines():
        flag, _, value = line.strip().partition(" ")
        got[flag] = value.strip('"')
    return got


def _layout_ranks(layout: str, pp: int) -> tuple[list[int], int]:
    """Decoder layers per pipeline rank of a --pipeline-model-parallel-layout string (no parentheses) and its vpp,
    with PipelineParallelLayerLayout's checks: chunks a multiple of pp, the embedding first, the loss last, each
    once (pipeline_parallel_layer_layout.py at d98e8a64dd)."""
    chunks = []
    for c in layout.split("|"):
        units = []
        for m in re.finditer(r"([EtmL])(?:\*(\d+))?", c):
            units += [m.group(1)] * int(m.group(2) or 1)
        chunks.append(units)
    assert len(chunks) % pp == 0
    flat = [u for c in chunks for u in c]
    assert flat[0] == "E" and flat[-1] == "L" and flat.count("E") == 1 and flat.count("L") == 1
    vpp = len(chunks) // pp
    return [sum(chunks[j * pp + r].count("t") for j in range(vpp)) for r in range(pp)], vpp


def _check_megatron(a: dict[str, str], n_layers: int, flags: str) -> list[int] | None:
    """The decoder layers per rank the emitted Megatron-LM flags build, asserting the rules of the stack's
    Megatron-Core as read in the sources above; None for an even split."""
    pp = int(a["--pipeline-model-parallel-size"])
    vpp = int(a.get("--num-virtual-stages-per-pipeline-rank", 0)) or None
    if "--num-layers-per-virtual-pipeline-stage" in a:
        per_chunk = int(a["--num-layers-per-virtual-pipeline-stage"])
        assert n_layers % (pp * per_chunk) == 0                       # an even split
        return None
    if "--pipeline-model-parallel-layout" in a:
        assert flags == "layout"                                       # only Megatron-Core 0.13 on has it
        ranks, _ = _layout_ranks(a["--pipeline-model-parallel-layout"], pp)
        assert sum(ranks) == n_layers
        return ranks
    if "--account-for-embedding-in-pipeline-split" in a:
        assert flags != "decoder_no_vpp"                               # core_r0.11.0 on
        units = n_layers + 2
        assert units % pp == 0 and (vpp is None or (units // pp) % vpp == 0)
        q = units // pp
        return [q - 1] + [q] * (pp - 2) + [q - 1]
    first = a.get("--decoder-first-pipeline-num-layers")
    last = a.get("--decoder-last-pipeline-num-layers")
    if first is None and last is None:
        assert n_layers % (pp * (vpp or 1)) == 0
        return None
    f, la = (int(first) if first else None), (int(last) if last else None)
    if vpp:
        assert flags != "decoder_no_vpp"     # 'Uneven number of layer not compatible with interleaved ...'
        assert all(x is None or x % vpp == 0 for x in (f, la))          # 'must be divisible by virtual pipeline ...'
    if flags == "decoder_vpp_multiple":
        assert not (f is not None and la is not None and pp == 2)     # 3cdfd613 divides by 0 middle ranks
    k = pp - (f is not None) - (la is not None)
    rest = n_layers - (f or 0) - (la or 0)
    assert (rest > 0) == (k > 0) and (k == 0 or rest % k == 0)      # 'left over layers must be divisible ...'
    if k and vpp:
        assert (rest // k) % vpp == 0                                  # 'each middle pipeline rank ... divisible'
    mid = rest // k if k else 0
    return ([f if f is not None else mid] + [mid] * (pp - 2) + [la if la is not None else mid])[:pp]


_DSV3 = """
name: stage32 {name}
model: deepseek-v3
system: dgx-h100
chips: {chips}
{framework}training: {{tokens: 1T, seq_len: 4096, global_batch_seqs: 512, precision: bf16}}
plan: {{pp: {pp}, ep: 8, {plan}}}
"""


@pytest.mark.parametrize("framework, pp, plan, ranks", [
    # the defect: bridge-2026's search picks vpp 8 for 31 + 30 at pp 2; the layout writes 31 and 30
    ("", 2, "first_stage_layers: 31, last_stage_layers: 30", [31, 30]),
    # Megatron-Core 0.12 cannot: the search keeps vpp 1 (or a multiple), the first flag alone at pp 2
    ("nemo-2025", 2, "first_stage_layers: 31, last_stage_layers: 30", [31, 30]),
    ("megatron-core-2024", 2, "first_stage_layers: 31, last_stage_layers: 30", [31, 30]),
    # a last stage 13 (Kimi K2's recipe's sizes on DeepSeek-V3's 61 layers) with the interleaved schedule
    ("", 4, "vpp: 4, schedule: interleaved, first_stage_layers: 16, last_stage_layers: 13", [16, 16, 16, 13]),
    ("nemo-2025", 4, "first_stage_layers: 16, last_stage_layers: 13", [16, 16, 16, 13]),
])
def test_emitted_moe_stages_are_what_megatron_takes(tmp_path, capsys, framework, pp, plan, ranks):
    spec = tmp_path / "run.yaml"
    spec.write_text(_DSV3.format(name=framework or "default", pp=pp, plan=plan, chips=256,
                                 framework=f"framework: {framework}\n" if framework else ""))
    code_, out, err = run_main(capsys, "plan", spec, "--emit", "megatron")
    assert code_ == 0, err
    a = _args(out)
    got = _check_megatron(a, 61, stage_flags(framework or "megatron-bridge-2026"))
    assert got == ranks, out


def test_emitted_dense_interleaved_stages(capsys):
    """Llama 3.1 405B, NeMo 25.04 (Megatron-Core 0.12), pp 8, vpp 8, first = last = 15: the account-for flags
    (the recipe's own), not --decoder-first-pipeline-num-layers 15 beside vpp 8, which 3cdfd613 refuses."""
    code_, out, err = run_main(capsys, "plan", RUNS / "nemo-2504-llama31-405b-gb200-128-fp8.yaml", "--emit",
                               "megatron")
    assert code_ == 0, err
    a = _args(out)
    assert "--decoder-first-pipeline-num-layers" not in a
    assert _check_megatron(a, 126, "decoder_vpp_multiple") == [15] + [16] * 6 + [15]


def test_emitted_recipe_layouts(capsys):
    """Megatron-Bridge 25.09 DeepSeek-V3 on 1,024 H100 (pp 8, vpp 4, first 7, last 6: run_script.py's layout
    'Et|(tt|)*30mL') and 26.06 Kimi K2 on GB300 (pp 4, vpp 4, 16 and 13): neither pair is multiples of vpp nor the
    balanced split ((61 + 2) / 8 and / 4 are not whole), so the emitter writes a layout with the stated sizes."""
    for name, ranks in (("megatron-bridge-perf-dsv3-h100-1024", [7] + [8] * 6 + [6]),
                        ("megatron-bridge-2606-kimi-k2-gb300-256-mxfp8", [16, 16, 16, 13])):
        code_, out, err = run_main(capsys, "plan", RUNS / f"{name}.yaml", "--emit", "megatron")
        assert code_ == 0, err
        a = _args(out)
        assert _check_megatron(a, 61, "layout") == ranks, name
        _, vpp = _layout_ranks(a["--pipeline-model-parallel-layout"], len(ranks))
        assert vpp == 4


def test_emitted_mindspeed_list_sums_to_the_layers(tmp_path, capsys):
    """mindspeed-2026, 61 layers at pp 4 with first 16 (256 chips; pp 5 on 320): the search keeps vpp 1 and no
    dualpipev (rule 24), and the list is 16,15,15,15 (len == pp: 'len(args.num_layer_list) != args.pipeline_model_parallel_size'); pp 5, first
    16, last 13: 32 over 3 middle ranks is 11, 11, 10 (the old list wrote 10, 10, 10: 59 layers)."""
    for pp, plan, want in ((4, "first_stage_layers: 16", "16,15,15,15"),
                           (5, "first_stage_layers: 16, last_stage_layers: 13", "16,11,11,10,13")):
        spec = tmp_path / f"ms{pp}.yaml"
        spec.write_text(_DSV3.format(name="ms", pp=pp, plan=plan, chips=64 * pp,
                                     framework="framework: mindspeed-2026\n"))
        code_, out, err = run_main(capsys, "plan", spec, "--emit", "mindspeed")
        assert code_ == 0, err
        a = _args(out)
        assert a["--num-layer-list"] == want
        assert sum(map(int, want.split(","))) == 61
        assert "--num-layers-per-virtual-pipeline-stage" not in a and "--schedules-method" not in a


def test_published_stated_stages_pass_their_stack():
    """Every validation spec that states first/last stage sizes passes rules 23 and 24 under its own stack (a recipe
    NVIDIA ran is ground truth: were one refused, the rule would be wrong). 47 specs state them (26 RL students with
    NeMo RL v0.4's four, 21 training runs; 14 with vpp > 1, on megatron-bridge-2025/2026, nemo-2025 and torchtitan-2024)."""
    import yaml
    checked, refused, interleaved = [], [], 0
    for path in sorted(RUNS.glob("*.yaml")) + sorted(RL.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        st = doc.get("student") or {}
        for fw, plan, own in ((doc.get("framework"), doc.get("plan") or {}, True),
                              (st.get("train_framework"), st.get("train_plan") or {}, False)):
            first, last = plan.get("first_stage_layers"), plan.get("last_stage_layers")
            if (first is None and last is None) or not fw:
                continue
            arch = load_run(path).arch if own else resolve_model(st["model"])
            pp, vpp = int(plan["pp"]), int(plan.get("vpp") or 1)
            sched = code(plan.get("schedule") or ("interleaved" if vpp > 1 else "1f1b"))
            got = _code(arch, pp, vpp, stage_flags(fw), first, last, schedule=sched)
            checked.append(path.name)
            interleaved += vpp > 1
            if got in (23, 24):
                refused.append((path.name, fw, pp, vpp, first, last, got))
    assert refused == []
    assert len(checked) == 47, len(checked)
    assert interleaved == 14, interleaved


_LLAMA_EVEN = """
name: even-split stack {fw}
model: llama-3.1-8b
system: dgx-h100
chips: 64
framework: {fw}
training: {{tokens: 1T, seq_len: 4096, global_batch_seqs: 512, precision: bf16}}
plan: {{tp: 8, pp: 4, {plan}}}
"""


@pytest.mark.parametrize("fw", ["megatron-lm-2021", "megatron-lm-2022", "megatron-lm-2023", "metaseq"])
def test_even_split_stacks_refuse_stated_stages(tmp_path, capsys, fw):
    """Megatron-LM v2.5 (2021) megatron/model/transformer.py ParallelTransformer.__init__: 'num_layers must be
    divisible by pipeline_model_parallel_size'; 23.04 _get_num_layers: 'num_layers must be divisible by
    transformer_pipeline_model_parallel_size', every rank num_layers // that size, except rank 0 holding none under
    --standalone-embedding-stage (lmcafee/embed-standalone, merged 10c6ad06f6, 8 Feb 2022). No flag sizes a first or
    last stage: Llama 3.1 8B's 32 layers at pp 4 with first 6, last 10 cannot be run, and the one-line error (exit 2)
    names the field and the stack; without the stated sizes the even split (8 per rank) is accepted."""
    spec = tmp_path / "run.yaml"
    spec.write_text(_LLAMA_EVEN.format(fw=fw, plan="first_stage_layers: 6, last_stage_layers: 10"))
    code_, out, err = run_main(capsys, "estimate", spec)
    assert code_ == 2, out
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "first_stage_layers" in line and fw in line and "evenly" in line
    spec.write_text(_LLAMA_EVEN.format(fw=fw, plan="micro_batch: 1"))
    code_, out, err = run_main(capsys, "estimate", spec)
    assert code_ == 0, err


def test_balanced_split_with_mtp_on_megatron_core_0_12(tmp_path, capsys):
    """NeMo 25.04 (Megatron-Core 0.12, 3cdfd613): --account-for-embedding/loss-in-pipeline-split count the embedding
    and the loss, not the MTP modules (transformer_block.py get_num_layers_to_build: num_layers += 1 per option),
    and the MTP modules are built on the last pipeline stage on top of its layers
    (multi_token_prediction.py get_mtp_num_layers_to_build: mtp_num_layers on is_pipeline_last_stage(), else 0).
    DeepSeek-V3, 61 layers + 1 MTP module, pp 7: (61 + 2) / 7 = 9 per rank, so 8 decoder layers on the first rank,
    9 on each middle one, 8 (+ the MTP module) on the last; with vpp 3, 9 / 3 = 3 per chunk. Rule 21 accepts it; the
    emitter writes the account-for flags (it refused the plan, asking for a layout 0.12 does not have) and the engine
    prices those ranks (it took 8 + 9 x 5 + 7, the MTP module counted as a unit as a 0.13-on layout places it)."""
    import yaml

    from trainsim.api import as_run
    from trainsim.frameworks import run_plan_rules
    from trainsim.perf.memory import rank_layers
    from trainsim.plan_estimate import context
    doc = {"name": "mtp balanced", "model": "deepseek-v3", "system": "dgx-h100", "chips": 448, "framework": "nemo-2025",
           "training": {"tokens": 1e12, "seq_len": 4096, "global_batch_seqs": 896, "precision": "bf16"},
           "plan": {"tp": 1, "pp": 7, "ep": 64, "cp": 1, "zero": 1, "micro_batch": 1, "recompute": "full",
                    "pipeline_split": "balanced"}}
    run = as_run(doc)
    assert sum(lk.n_layers for lk in run.arch.mtp) == 1
    for vpp in (1, 3):
        p = one_plan(pp=7, vpp=vpp, dp=64, ep=64, schedule=IL if vpp > 1 else F1B)
        assert tuple(float(x[0]) for x in rank_layers(context(run), p)) == (8.0, 9.0, 8.0)
    rules = run_plan_rules(run)
    assert rules["split_units"] == (1, 1)                  # the embedding and the loss, not the MTP module
    for vpp, want in ((1, 0), (3, 0), (2, 21)):            # 63 / (7 x 2) is not whole: 'should be divisible by vp_size'
        p = one_plan(pp=7, vpp=vpp, dp=8, schedule=IL if vpp > 1 else F1B)   # 56 chips, 224 = 4 x 56 sequences
        assert int(check(p, run.arch, 56, 4096, 224.0, **rules)[0]) == want, vpp
    spec = tmp_path / "run.yaml"
    spec.write_text(yaml.safe_dump(doc))
    code_, out, err = run_main(capsys, "plan", spec, "--emit", "megatron")
    assert code_ == 0, err
    a = _args(out)
    assert "--account-for-embedding-in-pipeline-split" in a and "--account-for-loss-in-pipeline-split" in a
    assert "--pipeline-model-parallel-layout" not in a and "--decoder-first-pipeline-num-layers" not in a
    assert _check_megatron(a, 61, "decoder_vpp_multiple") == [8] + [9] * 5 + [8]



def test_stage_flags_agree_with_uneven_stages(monkeypatch):
    """stage_flags refines the profile's uneven_stages: Megatron-Core's --decoder-first/last flags exist exactly on
    the first/last stacks (Megatron-Core 0.9-0.12), a layout or MindSpeed's layer list on the any-layout ones; every
    shipped profile agrees, and a profile that contradicts itself is one line naming its field."""
    import trainsim.frameworks as F
    from trainsim.errors import TrainsimError

    for fw in ("megatron-core-2024", "nemo-2024", "nemo-2025"):
        assert F.stage_layout(fw) == "first_last" and F.stage_flags(fw).startswith("decoder")
    for fw in ("megatron-bridge-2026", "mindspeed-2025", "torchtitan-2024"):
        assert F.stage_layout(fw) == "any" and not F.stage_flags(fw).startswith("decoder")
    bad = {"x1": {"uneven_stages": "first_last", "stage_flags": "layout"},
           "x2": {"uneven_stages": True, "stage_flags": "decoder_vpp_multiple"},
           "x3": {"uneven_stages": "first_last"}}
    monkeypatch.setattr(F, "profile", lambda fw, field="--framework": bad[fw])
    for fw in bad:
        with pytest.raises(TrainsimError) as e:
            F.stage_flags(fw)
        assert f"frameworks.{fw}.stage_flags" in str(e.value)
