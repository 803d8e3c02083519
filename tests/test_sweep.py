"""Design-space sweeps (issue 9): spec expansion, the same rows in-process / on a local Dask cluster / on a running
cluster, resume after an interruption, error rows, Parquet metadata, the command line and the summary."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("distributed")

import pyarrow.parquet as pq  # noqa: E402

import trainsim  # noqa: E402
from trainsim.errors import TrainsimError  # noqa: E402
from trainsim.sweep import load_sweep, parse_sweep, run_sweep, summarize  # noqa: E402
from trainsim.sweep.writer import parts_dir  # noqa: E402

BASE = {"name": "t1b", "model": {"name": "t1b", "layers": 16, "hidden": 2048, "heads": 16, "ffn": 5504,
                                 "ffn_act": "swiglu", "vocab": 32000},
        "system": "dgx-h100", "chips": 16,
        "training": {"tokens": "100B", "seq_len": 2048, "global_batch_seqs": 256}, "plan": {"tp": 8}}

# 3 x 2 x 2 = 12 points; chips 4 is less than the fixed tp 8, so its 4 points have no valid plan (12 chips have one
# since s32: tp 8 on one server of 8, 4 idle, the plan 8 chips run)
SWEEP = textwrap.dedent("""
    name: small
    base: run.yaml
    axes:
      chips: [16, 4, 32]
      system.chip.hbm_bw: {scale: [0.5, 1.0]}
      system.scale_out.bandwidth: ["200 Gb/s", "400 Gb/s"]
""")


@pytest.fixture
def sweep_file(tmp_path):
    import yaml

    (tmp_path / "run.yaml").write_text(yaml.safe_dump(BASE))
    p = tmp_path / "small.yaml"
    p.write_text(SWEEP)
    return p


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker Dask cluster for the test (threads, tcp so a Client can join it by address); torn down after."""
    import logging

    from distributed import LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=":0",
                     silence_logs=logging.ERROR)
    yield c
    c.close()


def _table(path):
    return pq.read_table(path)


# ---------------------------------------------------------------- spec


def test_axis_forms_expand_to_the_documented_values(tmp_path):
    doc = {"base": BASE, "axes": {
        "chips": {"range": {"start": 8, "stop": 32, "step": 8}},
        "training.tokens": {"logspace": {"start": "1T", "stop": "100T", "num": 3}},
        "system.chip.hbm_bw": {"scale": {"range": {"start": 0.5, "stop": 1.5, "step": 0.5}}},
        "cluster": {"zip": {"system.scale_up.size": [8, 16], "training.global_batch_seqs": [256, 512]}},
        "uncertain": {"samples": {"n": 3, "seed": 7, "inputs": {
            "system.scale_out.bandwidth": {"low": "200 Gb/s", "high": "800 Gb/s", "dist": "loguniform"},
            "system.chip.peak_flops": {"scale": {"low": 0.9, "high": 1.0}}}}},
    }}
    s = parse_sweep(doc, base_dir=tmp_path)
    ax = {a.name: a for a in s.axes}
    assert [r[0] for r in ax["chips"].rows] == [8, 16, 24, 32]
    assert [r[0] for r in ax["training.tokens"].rows] == [1e12, 1e13, 1e14]
    assert [r[0] for r in ax["system.chip.hbm_bw"].rows] == [0.5, 1.0, 1.5]
    assert ax["system.chip.hbm_bw"].columns == ("system.chip.hbm_bw_scale",)
    assert ax["cluster"].rows == ((8, 256), (16, 512))
    draws = ax["uncertain"].rows
    assert len(draws) == 3 and all(25e9 <= bw <= 100e9 and 0.9 <= f <= 1.0 for bw, f in draws)
    assert parse_sweep(doc, base_dir=tmp_path).axes[-1].rows == draws          # fixed by the seed
    assert s.n_points == 4 * 3 * 3 * 2 * 3
    p = s.point(s.n_points - 1)
    assert p.columns["chips"] == 32 and p.columns["uncertain"] == 2 and len(p.key) == 16
    assert s.point(5).key == parse_sweep(doc, base_dir=tmp_path).point(5).key   # stable across loads
    assert len({s.point(i).key for i in range(s.n_points)}) == s.n_points


