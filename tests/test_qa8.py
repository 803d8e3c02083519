"""qa8: a first-use pass over the product (the full-mesh topology, the FP8 sweep axes, the RL optimizer offload,
the older commands). Each test failed before the fix it names; expected values come from the inputs or the
catalog's own text, never from the engine's output."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_main as _main

ROOT = Path(__file__).resolve().parents[1]



@pytest.mark.parametrize("system, text", [("atlas-900-a2-pod", "fullmesh 8"), ("tpu-v4-pod", "torus 16x16x16")])
def test_catalog_show_system_names_its_scale_up_topology(capsys, system, text):
    """`catalog show SYSTEM` listed size, bandwidth and latency of each level but not the wiring the engine
    costs collectives on (systems.yaml `topology`: the Atlas 900 A2's 'fullmesh 8', a TPU pod's torus), so a
    reader could not see why an 8-NPU all-gather is priced below the 196 GB/s the table shows. Fix: the
    topology is a sourced field of the table and of --json."""
    code, out, _ = _main(capsys, "catalog", "show", system, "--json")
    assert code == 0
    fields = {f["field"]: f for f in json.loads(out)["fields"]}
    assert fields["scale_up_topology"]["display"] == text
    assert fields["scale_up_topology"]["source"]           # the systems.yaml entry names its sources
    code, out, _ = _main(capsys, "catalog", "show", system)
    assert code == 0 and text in out


def test_sweep_scale_up_size_cuts_the_pod_as_a_run_spec_does():
    """A sweep's `system.scale_up.size` axis kept the pod's whole wiring (tpu-v4-pod at 256 chips stayed a
    16x16x16 torus), while the same system written as a run spec, `{base: tpu-v4-pod, scale_up: {size: 256}}`,
    is cut to the configuration of that size (catalog/resolve.py: Topology.resized): llama-3.1-8b tp 8 on 256
    chips took 1.763 s in the sweep against 1.700 s from `estimate`. Fix: the sweep (and a scenario's range of
    scale_up_size) cut the topology the same way. 256 chips of a 16x16x16 torus: two whole dimensions, 16x16."""
    from trainsim.catalog.resolve import resolve_system
    from trainsim.sweep.targets import apply_system

    pod = resolve_system("tpu-v4-pod")
    swept = apply_system(pod, "system.scale_up.size", 256, scale=False)
    spec = resolve_system({"base": "tpu-v4-pod", "scale_up": {"size": 256}})
    assert swept.levels[0].topology.text() == "torus 16x16"
    assert swept.levels[0].topology == spec.levels[0].topology


def test_scenario_range_of_scale_up_size_cuts_the_pod():
    """The same rule for a scenario range of scale_up_size (scenario/ranges.py)."""
    from trainsim.catalog.resolve import resolve_system
    from trainsim.scenario.ranges import apply

    pod = resolve_system("tpu-v4-pod")
    assert apply(pod, "system", "scale_up_size", 256.0).levels[0].topology.text() == "torus 16x16"


@pytest.mark.parametrize("size, text", [(4, "fullmesh 8"), (8, "fullmesh 8"), (16, "switch")])
def test_full_mesh_grown_past_its_chips_is_not_a_mesh_of_8(size, text):
    """`{base: atlas-900-a2-pod, scale_up: {size: 16}}` kept 'fullmesh 8' on a 16-chip domain, a wiring the
    parser refuses when stated ('expected a full mesh of the level's 16 chips'); perf/topology.py then capped the
    group at 8 and priced a 16-member collective at the switch rate. Fix: like a torus that cannot be cut, a full
    mesh grown past its N chips has no known wiring and falls back to a switch (the default of an unstated
    topology); cut to fewer chips it keeps its N links per chip (4 NPUs of an 8-NPU server)."""
    from trainsim.catalog.resolve import resolve_system

    s = resolve_system({"base": "atlas-900-a2-pod", "scale_up": {"size": size}})
    assert s.levels[0].topology.text() == text


@pytest.mark.parametrize("args, field, shown", [
    (["--units", "0"], "--units", "expected a positive count, got 0"),
    (["--units", "-5"], "--units", "expected a positive count, got -5"),
    (["--chips", "-8"], "--chips", "expected a positive count, got -8"),
    (["--units", "2", "--chips", "-8"], "--units",
     "expected one fleet size, --units or --chips, not both; got --units 2 and --chips -8")])
def test_capacity_non_positive_count_names_the_value(capsys, args, field, shown):
    """`capacity --units 0` (or -5) answered 'give exactly one of --units or --chips', though exactly one was
    given: the value and what was expected were missing. Fix: one line naming both values and the field at fault."""
    code, out, err = _main(capsys, "capacity", "--system", "dgx-h100", "--days", "30", *args)
    assert code == 2 and out == ""
    assert err.strip() == f"error: {field}: {shown}"   # wording since qa32a (tests/test_qa32a.py)


@pytest.mark.parametrize("args, expected", [
    (["plan", "RUN", "--fix", "foo=3"], "error: --fix: unknown plan field 'foo'; expected one of tp, pp, vpp,"),
    (["sensitivity", "RUN", "--vary", "foo"], "error: --vary: unknown sensitivity parameter 'foo'; expected one of "
                                             "hbm_bandwidth, hbm_capacity, scale_up_bandwidth, scale_out_bandwidth, "
                                             "peak_flops")])
def test_unknown_name_without_a_close_match_says_what_was_expected(tmp_path, capsys, args, expected):
    """`plan --fix foo=3` answered "unknown plan field 'foo'" and stopped: no close match, and nothing said what a
    plan field could be. Fix: with no close match and a short list of choices, the line lists them."""
    run = tmp_path / "run.yaml"
    run.write_text("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                   "training: {tokens: 1T, seq_len: 8192, global_batch_seqs: 256, precision: bf16}\n")
    code, out, err = _main(capsys, *[run if a == "RUN" else a for a in args])
    assert code == 2 and out == ""
    assert err.startswith(expected) and len(err.strip().splitlines()) == 1


def test_no_valid_plan_message_counts_the_rejections_in_words(tmp_path, capsys):
    """`plan --fix tp=3` on 64 chips ended its reason '(chips: chips must be a multiple of ... never more chips than
    there are: 9720)': a bare number after a colon, read as part of the sentence. 64 chips is not a multiple of 3,
    so every candidate is rejected for its chips. Fix: 'N plans rejected by REASON'. (Asked now with pp=5, which
    the model's 32 layers allow; tp=3 is refused before any search: 32 heads rule it out. pp=3 now finds plans on
    48 of the 64 chips, qa22b's idle-chip fallback; pp=5 now runs on 40 of them, mono32's pass over fewer chips;
    pp=9 with tp=8 needs a multiple of 72 chips, more than the 64 there are, so no count has a plan.)"""
    run = tmp_path / "run.yaml"
    run.write_text("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                   "training: {tokens: 1T, seq_len: 8192, global_batch_seqs: 256, precision: bf16}\n")
    code, out, _ = _main(capsys, "plan", run, "--fix", "pp=9,tp=8", "--json")
    d = json.loads(out)
    assert code == 1 and d["best"] is None and d["plans_evaluated"] == 0
    (reason, n), = d["rejected"].items()
    assert reason.startswith("chips: chips must be a multiple of tp x pp x cp")
    assert f"({n:,} plans rejected by {reason})" in d["message"]
    assert f": {n})" not in d["message"]


def test_plan_against_csv_carries_the_reference_plan(tmp_path, capsys):
    """`plan --against tp=8 --csv` printed the same rows as without --against: the reference plan the table and
    --json show was dropped from the CSV. Fix: a `role` column (best, runner_up, reference) and the reference
    plan's estimate as the last row, priced with the same cost inputs; its numbers are --json's `against`."""
    import csv
    import io

    run = tmp_path / "run.yaml"
    run.write_text("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                   "training: {tokens: 1T, seq_len: 8192, global_batch_seqs: 256, precision: bf16}\n")
    code, out, _ = _main(capsys, "plan", run, "--against", "tp=8", "--json", "--top", "2",
                         "--price-per-chip-hour", "3")
    assert code == 0
    against = json.loads(out)["against"]
    code, out, _ = _main(capsys, "plan", run, "--against", "tp=8", "--csv", "--top", "2", "--price-per-chip-hour", "3")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["role"] for r in rows] == ["best", "runner_up", "reference"]
    ref = rows[-1]
    assert int(ref["plan.tp"]) == 8 == against["reference_plan"]["tp"]
    assert float(ref["tokens_per_s_per_chip"]) == pytest.approx(against["reference_tokens_per_s_per_chip"])
    # rental cost at the stated $3/chip-hour: chip-hours x 3
    assert float(ref["cost.cost_rental_usd"]) == pytest.approx(3.0 * float(ref["cost.chip_hours"]))


def test_infer_decode_memory_row_names_every_part(capsys):
    """`infer` printed 'decode memory per chip 25.6 GB (weights 2.3, KV 19.3)': the parts summed to 21.6 GB, the
    4 GB of buffers in --json's memory_per_chip_bytes left out. Fix: every part --json lists is named."""
    spec = ROOT / "examples/serving-llama-3.1-8b-h800.yaml"
    code, out, _ = _main(capsys, "infer", spec, "--json")
    mem = json.loads(out)["decode"]["memory_per_chip_bytes"]
    assert code == 0 and mem["buffers"] > 0
    assert mem["total"] == pytest.approx(sum(v for k, v in mem.items() if k != "total"))
    code, out, _ = _main(capsys, "infer", spec)
    row = " ".join(" ".join(line.strip("│ ") for line in out.splitlines()
                            if "decode memory" in line or "buffers" in line).split())
    # in GiB, as every memory table (qa12: the row printed GB beside the GiB of estimate and the catalog)
    assert f"buffers {mem['buffers'] / 2**30:.1f}" in row and f"KV {mem['kv_cache'] / 2**30:.1f}" in row


