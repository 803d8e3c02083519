"""The daily path (issue 19): cost and energy on every answer, emitted plans that run, models from folders and the
Hugging Face cache, one number format, compare / check / --csv / --version, HTML layout, to_frame(all=True).
Expected numbers are derived by hand in each test."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import trainsim
from conftest import RUN_A100, emitted_args
from trainsim.cli import app

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


# ---------------------------------------------------------------- cost and energy


def test_cost_by_hand_dgx_a100(run_a100):
    from trainsim.cost import WITHOUT_FAILURES

    est = trainsim.estimate(trainsim.load_run(run_a100))
    days = 100e9 / (est.tokens_per_s_per_chip * 64) / 86400
    hours = days * 24
    c = est.cost(price_per_chip_hour=1.5, pue=1.3, electricity_usd_per_kwh=0.1)
    assert c["basis"] == WITHOUT_FAILURES
    assert c["chip_hours"] == pytest.approx(64 * hours)
    # DGX A100: 6.5 kW / 8 GPUs = 812.5 W per GPU (datasheet); energy = W x PUE x chips x h / 1e6
    assert c["energy_mwh"] == pytest.approx(812.5 * 1.3 * 64 * hours / 1e6)
    assert c["cost_rental_usd"] == pytest.approx(1.5 * 64 * hours)
    # $199k / 8 = $24,875 per GPU, 5-year straight line, plus electricity at $0.1/kWh
    amort = 24875 * 64 * (days / 365.25) / 5
    assert c["capex_amortised_usd"] == pytest.approx(amort)
    assert c["cost_capex_usd"] == pytest.approx(amort + 812.5 * 1.3 * 64 * hours / 1e3 * 0.1)
    assert c["inputs"]["pue"]["source"] == "--pue"
    assert "nvidia-dgxa100-ds" in c["inputs"]["power_per_chip_w"]["source"]


def test_cost_with_goodput_names_the_model(run_a100):
    est = trainsim.estimate(trainsim.load_run(run_a100))
    c = est.cost(goodput=0.8)
    assert "goodput 80.0%" in c["basis"] and "Daly" in c["basis"]
    assert c["days"] == pytest.approx(est.days / 0.8)


def test_deepseek_v3_rental_matches_its_report():
    """DeepSeek-V3 report (arXiv 2412.19437, Table 1): 2.788M H800 GPU-hours x $2 = $5.576M. The predicted run must
    cost chip-hours x $2 exactly, and land within 15% of the reported GPU-hours."""
    est = trainsim.estimate(trainsim.load_run(ROOT / "examples/pretrain-deepseek-v3-h800.yaml"))
    c = est.cost()
    assert c["inputs"]["rental_usd_per_chip_hour"]["value"] == 2.0
    assert c["cost_rental_usd"] == pytest.approx(2.0 * c["chip_hours"])
    assert abs(c["chip_hours"] / 2.788e6 - 1) < 0.15


def test_estimate_json_and_csv_carry_cost(run_a100):
    r = CliRunner().invoke(app, ["estimate", str(run_a100), "--json", "--price-per-chip-hour", "2"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["cost"]["cost_rental_usd"] == pytest.approx(2 * d["chip_hours"])
    r = CliRunner().invoke(app, ["estimate", str(run_a100), "--csv"])
    header, row = r.output.strip().splitlines()
    assert "cost.chip_hours" in header.split(",") and len(row.split(",")) >= len(header.split(","))


# ---------------------------------------------------------------- emitted plans


def _megatron_names() -> set[str]:
    lines = (DATA / "megatron_lm_arguments.txt").read_text().splitlines()
    return {ln.split("\t")[0] for ln in lines if ln.startswith("--")}


def _fake_est(n_layers=126, pp=16, vpp=2, precision="bf16", schedule="interleaved", recompute="full", moe=False,
              zero=1):
    plan = {"tp": 8, "pp": pp, "vpp": vpp, "dp": 128, "ep": 1, "etp": 1, "cp": 1, "zero": zero, "recompute": recompute,
            "micro_batch": 1, "schedule": schedule, "node_limit": 0}
    arch = SimpleNamespace(n_layers=n_layers, is_moe=moe, name="llama-3.1-405b")
    training = SimpleNamespace(batch_seqs=2048, seq_len=8192, precision=precision)
    run = SimpleNamespace(arch=arch, training=training, chips=16384,
                          system=SimpleNamespace(chip=SimpleNamespace(id="nvidia-h100-sxm5")))
    return SimpleNamespace(plan=plan, run=run, step_time_s=10.0)



def test_stage_split_llama405b_by_hand():
    from trainsim.emit import stage_split

    # 126 layers, pp 16, vpp 2: 14 middle ranks x 8 = 112, the other 14 = 8 (first) + 6 (last); all even
    assert stage_split(126, 16, 2) == (8, 8, 6)
    assert stage_split(128, 16, 2) is None                # 128 = 16 x 2 x 4: even split
    assert stage_split(61, 2, 1) == (31, 31, 30)


def test_megatron_fragment_runs_through_bash_and_uses_real_names(tmp_path):
    from trainsim.emit import emit_args

    tokens = emitted_args(emit_args(_fake_est(precision="fp8"), "megatron"), tmp_path)
    flags = [t for t in tokens if t.startswith("--")]
    unknown = set(flags) - _megatron_names()
    assert not unknown, unknown
    val = dict(zip(tokens, tokens[1:]))
    assert val["--decoder-first-pipeline-num-layers"] == "8" and val["--decoder-last-pipeline-num-layers"] == "6"
    assert val["--num-virtual-stages-per-pipeline-rank"] == "2"
    assert "--num-layers-per-virtual-pipeline-stage" not in flags
    assert val["--fp8-format"] == "hybrid" and val["--recompute-granularity"] == "full"


def test_mindspeed_fragment_and_dualpipe(tmp_path):
    from trainsim.emit import emit_args

    tokens = emitted_args(emit_args(_fake_est(schedule="dualpipe", vpp=1), "mindspeed"), tmp_path)
    val = dict(zip(tokens, tokens[1:]))
    assert val["--schedules-method"] == "dualpipev"
    # MindSpeed-LLM refuses --num-layer-list beside dualpipev (num_layer_list.py validate_args): 126 layers on
    # pp 16 are padded to 128 = 16 ranks x 2 chunks x 4 with two noop layers, the last two (qa31)
    assert "--num-layer-list" not in val and val["--num-layers"] == "128" and val["--noop-layers"] == "126,127"
    with pytest.raises(trainsim.TrainsimError):
        emit_args(_fake_est(schedule="dualpipe"), "megatron")


def test_torchtitan_toml_keys_are_torchtitans():
    from trainsim.emit import emit_args

    doc = tomllib.loads(emit_args(_fake_est(schedule="interleaved", recompute="selective", zero=3), "torchtitan"))
    # fields of class Parallelism, pytorch/torchtitan torchtitan/config/job_config.py at 24e91056a (26 Sep 2025)
    known = {"data_parallel_replicate_degree", "data_parallel_shard_degree", "fsdp_reshard_after_forward",
             "tensor_parallel_degree", "pipeline_parallel_degree",
             "pipeline_parallel_schedule", "pipeline_parallel_layers_per_stage", "pipeline_parallel_microbatch_size",
             "pipeline_parallel_first_stage_less_layers", "pipeline_parallel_last_stage_less_layers",
             "context_parallel_degree", "expert_parallel_degree"}
    assert set(doc["parallelism"]) <= known
    p = doc["parallelism"]
    assert p["pipeline_parallel_schedule"] == "Interleaved1F1B" and p["tensor_parallel_degree"] == 8
    # 32 virtual stages x 4 layers = 128 = 126 + 2 fewer (one on the first stage, one on the last)
    stages = 16 * 2
    assert (p["pipeline_parallel_layers_per_stage"] * stages - p["pipeline_parallel_first_stage_less_layers"]
            - p["pipeline_parallel_last_stage_less_layers"]) == 126
    assert doc["activation_checkpoint"]["mode"] == "selective"


def test_framework_filter_offers_only_what_it_has():
    from trainsim.frameworks import frameworks, restrict_plan

    plan = restrict_plan(trainsim.PlanSpec(), "megatron-bridge-2026")
    assert set(plan.values("schedule")) == {"1f1b", "interleaved"}
    assert restrict_plan(trainsim.PlanSpec(), "torchtitan-2024").ep == 1
    with pytest.raises(trainsim.TrainsimError):
        restrict_plan(trainsim.PlanSpec(schedule="dualpipe"), "megatron-core-2024")
    ids = {"megatron-lm-2021", "deepspeed-megatron", "megatron-core-2024", "megatron-bridge-2025",
           "megatron-bridge-2026", "torchtitan-2024", "mindspeed-2025"}
    assert ids <= set(frameworks()) and all(f["source"] for f in frameworks().values())


# ---------------------------------------------------------------- models as people have them


LLAMA_CFG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
             "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
             "num_hidden_layers": 32, "vocab_size": 128256, "tie_word_embeddings": False}


def test_model_folder_and_name(tmp_path):
    from trainsim.model.load import resolve_model

    folder = tmp_path / "my-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA_CFG))
    assert resolve_model(str(folder)).name == "my-llama"
    assert resolve_model(str(folder / "config.json")).name == "my-llama"
    (folder / "config.json").write_text(json.dumps({**LLAMA_CFG, "_name_or_path": "meta-llama/Llama-3.1-8B"}))
    assert resolve_model(str(folder)).name == "Llama-3.1-8B"
    # Llama 3.1 8B: 8.03B parameters (Meta's model card)
    from trainsim.model.counts import count

    assert count(resolve_model(str(folder))).total_params == pytest.approx(8.03e9, rel=0.005)


def test_hub_id_from_local_cache(tmp_path, monkeypatch):
    from trainsim.model.load import resolve_model

    snap = tmp_path / "hub" / "models--Qwen--Qwen2.5-7B" / "snapshots" / "0123abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(LLAMA_CFG))
    (tmp_path / "hub" / "models--Qwen--Qwen2.5-7B" / "refs").mkdir()
    (tmp_path / "hub" / "models--Qwen--Qwen2.5-7B" / "refs" / "main").write_text("0123abc")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert resolve_model("Qwen/Qwen2.5-7B").name == "Qwen2.5-7B"
    with pytest.raises(trainsim.TrainsimError, match="local Hugging Face cache"):
        resolve_model("Nobody/NoSuchModel")


# ---------------------------------------------------------------- number format


def test_one_number_format():
    from trainsim.numfmt import count, label, money, span

    assert money(29.2e6) == "$29.2M" and money(24.54e6) == "$24.5M" and money(950) == "$950"
    assert count(2.92e6, "GPU-hours") == "2.92M GPU-hours"
    assert span(29.2e6, 7.1e6, 90e6) == "29.2M (7.1M-90M)"
    assert count(8200001) == "8.2M" and count(999_960) == "1M"
    assert label("pod_price_usd") == "pod price (USD)"


# every sweep system target (sweep/targets.SYSTEM_FIELDS) with an SI value and its display, each derived by hand:
# 3.35e12 B/s / 1e9 = 3,350 GB/s; 80 x 2^30 B = 80 GiB; 989e12 FLOP/s / 1e12 = 989 TFLOP/s; 50e9 B/s x 8 = 400 Gb/s;
# 2e-6 s = 2 us; 1,275 W; $33,625 = $33.6k (3 significant digits, numfmt.money); 14.4e12 B/s = 14,400 GB/s
AXIS_DISPLAY = {
    "system.chip.hbm_bw": (3.35e12, "3,350 GB/s"), "system.chip.hbm_bytes": (80 * 2**30, "80 GiB"),
    "system.chip.peak_flops": (989e12, "989 TFLOP/s"), "system.scale_up.size": (8192, "8,192"),
    "system.scale_up.bandwidth": (900e9, "900 GB/s"), "system.scale_up.latency": (2e-6, "2 us"),
    "system.scale_out.bandwidth": (50e9, "400 Gb/s"), "system.scale_out.latency": (5e-6, "5 us"),
    "system.power_per_chip_w": (1275.0, "1,275 W"), "system.price_per_chip_usd": (33625.0, "$33.6k"),
}


def test_axis_value_unit_shown_and_scaled_once():
    """numfmt.axis_value prints every sweep system target in its unit, scaled once: power and price axes printed
    '1.28e+03' and '3.36e+04' with no unit, a 8,192-chip domain '8192', and 14.4 TB/s '1.44e+04 GB/s'."""
    from trainsim.numfmt import axis_value
    from trainsim.sweep.targets import SYSTEM_FIELDS

    assert set(AXIS_DISPLAY) == set(SYSTEM_FIELDS)
    for col, (x, text) in AXIS_DISPLAY.items():
        assert axis_value(col, x) == text, col
    assert axis_value("system.chip.hbm_bw", 14.4e12) == "14,400 GB/s"
    assert axis_value("system.chip.peak_flops", 2.5e16) == "25,000 TFLOP/s"
    assert axis_value("system.chip.hbm_bw_scale", 0.5) == "x0.5" and axis_value("chips", 24960) == "24,960"
    assert axis_value("assumptions.checkpoint_write_bw", 2e12) == "2,000 GB/s"
    assert axis_value("assumptions.restart_s", 600.0) == "600 s" and axis_value("plan.pp", True) == "True"


# ---------------------------------------------------------------- compare, check, version, completion


def test_compare_two_runs(run_a100, tmp_path):
    b = tmp_path / "b.yaml"
    b.write_text(RUN_A100.replace("chips: 64", "chips: 128").replace("name: a100-8b", "name: b"))
    r = CliRunner().invoke(app, ["compare", str(run_a100), str(b), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["differing_inputs"] == {"chips": [64, 128]}
    a, bb = d["runs"]
    # same plan and per-DP-rank batch halves: 2x the chips at half the micro-batches per step
    assert a["chips"] == 64 and bb["chips"] == 128 and bb["step_time_s"] < a["step_time_s"]


def test_check_every_spec_kind():
    for f, kind in (("examples/pretrain-deepseek-v3-h800.yaml", "run"),
                    ("examples/serving-llama-3.1-8b-h800.yaml", "serving"),
                    ("examples/posttrain-opd-two-clusters.yaml", "posttrain"),
                    ("examples/sweep-hbm-bandwidth.yaml", "sweep"), ("scenarios/S4.yaml", "scenario")):
        r = CliRunner().invoke(app, ["check", str(ROOT / f), "--json"])
        assert r.exit_code == 0, (f, r.output)
        assert json.loads(r.output)["kind"] == kind
    r = CliRunner().invoke(app, ["check", str(ROOT / "examples/pretrain-deepseek-v3-h800.yaml")])
    # every field that matters is fixed, so estimate evaluates the plan as given: the unstated vpp is DualPipe's
    # one model chunk per stage (Megatron-Core's default, plan_estimate.plans_from_spec), not searched
    assert "671B parameters" in r.output and "pp=16" in r.output
    assert "plan defaulted: vpp=1" in r.output and "plan searched: none" in r.output


def test_version_and_completion_options():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"trainsim {trainsim.__version__}"
    assert "--install-completion" in CliRunner().invoke(app, ["--help"]).output


# ---------------------------------------------------------------- HTML


def test_layout_rule_no_nowrap_on_text():
    from trainsim.report.page import kv_table, nowrap_violations, table

    long = "catalog systems.yaml dgx-h100.power_per_chip_w: derived, nvidia-dgxh100-ds (low)"
    html = table(["input", "value"], [["power", long], ["hbm", "80 GB"]], {1}) + kv_table([("a", long, None)])
    assert nowrap_violations(html) == []
    assert '<td class="num">80 GB</td>' in html


def _scenario_report():
    from trainsim.report.scenario_report import build_scenario_report

    r = {"id": "X", "kind": "fleet-capacity", "claim": "c", "verdict": "supported: yes", "verdict_class": "supported",
         "file": str(Path.cwd() / "scenarios" / "X.yaml"),
         "numbers": {"days": {"low": 1.0, "nominal": 2.0, "high": 3.0, "unit": "days"},
                     "pod_price_usd": {"low": 7.1e6, "nominal": 8.2e6, "high": 9e6},
                     "note": "a long sentence of text " * 12},
         "assumptions": [{"key": "k", "value": 1.0, "source": "a source " * 30, "confidence": "high"}]}
    return build_scenario_report(r, doc={})


def test_scenario_page_paths_relative_and_has_chart():
    rep = _scenario_report()
    assert str(Path.cwd()) not in rep.html and "scenarios/X.yaml" in rep.html
    assert rep.charts and "<img" in rep.html
    from trainsim.report.page import nowrap_violations

    assert nowrap_violations(rep.html) == []


def test_scaling_chart_labels_inside_axes():
    from trainsim.report.charts import scaling_chart

    rows = [{"chips": c, "days": 400.0 / c * 8, "step_time_s": 1.0, "mfu": 0.4} for c in (8, 16, 32, 64, 128)]
    fig = scaling_chart(rows)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax = fig.axes[0]
    box = ax.get_window_extent(r)
    for t in ax.texts:
        e = t.get_window_extent(r)
        assert e.y1 <= box.y1 + 0.5 and e.x0 >= box.x0 - 0.5 and e.x1 <= box.x1 + 0.5, t.get_text()


def test_widest_table_fits_1280px_in_a_browser(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless Chromium on this machine (apt-get install chromium); the layout-rule test covers it")
    html = _scenario_report().html.replace(
        "</body>", "<script>document.title='W'+Math.max(...[...document.querySelectorAll('table')]"
                   ".map(t=>t.getBoundingClientRect().right))+'/'+document.documentElement.scrollWidth;</script>"
                   "</body>")
    f = tmp_path / "p.html"
    f.write_text(html)
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                          "--dump-dom", f.as_uri()], capture_output=True, text=True, timeout=120).stdout
    m = re.search(r"<title>W([\d.]+)/(\d+)</title>", out)
    assert m, out[:500]
    assert float(m.group(1)) <= 1280 and int(m.group(2)) <= 1280


# ---------------------------------------------------------------- DataFrames


def test_to_frame_all_and_missing_pandas(run_a100, monkeypatch):
    run = trainsim.load_run(run_a100)
    res = trainsim.search(run, trainsim.PlanSpec(tp=[1, 2], pp=1, cp=1))
    df = res.to_frame(all=True)
    assert len(df) == res.plans_feasible
    assert df["step_time_s"].iloc[0] == pytest.approx(res.best.step_time_s)
    # tokens/s per chip = batch tokens / (step time x chips)
    assert df["tokens_per_s_per_chip"].iloc[0] == pytest.approx(512 * 4096 / (res.best.step_time_s * 64))
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(trainsim.TrainsimError, match=r"trainsim\[frames\]"):
        res.to_frame()