def test_catalog_glob_and_bad_targets(tmp_path):
    s = parse_sweep({"base": BASE, "axes": {"system": {"catalog": "hgx-h*"}}}, base_dir=tmp_path)
    assert [r[0] for r in s.axes[0].rows] == ["hgx-h800", "hgx-h200", "hgx-h20"]
    with pytest.raises(TrainsimError, match="did you mean system.chip.hbm_bw"):
        parse_sweep({"base": BASE, "axes": {"system.chip.hbm_bww": [1]}}, base_dir=tmp_path)
    with pytest.raises(TrainsimError, match="unknown system 'hgx-h100'"):
        parse_sweep({"base": BASE, "axes": {"system": ["hgx-h100"]}}, base_dir=tmp_path)
    with pytest.raises(TrainsimError, match="two axes"):
        parse_sweep({"base": BASE, "axes": {"chips": [8], "z": {"zip": {"chips": [8]}}}}, base_dir=tmp_path)


def test_chips_in_pods_are_read_with_each_points_system(tmp_path):
    """People state clusters in pods: "2 pods" is 2 x 8 = 16 chips of a DGX H100 (8 GPUs per NVLink domain,
    NVIDIA's DGX H100 datasheet) and 2 x 72 = 144 of a GB200 NVL72; the stated value keeps its own column."""
    doc = {"base": BASE, "axes": {"system": ["dgx-h100", "gb200-nvl72"], "chips": ["2 pods", 32]},
           "record": ["inputs"]}
    spec = parse_sweep(doc, base_dir=tmp_path)
    run_sweep(spec, tmp_path / "p.parquet", quiet=True)
    rows = _table(tmp_path / "p.parquet").to_pylist()
    assert [(r["system"], r["axis.chips"], r["chips"]) for r in rows] == [
        ("dgx-h100", "2 pods", 16), ("dgx-h100", "32", 32), ("gb200-nvl72", "2 pods", 144),
        ("gb200-nvl72", "32", 32)]
    with pytest.raises(TrainsimError, match=r"axes.chips\[0\]: .*whole scale-up domains.*'3 bananas'"):
        parse_sweep({"base": BASE, "axes": {"chips": ["3 bananas"]}}, base_dir=tmp_path)
    with pytest.raises(TrainsimError, match=r"axes.chips\[0\]: .*'1.5 pods'"):
        parse_sweep({"base": BASE, "axes": {"chips": ["1.5 pods"]}}, base_dir=tmp_path)


# ---------------------------------------------------------------- execution


def test_three_modes_give_identical_results(sweep_file, tmp_path, cluster):
    spec = load_sweep(sweep_file)
    a = run_sweep(spec, tmp_path / "inproc.parquet", quiet=True)
    b = run_sweep(spec, tmp_path / "workers.parquet", workers=2, batch=2, quiet=True)
    c = run_sweep(spec, tmp_path / "sched.parquet", scheduler=cluster.scheduler_address, batch=3, quiet=True)
    assert (a.mode, b.workers, c.workers) == ("in-process", 2, 2)
    ta, tb, tc = (_table(tmp_path / f) for f in ("inproc.parquet", "workers.parquet", "sched.parquet"))
    assert ta.num_rows == 12 and ta.column("point").to_pylist() == list(range(12))
    assert ta.equals(tb) and ta.equals(tc)
    assert ta.schema.metadata == tb.schema.metadata == tc.schema.metadata
    assert not parts_dir(tmp_path / "inproc.parquet").exists()


