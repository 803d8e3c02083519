"""The explorer's server (`trainsim serve`): the same door as the CLI, bad input as one line, bounded work,
requests that do not block each other. The browser test is tests/test_serve_browser.py."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

pytest.importorskip("starlette", reason="the explorer needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="the explorer needs the serve extra: pip install -e '.[serve]'")

from trainsim import api  # noqa: E402
from trainsim.catalog.load import get_system  # noqa: E402
from trainsim.serve import app as serve_app  # noqa: E402
from trainsim.serve.inputs import Edits, system_doc  # noqa: E402
from trainsim.spec import parse_run  # noqa: E402

SPEC = {"name": "t", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 64,
        "training": {"tokens": 1e12, "seq_len": 4096, "global_batch_seqs": 512, "precision": "bf16"}}


@pytest.fixture(scope="module")
def url():
    with serve_app.background() as u:
        yield u


def call(url: str, path: str, body=None, raw: bytes | None = None, timeout: float = 120):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_plan_is_the_cli_search_and_days_follow_from_throughput(url):
    status, text = call(url, "/api/plan", {"spec": SPEC})
    assert status == 200
    a = json.loads(text)["answer"]
    ref = api.search(parse_run(SPEC)).to_dict()["best"]  # what `trainsim plan --json` prints as its best plan
    for k in ("step_time_s", "tokens_per_s_per_chip", "mfu", "memory_per_chip_bytes", "days"):
        assert a[k] == pytest.approx(ref[k], rel=1e-12), k
        assert a["best"][k] == pytest.approx(ref[k], rel=1e-12), k
    assert a["plan"] == ref["plan"]
    # days by hand: tokens / (tokens/s per chip x chips) / 86,400 s
    assert a["days"] == pytest.approx(1e12 / (a["tokens_per_s_per_chip"] * 64) / 86400, rel=1e-12)
    # with failures the run can only take longer: effective days = ideal days / goodput, goodput in (0, 1]
    eco = a["economics"]
    assert 0 < eco["goodput"] <= 1
    assert eco["effective_days"] == pytest.approx(a["days"] / eco["goodput"], rel=1e-12)
    # energy by hand: power per chip x PUE x chip-hours (with failures)
    pue = 1.2                     # assumptions.yaml: pue 1.2 (facility / IT power)
    assert next(x for x in a["assumptions"] if x["key"] == "pue")["value"] == pue
    chip_hours = eco["effective_days"] * 24 * 64
    assert eco["energy_mwh"]["nominal"] == pytest.approx(eco["power_per_chip_w"]["nominal"] * pue * chip_hours / 1e6,
                                                         rel=1e-9)
    # the flags are `plan --emit megatron`'s bash array (the default stack's emitter)
    assert a["emitter"] == "megatron" and "TRAINSIM_ARGS=(" in a["flags"]
    assert f"  --tensor-model-parallel-size {a['plan']['tp']}\n" in a["flags"]


def test_edited_system_changes_only_what_was_edited():
    base = get_system("cloudmatrix-384")
    doc = system_doc("cloudmatrix-384", Edits(hbm_bw=1.5e12, scale_up_size=128, scale_out_bw=25e9))
    s = parse_run({**SPEC, "system": doc}).system
    assert s.chip.hbm_bw == pytest.approx(1.5e12)
    assert s.levels[0].size == 128 and s.levels[1].bw == pytest.approx(25e9)
    # everything else is the catalog's
    assert s.chip.family == base.chip.family and s.chip.id == base.chip.id
    assert s.chip.hbm_bytes == pytest.approx(base.chip.hbm_bytes) and s.chip.peak_flops["bf16"] == pytest.approx(
        base.chip.peak_flops["bf16"])
    assert s.levels[0].bw == pytest.approx(base.levels[0].bw)
    assert s.levels[0].latency_s == pytest.approx(base.levels[0].latency_s)
    assert s.power_per_chip_w == pytest.approx(base.power_per_chip_w)
    assert s.price_per_chip_usd == pytest.approx(base.price_per_chip_usd)
    assert system_doc("cloudmatrix-384", Edits()) == "cloudmatrix-384"


@pytest.mark.parametrize("body, field", [
    ({"spec": {**SPEC, "chips": 0}}, "chips"),
    ({"spec": {**SPEC, "chipz": 8}}, "chipz"),
    ({"spec": {**SPEC, "system": "dgx-h1000"}}, "system"),
    ({"spec": {**SPEC, "training": {**SPEC["training"], "precision": "fp7"}}}, "training.precision"),
    ({"spec": SPEC, "edits": {"hbm_bw": -1}}, "edits.hbm_bw"),
    ({"spec": SPEC, "fix": "tp=banana"}, "tp"),
    ({"spec": SPEC, "framework": "jax"}, "framework"),
])
def test_bad_input_is_one_line_naming_the_field(url, body, field):
    status, text = call(url, "/api/plan", body)
    assert status == 400
    msg = json.loads(text)["error"]
    assert "\n" not in msg and "Traceback" not in msg
    assert field in msg


def test_bad_input_matches_the_file_error():
    """The request goes through the run spec's own validation: same message as the file, another `where`."""
    from trainsim.errors import TrainsimError

    with pytest.raises(TrainsimError) as file_err:
        parse_run({**SPEC, "chips": 0}, where="run.yaml")
    status, text = 400, None
    with serve_app.background() as u:
        status, text = call(u, "/api/plan", {"spec": {**SPEC, "chips": 0}})
    assert status == 400
    assert json.loads(text)["error"] == str(file_err.value).replace("run.yaml", "request")


