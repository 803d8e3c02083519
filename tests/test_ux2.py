"""Issue 19, second pass: cost overrides on `report` and `sweep`, `--csv` wherever `--json` is, the scenario
summary first with money in dollars and human labels, a chart on every scenario page. Expected numbers are derived
by hand in each test (catalog datasheet values named where used)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from trainsim.cli import app

ROOT = Path(__file__).resolve().parents[1]
DGX_A100_W_PER_GPU = 6500 / 8     # NVIDIA DGX A100 datasheet: 6.5 kW max system power, 8 GPUs


def invoke(*args: str):
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res


def exit_code(capsys, *args: str) -> tuple[int, str]:
    """Exit code and stderr of the console entry point (one-line errors, exit 2 for bad input)."""
    from trainsim.cli.handler import run

    code = run(app, [str(a) for a in args])
    return code, capsys.readouterr().err


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# ---------------------------------------------------------------- cost overrides on report and sweep


def test_report_takes_the_cost_overrides(run_a100, tmp_path, capsys):
    out = tmp_path / "r.html"
    res = invoke("report", run_a100, "-o", out, "--no-sweeps", "--json", "--price-per-chip-hour", "2",
                 "--pue", "1.5", "--electricity", "0.1")
    assert res.exit_code == 0, res.output
    est = json.loads(res.output)["estimate"]
    c = est["cost"]
    hours = 100e9 / (est["tokens_per_s_per_chip"] * 64) / 3600      # tokens / (tokens/s per chip x chips)
    assert c["chip_hours"] == pytest.approx(64 * hours)
    assert c["cost_rental_usd"] == pytest.approx(2.0 * 64 * hours)
    assert c["energy_mwh"] == pytest.approx(DGX_A100_W_PER_GPU * 1.5 * 64 * hours / 1e6)
    assert c["electricity_usd"] == pytest.approx(DGX_A100_W_PER_GPU * 1.5 * 64 * hours / 1e3 * 0.1)
    assert [c["inputs"][k]["source"] for k in ("rental_usd_per_chip_hour", "pue", "electricity_usd_per_kwh")] == \
        ["--price-per-chip-hour", "--pue", "--electricity"]
    assert c["basis"] == "without failures"
    assert "$" in out.read_text(encoding="utf-8")
    code, err = exit_code(capsys, "report", run_a100, "-o", tmp_path / "s.html", "--pue", "0.5")
    assert code == 2 and "--pue" in err and len(err.strip().splitlines()) == 1


def test_sweep_cost_columns_use_the_overrides(run_a100):
    pytest.importorskip("pyarrow")
    from trainsim.sweep import parse_sweep
    from trainsim.sweep.evaluate import evaluate_point

    doc = {"base": str(run_a100), "axes": {"chips": [64, 128]}}
    spec = parse_sweep(doc)
    priced = spec.with_cost_overrides({"price_per_chip_hour": 2.0, "pue": 1.5, "electricity_usd_per_kwh": 0.1})
    assert priced.digest != spec.digest                      # --resume never mixes rows priced differently
    assert json.loads(priced.metadata()["trainsim.sweep.cost_overrides"])["pue"] == 1.5
    for i, chips in enumerate((64, 128)):
        row = evaluate_point(priced, i)
        hours = row["days"] * 24
        assert row["chips"] == chips and row["chip_hours"] == pytest.approx(chips * hours)
        assert row["cost_rental_usd"] == pytest.approx(2.0 * chips * hours)
        assert row["energy_mwh"] == pytest.approx(DGX_A100_W_PER_GPU * 1.5 * chips * hours / 1e6)
        # capex: DGX A100 $199k / 8 GPUs straight-line over the 5-year life, plus electricity at $0.1/kWh
        amort = 199000 / 8 * chips * (row["days"] / 365.25) / 5
        assert row["cost_capex_usd"] == pytest.approx(amort + DGX_A100_W_PER_GPU * 1.5 * chips * hours / 1e3 * 0.1)
    plain = evaluate_point(spec, 0)
    assert plain["energy_mwh"] == pytest.approx(DGX_A100_W_PER_GPU * 1.2 * 64 * plain["days"] * 24 / 1e6)  # PUE 1.2


def test_sweep_summary_refuses_cost_options(capsys):
    code, err = exit_code(capsys, "sweep", "--summary", "nothing.parquet", "--pue", "1.3")
    assert code == 2 and "--pue" in err


# ---------------------------------------------------------------- --csv wherever --json is


def _commands():
    group = typer.main.get_command(app)
    ctx = type(group).context_class(group) if hasattr(group, "context_class") else None
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if hasattr(cmd, "list_commands"):      # a subcommand group (catalog)
            sub = type(cmd).context_class(cmd)
            for s in cmd.list_commands(sub):
                yield f"{name} {s}", cmd.get_command(sub, s)
        else:
            yield name, cmd


def test_every_command_with_json_has_csv():
    opts = {name: {o for p in cmd.params for o in p.opts} for name, cmd in _commands()}
    with_json = [n for n, o in opts.items() if "--json" in o]
    assert {"validate", "infer", "posttrain", "scenario", "capacity", "sensitivity", "model", "catalog chips",
            "catalog show", "sweep", "report", "check", "estimate", "plan", "size", "compare"} <= set(with_json)
    assert [n for n in with_json if "--csv" not in opts[n]] == []


def test_csv_outputs_parse_and_carry_raw_numbers(run_a100):
    # Llama 3.1 8B: 8,030,261,248 parameters (the Hugging Face model card's 8.03B, counted exactly)
    rows = csv_rows(invoke("model", "llama-3.1-8b", "--csv").output)
    assert len(rows) == 1 and int(rows[0]["total_params"]) == 8_030_261_248
    # A100 SXM4: 312 TFLOPS dense BF16 (NVIDIA A100 datasheet)
    chips = {r["id"]: r for r in csv_rows(invoke("catalog", "chips", "--csv").output)}
    assert float(chips["nvidia-a100-sxm4-80gb"]["bf16_flops"]) == pytest.approx(312e12)
    show = csv_rows(invoke("catalog", "show", "dgx-a100", "--csv").output)
    assert {"field", "value", "source"} <= set(show[0]) and any(r["field"] == "scale_up_size" and r["value"] == "8"
                                                                  for r in show)
    assert csv_rows(invoke("catalog", "systems", "--csv").output)[0]["id"]
    assert csv_rows(invoke("catalog", "models", "--csv").output)[0]["id"]
    chk = csv_rows(invoke("check", run_a100, "--csv").output)
    assert chk[0]["kind"] == "run" and chk[0]["ok"] == "True"
    sens = csv_rows(invoke("sensitivity", run_a100, "--vary", "hbm_bandwidth", "--factors", "0.5,2", "--csv").output)
    # one row per factor; the value is the factor x the A100's 2.039 TB/s (datasheet, 80 GB SXM)
    assert [float(r["factor"]) for r in sens] == [0.5, 2.0]
    assert [float(r["value"]) for r in sens] == pytest.approx([0.5 * 2.039, 2 * 2.039])
    inf = csv_rows(invoke("infer", ROOT / "examples/serving-llama-3.1-8b-h800.yaml", "--csv").output)
    assert len(inf) == 1 and inf[0]["model"] == "llama-3.1-8b"
    pt = csv_rows(invoke("posttrain", ROOT / "examples/posttrain-opd-two-clusters.yaml", "--csv").output)
    assert float(pt[0]["wall_time_h"]) == pytest.approx(float(pt[0]["wall_time_s"]) / 3600)
    cap = csv_rows(invoke("capacity", "--system", "dgx-a100", "--chips", "64", "--days", "1", "--no-failures",
                          "--csv").output)
    assert cap[0]["chips"] == "64" and cap[0]["system"] == "dgx-a100"
    one = sorted((ROOT / "validation/runs").glob("*.yaml"))[0]
    val = csv_rows(invoke("validate", one, "--csv").output)
    assert len(val) == 1 and "error" in val[0]


def test_report_and_scenario_csv(run_a100, tmp_path):
    rep = csv_rows(invoke("report", run_a100, "-o", tmp_path / "r.html", "--no-sweeps", "--csv").output)
    assert len(rep) == 1 and float(rep[0]["cost.chip_hours"]) == pytest.approx(
        100e9 / float(rep[0]["tokens_per_s_per_chip"]) / 3600)      # chip-hours = tokens / (tokens/s per chip)
    sc = csv_rows(invoke("scenario", ROOT / "scenarios/S7.yaml", "--csv").output)
    assert len(sc) == 1 and sc[0]["id"] == "S7" and sc[0]["verdict_class"]
    assert float(sc[0]["numbers.multi_over_summed"]) == pytest.approx(
        float(sc[0]["numbers.multi_cluster_wall_h"]) / float(sc[0]["numbers.single_summed_wall_h"]))


# ---------------------------------------------------------------- scenario summary, money, labels


def _result(i: int, cls: str = "supported") -> dict:
    return {"id": f"S{i}", "kind": "run-cost", "claim": f"claim number {i}",
            "verdict_class": cls, "verdict": f"{cls}: headline {i} is $8.2M (range 1-2); more detail here",
            "numbers": {"pod_price_usd": 8_200_001.0,
                        "cost_rental_usd": {"low": 5.45e6, "nominal": 23.4e6, "high": 72.2e6}, "chips": 24_960},
            "assumptions": [{"key": "pue", "value": 1.2, "source": "a source", "confidence": "high"}]}


def test_scenario_all_prints_the_summary_first_and_details_only_with_detail(monkeypatch):
    from trainsim.api import scenarios   # the door `trainsim scenario --all` calls

    monkeypatch.setattr(scenarios, "run_all", lambda folder=None, jobs=None: [_result(1), _result(2, "depends on X")])
    short = invoke("scenario", "--all", "-q")
    assert short.exit_code == 0, short.output
    out = short.output
    assert "claim number 1" in out and "depends on X" in out
    assert "headline 1 is $8.2M (range 1-2)" in out and "more detail here" not in out   # the first clause only
    assert "numbers (nominal" not in out and "assumptions" not in out
    full = invoke("scenario", "--all", "-q", "--detail").output
    assert full.index("claim number 2") < full.index("S1: numbers") < full.index("S2: numbers")
    # money in dollars, keys as labels
    assert "pod price (USD)" in full and "$8.2M" in full and "$23.4M ($5.45M-$72.2M)" in full
    assert "pod_price_usd" not in full


def test_money_and_labels_by_hand():
    from trainsim.numfmt import label
    from trainsim.report.scenario_render import fmt_key, key_label, summary_row

    assert fmt_key("cost_capex_usd", {"low": 3.63e6, "nominal": 9.37e6, "high": 24.1e6}) == "$9.37M ($3.63M-$24.1M)"
    assert fmt_key("chips", 24_960) == "24,960" and fmt_key("numbers.pod_price_usd", 8_200_001) == "$8.2M"
    assert key_label("sizing.deadline_days") == "sizing / deadline days"
    assert label("rental_usd_per_chip_hour") == "rental (USD per chip hour)" and label("wall_h") == "wall (h)"
    row = summary_row({"id": "S9", "claim": "c", "verdict_class": "supported",
                       "verdict": "supported: 83.5 vs 79.5 days (+5.1%; with the best plan); the rest"})
    assert row == {"id": "S9", "claim": "c", "verdict": "supported", "because": "83.5 vs 79.5 days (+5.1%; with the "
                                                                                  "best plan)"}


# ---------------------------------------------------------------- a chart on every scenario page


def test_scenario_without_run_or_ranges_still_has_a_chart():
    from trainsim.report.scenario_report import build_scenario_report, fallback_chart_rows

    r = {"id": "S7", "kind": "posttrain", "claim": "c", "verdict": "depends on WAN", "verdict_class": "x",
         "file": "scenarios/S7.yaml", "numbers": {"multi_cluster_wall_h": 19.8, "single_summed_wall_h": 17.6,
                                                  "wan_gbit_s": 10.0, "mode": "async"},
         "assumptions": []}
    rows, title, unit = fallback_chart_rows(r)
    assert [x["value"] for x in rows] == [19.8, 17.6] and unit == "hours"   # the two *_h numbers share an axis
    rep = build_scenario_report(r, doc={})
    assert "scenario_numbers" in rep.charts and rep.charts["scenario_numbers"][:8] == b"\x89PNG\r\n\x1a\n"
    assert 'data-chart="scenario_numbers"' in rep.html or "<img" in rep.html
    # cases of result["ranges"] (WAN bandwidths) come first, on the first field they all have
    r["ranges"] = {"1 Gb/s": {"multi_cluster_h": 24.2}, "10 Gb/s": {"multi_cluster_h": 19.8}}
    rows, _, _ = fallback_chart_rows(r)
    assert [(x["label"], x["value"]) for x in rows] == [("1 Gb/s", 24.2), ("10 Gb/s", 19.8)]
    # nothing comparable: no chart (one number, or text only)
    assert fallback_chart_rows({"numbers": {"a_h": 1.0, "note": "x"}}) == ([], "", "")


def test_report_json_without_output_writes_no_file(run_a100, tmp_path, monkeypatch):
    # --json / --csv print the numbers; the HTML page is written only where -o names it (found by a first-use pass:
    # `report RUN --json` left RUN.html in the working folder)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for flag in ("--json", "--csv"):
        res = invoke("report", run_a100, "--no-sweeps", flag)
        assert res.exit_code == 0, res.output
    assert list(work.iterdir()) == []
    res = invoke("report", run_a100, "--no-sweeps", "--quiet")
    assert res.exit_code == 0, res.output
    assert [p.name for p in work.iterdir()] == ["a100.html"]