def test_resume_after_an_interruption_gives_the_same_file(sweep_file, tmp_path):
    spec = load_sweep(sweep_file)
    full = tmp_path / "full.parquet"
    run_sweep(spec, full, quiet=True)
    out = tmp_path / "resumed.parquet"
    first = run_sweep(spec, out, batch=2, flush_rows=1, stop_after_batches=2, quiet=True)   # "killed" after 2 batches
    assert not first.complete and not out.exists() and parts_dir(out).is_dir()
    with pytest.raises(TrainsimError, match="--resume"):
        run_sweep(spec, out, quiet=True)
    second = run_sweep(spec, out, resume=True, batch=5, quiet=True)
    assert (second.resumed, second.evaluated, second.complete) == (4, 8, True)   # finished points not redone
    assert _table(out).equals(_table(full)) and _table(out).schema.metadata == _table(full).schema.metadata
    again = run_sweep(spec, out, resume=True, quiet=True)
    assert again.evaluated == 0 and again.complete
    # parts of another sweep are refused, not mixed
    run_sweep(spec, tmp_path / "other.parquet", batch=2, flush_rows=1, stop_after_batches=1, quiet=True)
    changed = parse_sweep({"base": BASE, "axes": {"chips": [16, 32]}}, base_dir=sweep_file.parent)
    with pytest.raises(TrainsimError, match="different sweep spec"):
        run_sweep(changed, tmp_path / "other.parquet", resume=True, quiet=True)


def test_invalid_points_are_error_rows_not_crashes(tmp_path):
    doc = {"base": BASE, "axes": {"chips": [16, 4],
                                  "system.chip": ["nvidia-h100-sxm5", "cambricon-mlu590"],
                                  "model.kv_heads": [8, 5]}}
    spec = parse_sweep(doc, base_dir=tmp_path)
    res = run_sweep(spec, tmp_path / "e.parquet", quiet=True)
    rows = {(r["chips"], r["system.chip"], r["model.kv_heads"]): r for r in _table(tmp_path / "e.parquet").to_pylist()}
    assert res.complete and len(rows) == 8
    ok = rows[(16, "nvidia-h100-sxm5", 8)]
    assert ok["error_kind"] is None and ok["fits"] and ok["plan.tp"] == 8 and ok["days"] > 0
    assert ok["binding"] and ok["cost_rental_usd"] > 0
    bad = rows[(4, "nvidia-h100-sxm5", 8)]
    assert bad["error_kind"] == "no-plan" and "multiple of tp" in bad["error"] and bad["step_time_s"] is None
    assert rows[(16, "cambricon-mlu590", 8)]["error_kind"] == "input"
    assert "BF16 peak" in rows[(16, "cambricon-mlu590", 8)]["error"]
    assert rows[(16, "nvidia-h100-sxm5", 5)]["error_kind"] == "input"          # 16 heads, 5 kv heads
    assert res.errors == 7


def test_a_point_equals_the_plain_search(sweep_file, tmp_path):
    spec = load_sweep(sweep_file)
    run_sweep(spec, tmp_path / "r.parquet", quiet=True)
    row = _table(tmp_path / "r.parquet").to_pylist()[3]                 # chips 16, HBM x1, 400 Gb/s
    doc = {**BASE, "chips": 16, "system": {"base": "dgx-h100", "scale_out": {"bandwidth": "400 Gb/s"}}}
    best = trainsim.search(trainsim.parse_run(doc)).best
    assert row["step_time_s"] == pytest.approx(best.step_time_s, rel=1e-12)
    assert row["plan.pp"] == best.plan["pp"] and row["plan.micro_batch"] == best.plan["micro_batch"]


def test_parquet_metadata_holds_the_spec_and_version(sweep_file, tmp_path):
    spec = load_sweep(sweep_file)
    run_sweep(spec, tmp_path / "m.parquet", quiet=True)
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(tmp_path / "m.parquet").metadata.items()}
    assert meta["trainsim.version"] == trainsim.__version__
    assert meta["trainsim.sweep.spec"] == SWEEP
    assert "dgx-h100" in meta["trainsim.sweep.base_run"]
    assert [a["name"] for a in json.loads(meta["trainsim.sweep.axes"])] == ["chips", "system.chip.hbm_bw",
                                                                             "system.scale_out.bandwidth"]


# ---------------------------------------------------------------- summary and command line