def test_not_json_and_bounded_work(url):
    status, text = call(url, "/api/plan", raw=b"{not json")
    assert status == 400 and "JSON" in json.loads(text)["error"]
    status, text = call(url, "/api/plan", {"spec": {**SPEC, "chips": 10_000_001}})
    assert status == 400 and "10,000,000" in json.loads(text)["error"]
    status, text = call(url, "/api/sensitivity", {"spec": SPEC, "params": ["hbm_bandwidth", "peak_flops"],
                                                  "factors": [1 + i / 100 for i in range(101)]})
    assert status == 400 and "at most 200 points" in json.loads(text)["error"]
    status, text = call(url, "/api/capacity", {"system": "dgx-h100", "chips": 20_000_000, "days": 90})
    assert status == 400 and "chips" in json.loads(text)["error"]


def test_internal_error_is_one_line(url, monkeypatch):
    def boom(body):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setitem(serve_app.WORK, "plan", boom)
    status, text = call(url, "/api/plan", {"spec": SPEC})
    assert status == 500
    assert json.loads(text)["error"] == "internal error: ZeroDivisionError: float division by zero"


def test_a_long_request_does_not_block_the_server(url, monkeypatch):
    started, release = threading.Event(), threading.Event()

    def slow(body):
        started.set()
        release.wait(120)
        return {"done": True}

    monkeypatch.setitem(serve_app.WORK, "plan", slow)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=call(url, "/api/plan", {"spec": SPEC})))
    t.start()
    try:
        assert started.wait(60)
        # while the engine call is still running, other requests are answered
        status, text = call(url, "/api/health", timeout=60)
        assert status == 200 and json.loads(text)["ok"]
        status, _ = call(url, "/api/catalog", timeout=60)
        assert status == 200
        assert "r" not in out          # the slow one has not finished: it waits for `release`
    finally:
        release.set()
        t.join(120)
    assert out["r"][0] == 200


def test_spec_yaml_reproduces_the_request(url):
    import yaml

    body = {"spec": SPEC, "edits": {"hbm_bw": 2e12, "scale_up_size": 4}, "fix": "tp=2"}
    status, text = call(url, "/api/spec.yaml", body)
    assert status == 200
    doc = yaml.safe_load(text)
    assert doc["plan"] == {"tp": 2}
    run = parse_run(doc)
    assert run.system.chip.hbm_bw == pytest.approx(2e12) and run.system.scale_up_size == 4
    status, text = call(url, "/api/plan", body)
    a = json.loads(text)["answer"]
    ref = api.search(run).to_dict()["best"]
    assert a["step_time_s"] == pytest.approx(ref["step_time_s"], rel=1e-12) and a["plan"]["tp"] == 2


def test_page_and_assets_are_local(url):
    status, html = call(url, "/")
    assert status == 200 and "trainsim explorer" in html
    for asset in ("/static/app.js", "/static/charts.js", "/static/style.css"):
        status, text = call(url, asset)
        assert status == 200 and text
    # no CDN: every script and stylesheet is served by the explorer itself
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_serve_command_rejects_bad_port():
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "trainsim", "serve", "--port", "70000"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip() == "error: --port: expected a port between 1 and 65535, got 70000"


def test_report_download_is_the_run_report(url):
    status, html = call(url, "/api/report", {"spec": SPEC}, timeout=600)
    assert status == 200
    assert html.lstrip().lower().startswith("<!doctype html") and "Step time by cause" in html
    from trainsim.report.collect import answer

    est = api.estimate(parse_run(SPEC))
    import html as html_mod

    assert html_mod.escape(answer(est)) in html


def test_pasted_hf_config_is_the_catalog_model(url):
    """A pasted config.json (the catalog's own Llama 3.1 8B config) gives the numbers of the catalog id."""
    from trainsim.model.load import catalog_config

    cfg = catalog_config("llama-3.1-8b")
    assert cfg and cfg.get("model_type")
    _, a = call(url, "/api/plan", {"spec": SPEC})
    _, b = call(url, "/api/plan", {"spec": {**SPEC, "model": cfg}})
    a, b = json.loads(a)["answer"], json.loads(b)["answer"]
    assert b["step_time_s"] == pytest.approx(a["step_time_s"], rel=1e-12) and b["plan"] == a["plan"]