def test_one_sweep_point_is_one_point_not_one_points(tmp_path, capsys):
    """A one-point sweep printed '1 points' in `check`, `sweep` and `sweep --summary` (qa7 fixed '1 steps' in
    posttrain only). Fix: numfmt.counted, one place for a count and its noun."""
    from trainsim.numfmt import counted

    assert (counted(1, "point"), counted(0, "point"), counted(1024, "point")) == ("1 point", "0 points",
                                                                                  "1,024 points")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("base: {model: llama-3.1-8b, system: dgx-h100, chips: 8, training: {tokens: 1B, seq_len: 4096,"
                     " global_batch_seqs: 64, precision: bf16}}\naxes:\n  system.chip.hbm_bw: {scale: [1.0]}\n")
    code, out, _ = _main(capsys, "check", sweep)
    assert code == 0 and "1 point" in out and "1 points" not in out
    code, _, err = _main(capsys, "sweep", sweep, "-o", tmp_path / "r.parquet")
    assert code == 0 and "1 point evaluated" in err
    code, out, _ = _main(capsys, "sweep", "--summary", tmp_path / "r.parquet")
    assert code == 0 and "1 point:" in out and "1 points" not in out


def test_sensitivity_shows_hbm_capacity_in_gib(tmp_path, capsys):
    """`sensitivity --vary hbm_capacity` on an H100 said 'nominal 85.9 GB' while every memory table says
    '80.0 GiB' (the catalog reads the vendor's '80 GB' as GiB): the same HBM in two units. Fix: GiB here too."""
    run = tmp_path / "run.yaml"
    run.write_text("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                   "training: {tokens: 1T, seq_len: 8192, global_batch_seqs: 256, precision: bf16}\n")
    code, out, _ = _main(capsys, "sensitivity", run, "--vary", "hbm_capacity")
    assert code == 0 and "80.0 GiB" in out and "85.9 GB" not in out


def test_capacity_best_plan_batch_is_the_batch_its_plan_uses():
    """`capacity --system atlas-900-a2-pod --units 64 --days 30` printed 'dp=512 ... micro_batch=4, batch 1984
    seqs' and 'dp x micro-batch = 2,048 of 1,984 sequences': 1,984 is not a multiple of 512 x 4. The plan ran on
    2,048 (its tokens/s were 2,048 x 4,096 / (step x 512)), but a cached search re-expressed for the probe's token
    count (scenario/common._retokened) gave every estimate the search's run, with the stated batch. Fix: each
    estimate keeps its own run. Checked by definition: batch = micro-batches x dp x micro_batch, and tokens/s per
    chip = batch x seq_len / (step time x chips used)."""
    from trainsim.api import scenarios

    e = scenarios.capacity("atlas-900-a2-pod", units=64, days=30).estimate
    batch = e.run.training.batch_seqs
    assert batch == round(e.microbatches * e.plan["dp"] * e.plan["micro_batch"])
    assert e.tokens_per_s_per_chip == pytest.approx(batch * e.run.training.seq_len / (e.step_time_s * e.used))


def _spec_with(tmp_path, src: Path, old: str, new: str) -> Path:
    text = src.read_text()
    assert old in text
    p = tmp_path / src.name
    p.write_text(text.replace(old, new, 1))
    return p


def test_rollout_tp_that_does_not_divide_the_heads_is_refused(tmp_path, capsys):
    """`posttrain` with `rollout_tp: 3` for Qwen3-30B-A3B (32 attention heads) priced 3-chip vLLM servers; vLLM
    refuses to start them ('Total number of attention heads (32) must be divisible by tensor parallel size (3)',
    ModelConfig.verify_with_parallel_config). Fix: one-line input error naming the file and field."""
    spec = _spec_with(tmp_path, ROOT / "validation/rl/nemo-rl-h100-q30-32-sync.yaml", "rollout_tp: 2", "rollout_tp: 3")
    code, out, err = _main(capsys, "posttrain", spec)
    assert code == 2 and out == ""
    line = next(i for i, ln in enumerate(spec.read_text().splitlines(), 1) if ln.strip().startswith("rollout_tp:"))
    assert err.strip() == (f"error: {spec}: student.rollout_tp: expected a tensor-parallel size that divides the "
                           f"model's 32 attention heads (vLLM refuses others), got 3 (line {line})")   # qa22: the line


def test_serving_plan_tp_that_does_not_divide_the_heads_is_refused(tmp_path, capsys):
    """`infer` with `plan: {tp: 3}` for Llama 3.1 8B (32 heads) answered with a 3-chip instance. Same rule."""
    spec = tmp_path / "serve.yaml"
    spec.write_text("model: llama-3.1-8b\nsystem: hgx-h800\nchips: 3\nplan: {tp: 3}\n"
                    "serving: {input_len: 2048, output_len: 512, precision: fp8}\nlatency: {tpot_ms: 30}\n")
    code, out, err = _main(capsys, "infer", spec)
    assert code == 2 and out == ""
    assert err.strip().startswith(f"error: {spec}: plan.tp: expected a tensor-parallel size that divides the "
                                  "model's 32 attention heads")


def test_searched_serving_tp_divides_the_heads():
    """The serving search offered every power of two inside the scale-up domain: a 40-head model got tp 16 on a
    GB200 NVL72, which vLLM refuses. 40 = 2^3 x 5, so tp 1, 2, 4, 8 remain."""
    from trainsim.catalog.resolve import resolve_system
    from trainsim.inference.search import plan_grid
    from trainsim.inference.serve import setup_for
    from trainsim.model.inline import InlineModel, build_inline

    arch = build_inline(InlineModel(name="h40", layers=4, hidden=5120, heads=40, ffn=13824, vocab=32000,
                                    ffn_act="swiglu"))
    s = setup_for(arch, resolve_system("gb200-nvl72"), "bf16", "bf16")
    tps = sorted({int(t) for t in plan_grid(s, [16, 32, 64]).tp})
    assert tps == [1, 2, 4, 8]


def test_engine_error_on_a_stated_posttrain_plan_names_the_file(tmp_path, capsys):
    """A trainer plan that does not divide the cluster (31 chips, ep 8) said 'error: plan.ep: ...' with no file.
    Fix: the post-training and serving doors add the spec file to an engine error that names none. (qa22: 4 chips,
    ep 8, not 31: a dp of 31 is refused first, as not dividing the 512-sequence global batch.)"""
    spec = _spec_with(tmp_path, ROOT / "validation/rl/nemo-rl-h100-q30-32-sync.yaml", "chips: 32", "chips: 4")
    code, out, err = _main(capsys, "posttrain", spec)
    assert code == 2 and out == "" and err.startswith(f"error: {spec}: student.train_plan.ep: ")   # qa21: the field


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_sweep_deadline_days_must_be_positive(tmp_path, capsys, value):
    """`sweep --summary R --deadline-days -1` printed '0 points finish within -1 days' and exit 0; with a spec it
    ran every point before the summary. Fix: the same check as `size --days`, before any point runs."""
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("base: {model: llama-3.1-8b, system: dgx-h100, chips: 8, training: {tokens: 1B, seq_len: 4096,"
                     " global_batch_seqs: 64, precision: bf16}}\naxes:\n  system.chip.hbm_bw: {scale: [1.0]}\n")
    out_file = tmp_path / "r.parquet"
    code, out, err = _main(capsys, "sweep", sweep, "-o", out_file, "--deadline-days", value)
    assert code == 2 and out == "" and not out_file.exists()
    assert err.strip() == f"error: --deadline-days: expected a positive number of days below 10^6, got {value}"
    assert _main(capsys, "sweep", sweep, "-o", out_file)[0] == 0
    code, out, err = _main(capsys, "sweep", "--summary", out_file, "--deadline-days", value)
    assert code == 2 and out == "" and "--deadline-days: expected a positive number of days" in err


@pytest.mark.parametrize("spec, kind, command", [
    ("examples/posttrain-opd-two-clusters.yaml", "post-training", "trainsim posttrain"),
    ("examples/serving-llama-3.1-8b-h800.yaml", "serving", "trainsim infer")])
def test_report_of_another_spec_kind_names_it(tmp_path, capsys, spec, kind, command):
    """`report examples/posttrain-opd-two-clusters.yaml` said "kind: unknown scenario kind 'opd'": a post-training
    spec has a `kind` key too and was read as a scenario. Fix: report names the spec's kind and its command."""
    code, out, err = _main(capsys, "report", ROOT / spec, "-o", tmp_path / "r.html")
    assert code == 2 and out == "" and not (tmp_path / "r.html").exists()
    assert err.strip() == (f"error: {ROOT / spec}: expected a run spec or a scenario; this is a {kind} spec "
                           f"({command})")


def test_fp8_activations_stated_for_a_bf16_run_is_refused(tmp_path, capsys):
    """`training: {precision: bf16, fp8_activations: all}` ran as a BF16 run and ignored the key, while
    `fp8_recipe` with bf16 is refused ('applies only to precision fp8'); docs/run-spec.md says both are FP8 only.
    Fix: the same one-line error ('none', the truth for a BF16 run, stays accepted)."""
    run = tmp_path / "run.yaml"
    base = "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\ntraining: {tokens: 1T, seq_len: 8192, " \
           "global_batch_seqs: 256, precision: bf16, fp8_activations: %s}\n"
    run.write_text(base % "all")
    code, out, err = _main(capsys, "check", run)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {run}: training.fp8_activations: fp8_activations all applies only to precision "
                          "fp8, not bf16")
    run.write_text(base % "none")
    assert _main(capsys, "check", run)[0] == 0


def test_catalog_hbm_capacity_in_gib(capsys):
    """`catalog show nvidia-b200-hgx` said 'hbm_bytes 193.3 GB' beside its own note 'read as GiB' and the memory
    tables' '180.0 GiB'; `catalog chips` said '85.9 GB' for an H100. Fix: HBM capacity in GiB (180 GiB, 80 GiB)."""
    code, out, _ = _main(capsys, "catalog", "show", "nvidia-b200-hgx")
    assert code == 0 and "180 GiB" in out and "193.3 GB" not in out
    code, out, _ = _main(capsys, "catalog", "chips")
    row = next(line for line in out.splitlines() if "nvidia-h100-sxm5" in line)
    assert "80 GiB" in row and "85.9 GB" not in row