def test_summary_frontier_meets_the_deadline(sweep_file, tmp_path):
    spec = load_sweep(sweep_file)
    out = tmp_path / "s.parquet"
    run_sweep(spec, out, quiet=True)
    rows = [r for r in _table(out).to_pylist() if r["error_kind"] is None]
    deadline = sorted(r["days"] for r in rows)[len(rows) // 2]
    s = summarize(out, deadline_days=deadline)
    assert s["points"] == 12 and s["ok"] == 8 and s["errors"] == {"no-plan": 4}
    meeting = [r for r in rows if r["days"] <= deadline]
    assert s["meeting_deadline"] == len(meeting)
    assert s["frontier"]["cheapest_rental"]["cost_rental_usd"] == min(r["cost_rental_usd"] for r in meeting)
    assert s["frontier"]["fewest_chips"]["chips"] == min(r["chips"] for r in meeting)
    assert s["frontier"]["fastest"]["days"] == min(r["days"] for r in rows)
    assert [p["value"] for p in s["per_axis"]["chips"]] == [16, 4, 32]
    assert s["per_axis"]["chips"][1]["best"] is None


def test_command_line_runs_resumes_and_summarises(sweep_file, tmp_path):
    out = tmp_path / "cli.parquet"
    run = subprocess.run([sys.executable, "-m", "trainsim", "sweep", str(sweep_file), "-o", str(out), "--quiet"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert _table(out).num_rows == 12
    again = subprocess.run([sys.executable, "-m", "trainsim", "sweep", str(sweep_file), "-o", str(out), "--resume"],
                           capture_output=True, text=True)
    assert again.returncode == 0 and "already complete" in again.stderr
    args = [sys.executable, "-m", "trainsim", "sweep", "--summary", str(out), "--deadline-days", "100", "--json"]
    import importlib.util

    has_mpl = importlib.util.find_spec("matplotlib") is not None
    if has_mpl:
        args += ["--plots", str(tmp_path / "plots")]
    summ = subprocess.run(args, capture_output=True, text=True)
    assert summ.returncode == 0, summ.stderr
    s = json.loads(summ.stdout)
    assert s["frontier"]["fewest_chips"]["chips"] == 16
    if has_mpl:
        names = sorted(p.name for p in (tmp_path / "plots").iterdir())
        assert "heatmap_chips__system.chip.hbm_bw_scale.png" in names and "line_chips.png" in names
    text = subprocess.run([sys.executable, "-m", "trainsim", "sweep", "--summary", str(out)], capture_output=True,
                          text=True)
    assert text.returncode == 0 and "frontier" in text.stdout and "no-plan 4" in text.stdout
    bad = subprocess.run([sys.executable, "-m", "trainsim", "sweep", "--summary", str(sweep_file)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error:")


def test_fp8_recipe_and_fp8_activations_are_axis_targets(tmp_path):
    # Per-tensor current scaling casts with an amax pass and a cast (5 bytes moved per element against delayed
    # scaling's 3; Transformer Engine Float8CurrentScalingQuantizer vs Float8Quantizer): same FLOPs, never faster.
    # MXFP8 needs Blackwell tensor cores, so on H100 that point is an input error, as is a recipe with bf16.
    doc = {"base": {**BASE, "training": {**BASE["training"], "precision": "fp8"}},
           "axes": {"prec": {"zip": {"training.precision": ["fp8", "fp8", "fp8", "bf16"],
                                     "training.fp8_recipe": ["delayed", "current", "mxfp8", "delayed"]}},
                    "training.fp8_activations": ["gemm_inputs", "none"]}}
    spec = parse_sweep(doc, base_dir=tmp_path)
    res = run_sweep(spec, tmp_path / "f.parquet", quiet=True)
    rows = {(r["training.precision"], r["training.fp8_recipe"], r["training.fp8_activations"]): r
            for r in _table(tmp_path / "f.parquet").to_pylist()}
    assert res.complete and len(rows) == 8
    for act in ("gemm_inputs", "none"):
        delayed, current = rows[("fp8", "delayed", act)], rows[("fp8", "current", act)]
        assert delayed["error_kind"] is None and current["error_kind"] is None
        assert current["tokens_per_s_per_chip"] <= delayed["tokens_per_s_per_chip"]
        assert rows[("fp8", "mxfp8", act)]["error_kind"] == "input"
        assert "Blackwell" in rows[("fp8", "mxfp8", act)]["error"]
        assert rows[("bf16", "delayed", act)]["error_kind"] == "input"
        assert "applies only to precision fp8" in rows[("bf16", "delayed", act)]["error"]
    with pytest.raises(TrainsimError, match="fp8_recipee"):
        parse_sweep({"base": BASE, "axes": {"training.fp8_recipee": ["delayed"]}}, base_dir=tmp_path)