# ---------------------------------------------------------------- the framework input (issue 20)


def test_framework_input_sets_the_spec_and_restricts_the_search(url):
    """megatron-lm-2021 (framework_schedules.yaml: SC21 Megatron-LM) has no distributed optimizer (zero 0 only),
    recompute none|full, no expert or context parallelism: the best plan must stay inside that, the downloaded
    spec names the framework, `trainsim plan` on that spec gives the same plan, and the flags are Megatron-LM's
    without --use-distributed-optimizer (which the emitter writes only for zero >= 1)."""
    import yaml

    body = {"spec": SPEC, "framework": "megatron-lm-2021"}
    status, text = call(url, "/api/spec.yaml", body)
    assert status == 200
    doc = yaml.safe_load(text)
    assert doc["framework"] == "megatron-lm-2021"
    status, text = call(url, "/api/plan", body)
    assert status == 200
    a = json.loads(text)["answer"]
    p = a["plan"]
    assert p["zero"] == 0 and p["recompute"] in ("none", "full") and p["cp"] == 1 and p["ep"] == 1
    assert p["schedule"] in ("1f1b", "interleaved")
    assert a["framework"] == "megatron-lm-2021" and a["emitter"] == "megatron"
    assert "--use-distributed-optimizer" not in a["flags"]
    ref = api.search(parse_run(doc)).to_dict()["best"]          # what `trainsim plan SPEC.yaml` finds
    assert a["step_time_s"] == pytest.approx(ref["step_time_s"], rel=1e-12) and p == ref["plan"]
    # the default stack (Megatron-Bridge 2026: distributed optimizer, selective recompute) may pick what 2021 lacks
    free = json.loads(call(url, "/api/plan", {"spec": SPEC})[1])["answer"]
    assert free["step_time_s"] <= a["step_time_s"] * (1 + 1e-12)


def test_framework_input_picks_the_flag_emitter(url):
    """An emitter name (links made before profiles) is that emitter's default stack; a stack with no emitter
    (DeepSeek's HAI-LLM) answers the plan with a note instead of flags."""
    a = json.loads(call(url, "/api/plan", {"spec": SPEC, "framework": "mindspeed"})[1])["answer"]
    assert a["framework"] == "mindspeed-2026" and a["emitter"] == "mindspeed" and "TRAINSIM_ARGS=(" in a["flags"]
    b = json.loads(call(url, "/api/plan", {"spec": SPEC, "framework": "deepseek-hai-llm"})[1])["answer"]
    assert b["framework"] == "deepseek-hai-llm" and b["flags"] is None and "no flag emitter" in b["flags_note"]
    cat = json.loads(urllib.request.urlopen(f"{url}/api/catalog", timeout=60).read())
    ids = {f["id"]: f for f in cat["frameworks"]}
    assert cat["default_framework"] in ids and ids["torchtitan-2024"]["emitter"] == "torchtitan"
    assert ids["nemo-2024"]["emitter"] == "megatron" and ids["gpt-neox"]["emitter"] is None


def test_framework_input_conflicting_with_the_spec_is_one_line(url):
    status, text = call(url, "/api/plan", {"spec": {**SPEC, "framework": "torchtitan-2024"},
                                           "framework": "megatron-lm-2021"})
    assert status == 400
    msg = json.loads(text)["error"]
    assert "\n" not in msg and "framework" in msg and "torchtitan-2024" in msg


def test_the_page_formats_no_plan_itself():
    """One formatting layer: the server sends the plan table's rows as text (trainsim.report.fmt, as the terminal
    prints them) and the page's script has no plan formatter of its own."""
    from importlib import resources

    js = resources.files("trainsim.serve").joinpath("static/app.js").read_text()
    assert "micro_batch" not in js and "fmt.plan" not in js
    plan = {"tp": 8, "pp": 2, "vpp": 1, "dp": 4, "ep": 1, "etp": 1, "cp": 1, "zero": 1, "recompute": "none",
            "micro_batch": 2, "schedule": "1f1b"}
    row = serve_app.plan_row({"plan": plan, "step_time_s": 1.23456, "mfu": 0.4123,
                              "tokens_per_s_per_chip": 3960.24, "memory_per_chip_bytes": 68.7 * 2**30})
    assert row == {"plan": "tp=8 pp=2 vpp=1 dp=4 ep=1 etp=1 cp=1 zero=1 recompute=none micro_batch=2 schedule=1f1b",
                   "step_time_s": "1.235 s", "mfu": "41.2%", "tokens_per_s_per_chip": "3,960.2",
                   "memory_per_chip_bytes": "68.7 GiB"}
