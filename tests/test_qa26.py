"""qa26: defects a demanding user hits. Each regression test failed before its fix (the defect named in its
docstring); expected values are hand derivations written here, never the engine's own output."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import one_line, run_main, write_spec


# ---------------------------------------------------------------- 1. the zero axis beside a stated sharding group

TT_GROUP = ("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 16\nframework: {fw}\n"
            "training: {{tokens: 1T, seq_len: 4096, global_batch_seqs: 64, zero_shard_group: 8}}\n"
            "plan: {{tp: 2, pp: 1, cp: 1, micro_batch: 1, recompute: full}}\n")


def test_search_offers_only_sharding_zero_stages_beside_a_stated_group(tmp_path, capsys):
    """training.zero_shard_group 8 with zero unstated: the search offered zero 0, which shards nothing (and which
    `estimate` of the same plan refuses, spec.check_shard_group); it even ranked it first (79.7 GiB of 80).
    Hand count: torchtitan-2024 offers zero 0, 2, 3 (framework_schedules.yaml); tp 2 on 16 chips leaves dp 8
    (dp 4 on 8 chips breaks rule 22: dp x cp a multiple of 8), pp 1 runs 1f1b only: one plan per zero stage, so
    2 plans (zero 2, 3) beside the group, not 3."""
    spec = write_spec(tmp_path, TT_GROUP.format(fw="torchtitan-2024"), "tt.yaml")
    code, out, err = run_main(capsys, "plan", spec, "-q", "--top", "100", "--json")
    assert code == 0, err[-400:]
    d = json.loads(out)
    zeros = sorted(p["plan"]["zero"] for p in [d["best"]] + d["runners_up"])
    assert zeros == [2, 3] and d["plans_evaluated"] == 2, (zeros, d["plans_evaluated"])


def test_sharding_group_beside_a_stack_without_a_sharded_optimizer_isone_line(tmp_path, capsys):
    """megatron-lm-2021 offers zero 0 only (no distributed optimizer before Megatron-LM 2022), so a stated group
    has nothing to shard: one line naming the field and the stack, exit 2, from the spec and from --framework
    (before: 'bug: unexpected IndexError' once the search stopped offering zero 0)."""
    body = TT_GROUP.format(fw="megatron-lm-2021")
    line = one_line(*run_main(capsys, "check", write_spec(tmp_path, body, "m.yaml"))[::2], 2)
    assert "training.zero_shard_group" in line and "megatron-lm-2021 offers zero 0 only" in line, line
    spec = write_spec(tmp_path, TT_GROUP.format(fw="torchtitan-2024").replace("recompute: full", "recompute: none"),
                      "tt.yaml")
    code, out, err = run_main(capsys, "plan", spec, "-q", "--framework", "megatron-lm-2021")
    line = one_line(code, err, 2)
    assert "training.zero_shard_group" in line and "megatron-lm-2021 offers zero 0 only" in line, line


# ---------------------------------------------------------------- 2. check types a sweep's axis values

SWEEP = ("name: s\nbase: {{model: llama-3.1-8b, system: dgx-h100, chips: 64, training: {{tokens: 1T, seq_len: 4096, "
         "global_batch_seqs: 256}}}}\naxes:\n  {axis}\n")


def test_check_refuses_sweep_axis_values_no_point_could_take(tmp_path, capsys):
    """`trainsim check` passed these sweeps ('2 points'), and `sweep` then recorded an input error at the bad point
    ('point 1: plan.tp: Input should be a valid integer'; 'unknown model'): each value below fails its run-spec field
    alone (PlanSpec tp / zero / cp / dp, InlineModel hidden, the model catalog, the assumption table), so it is refused
    with the spec in one line naming the axis position, exit 2, by check and by sweep alike."""
    bad = {"plan.tp: [1, two]": ("axes.plan.tp[1]", "integer"),
           "plan.tp: [1, 3.5]": ("axes.plan.tp[1]", "fractional"),
           "plan.zero: [1, 7]": ("axes.plan.zero[1]", "0, 1, 2 or 3"),
           "plan.cp: [1, -2]": ("axes.plan.cp[1]", "positive"),
           "plan.dp: [8, 0]": ("axes.plan.dp[1]", "greater than 0"),
           "model: [llama-3.1-8b, llama-9]": ("axes.model[1]", "unknown model 'llama-9'"),
           "model: [llama-3.1-8b, 5]": ("axes.model[1]", "got 5"),
           "system.chip: [nvidia-h100-sxm5, 5]": ("axes.system.chip[1]", "got 5"),
           "assumptions.pue: [1.2, x]": ("axes.assumptions.pue[1]", "expected a number"),
           "model.layers: [32, 40]": ("axes.model.layers", "needs an inline model")}
    for k, (axis, (field, words)) in enumerate(bad.items()):
        spec = write_spec(tmp_path, SWEEP.format(axis=axis), f"s{k}.yaml")
        line = one_line(*run_main(capsys, "check", spec)[::2], 2)
        assert field + ":" in line and words in line, (axis, line)
    spec = write_spec(tmp_path, SWEEP.format(axis="plan.tp: [1, two]"), "sw.yaml")
    line = one_line(*run_main(capsys, "sweep", spec, "-o", tmp_path / "o.parquet", "-q")[::2], 2)
    assert "axes.plan.tp[1]" in line, line
    ok = write_spec(tmp_path, SWEEP.format(axis="plan.tp: [1, 2]"), "ok.yaml")   # valid values still pass
    code, out, err = run_main(capsys, "check", ok)
    assert code == 0 and "2 points" in out, err[-400:]


# ---------------------------------------------------------------- 3. torchtitan: interleaved stage counts the emitter wrote

def test_torchtitan_search_plans_with_vpp_are_written_module_by_module(tmp_path, capsys):
    """Under torchtitan-2024 the search offered pp 5 x vpp 4 (20 stages) on Llama 3.1 8B's 32 layers, and
    `--emit torchtitan` refused it ('torchtitan cannot split 32 layers into pp 5 x vpp 4'): no
    pipeline_parallel_layers_per_stage k gives 20 stages (k = 1: 32 + a + b >= 32 stages; k = 2: a + b = 7 or 8
    with a, b <= (32 + a + b) // 20 = 1). torchtitan runs any such split from module_fqns_per_model_part
    (torchtitan/models/llama3/infra/pipeline.py pipeline_llama at 24e91056a; 9dec370's pipeline_parallel_split_points
    in 2024), so the emitter lists the stages: 32 // 20 = 1 layer each, the first 32 % 20 = 12 stages 2; stage s on
    rank s mod 5, so rank 0 holds stages 0, 5, 10, 15 = 2 + 2 + 2 + 1 = 7 layers and rank 4 stages 4, 9, 14, 19 =
    2 + 2 + 1 + 1 = 6."""
    import tomllib
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 240\nframework: torchtitan-2024\n"
                                "training: {tokens: 1T, seq_len: 8192, global_batch_seqs: 480}\n", "l8.yaml")
    code, out, err = run_main(capsys, "plan", spec, "-q", "--fix", "tp=1,pp=5,vpp=4", "--emit", "torchtitan")
    assert code == 0, err[-400:]
    fq = tomllib.loads(out)["parallelism"]["module_fqns_per_model_part"]
    layers = [[m for m in st if m.startswith("layers.")] for st in fq]
    assert [len(x) for x in layers] == [2] * 12 + [1] * 8
    assert sum(layers, []) == [f"layers.{i}" for i in range(32)]       # every layer once, in order
    assert fq[0][0] == "tok_embeddings" and fq[-1][-2:] == ["norm", "output"]
    assert [sum(len(layers[s]) for s in range(r, 20, 5)) for r in range(5)] == [7, 7, 6, 6, 6]


# ---------------------------------------------------------------- 4. --json with no answer (exit 1)

def test_infer_posttrain_compare_json_say_why_there_is_no_answer(tmp_path, capsys):
    """`infer --json`, `posttrain --json` and `compare --json` printed nothing on stdout when they exit 1 (plan --json and estimate
    --json print their search result). Now one JSON object: answer null, the field, the spec line, the reason and
    the nearest alternatives the error line names; still exit 1 with the line on stderr. Hand figures: Llama 3.1
    405B at BF16 holds 405.9e9 x 2 B = 756 GiB of weights, over one H800's 80 GB, so no plan fits on 1 chip."""
    spec = write_spec(tmp_path, "name: big\nmodel: llama-3.1-405b\nsystem: hgx-h800\nchips: 1\nserving: "
                                "{input_len: 2048, output_len: 512, precision: bf16, kv_precision: bf16}\n", "s.yaml")
    code, out, err = run_main(capsys, "infer", spec, "--json")
    assert code == 1 and "no prefill plan fits in HBM" in err, (code, err[-400:])
    d = json.loads(out)
    assert d["answer"] is None and d["exit_code"] == 1 and d["field"] == "serving" and d["line"] == 5
    assert "fits in HBM" in d["reason"] and float(d["reason"].split("need ")[1].split()[0]) > 756
    assert d["alternatives"] and all(a.startswith(("chips: ", "serving.")) for a in d["alternatives"])
    body = (Path(__file__).resolve().parents[1] / "examples" / "posttrain-opd-two-clusters.yaml").read_text()
    body = body.replace("math: {system: hgx-h800, chips: 256}", "math: {system: hgx-h800, chips: 1}").replace(
        "model: qwen3-30b-a3b, cluster: math", "model: llama-3.1-405b, cluster: math")
    code, out, err = run_main(capsys, "posttrain", write_spec(tmp_path, body, "pt.yaml"), "--json")
    assert code == 1 and "cannot prefill" in err, (code, err[-400:])
    d = json.loads(out)
    assert d["answer"] is None and d["field"] == "teachers" and "cannot prefill" in d["reason"]
    assert d["alternatives"] and "chips" in d["alternatives"][0]
    nofit = write_spec(tmp_path, "model: llama-3.1-405b\nsystem: dgx-h100\nchips: 8\ntraining: {tokens: 1T, "
                                 "seq_len: 8192, global_batch_seqs: 64}\n", "n.yaml")
    code, out, err = run_main(capsys, "compare", nofit, nofit, "--json")   # 756 GiB of weights on 8 x 80 GB
    assert code == 1 and "no plan fits" in err, (code, err[-400:])
    d = json.loads(out)
    assert d["answer"] is None and d["field"] == "plan" and d["spec"].endswith("n.yaml") and d["alternatives"]
