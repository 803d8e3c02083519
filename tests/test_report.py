"""HTML reports, charts, progress and the notebook API (issue 8).

The report of a known run (Llama 3.1 405B on 16,384 H100, benchmarks/runs) must contain every section, embed
images that decode, show the same numbers as ``trainsim estimate --json`` and open in a headless browser when
one is installed (skipped otherwise); charts must be drawn without a display.
"""
from __future__ import annotations

import ast
import base64
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from trainsim.report import fmt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "runs" / "llama31-405b-h100x16384.yaml"
SECTIONS = ("answer", "breakdown", "memory", "plans", "scaling", "sensitivity", "ranges", "validation", "inputs")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SMALL_MODEL = "{name: t7b, layers: 32, hidden: 4096, heads: 32, ffn: 11008, ffn_act: swiglu, vocab: 32000}"
SCENARIO = textwrap.dedent(f"""
    id: T1
    kind: pretrain-feasibility
    claim: "A 7B dense model trained on 1T tokens on 64 H100 within 60 days"
    question: "How many days, best plan, memory"
    model: {SMALL_MODEL}
    model_source: "inline test model"
    training: {{tokens: 1e12, seq_len: 4096, global_batch_seqs: 256, precision: bf16}}
    training_source: "test"
    system: dgx-h100
    chips: 64
    deadline_days: 60
""")


def trainsim(*args, cwd=None, env=None):
    return subprocess.Popen([sys.executable, "-m", "trainsim", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)


def finish(p) -> str:
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``trainsim report RUN -o report.html --png DIR`` and ``trainsim estimate RUN --json``, run side by side."""
    d = tmp_path_factory.mktemp("report")
    rep = trainsim("report", str(RUN), "-o", str(d / "report.html"), "--png", str(d / "png"), "--quiet")
    est = trainsim("estimate", str(RUN), "--json")
    assert finish(rep) == ""                       # --quiet: nothing on stdout
    estimate = json.loads(finish(est))
    return {"html": (d / "report.html").read_text(encoding="utf-8"), "png_dir": d / "png", "json": estimate,
            "dir": d}


def images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_MAGIC
    length, kind = struct.unpack(">I4s", png[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", png[16:24])


def keyed(html: str) -> dict[str, str]:
    """The values the report marks with data-key (the headline numbers), as shown."""
    return {k: v.strip() for k, v in re.findall(r'data-key="([^"]+)">([^<]*)<', html)}


# ---------------------------------------------------------------- the report of a known run


def test_report_has_every_section(built):
    html = built["html"]
    for sid in SECTIONS:
        assert f'<section id="{sid}"' in html, sid
    # the answer comes first: one sentence right under the title
    first = html.index('<section id="answer"')
    assert all(html.index(f'<section id="{s}"') > first for s in SECTIONS[1:])
    answer = keyed(html)["answer"]
    assert answer.endswith(".") and answer.count(". ") == 0 and "days" in answer and "MFU" in answer
    # every input with its source: chip and system entries carry catalog source ids and citations
    assert "nvidia-h100-page" in html and "epoch-mlhw" in html and "calibration.yaml" in html
    assert "dgx-h100.scale_out_bw" in html and "nvidia-h100-sxm5.hbm_bw" in html


def test_report_is_self_contained(built):
    html = built["html"]
    assert "<script" not in html and "<link" not in html
    for attr, url in re.findall(r'\b(src|href)="([^"]*)"', html):
        assert url.startswith("data:image/png;base64,") or url.startswith("#"), (attr, url[:60])
    assert "url(" not in html


def test_images_decode(built):
    pngs = images(built["html"])
    assert len(pngs) >= 4                          # breakdown, memory, scaling, sensitivity
    for png in pngs:
        w, h = png_size(png)
        assert 300 < w < 3000 and 200 < h < 3000
    try:
        from PIL import Image
    except ImportError:                            # pragma: no cover - PIL comes with matplotlib
        Image = None
    import matplotlib.image as mpimg

    for png in pngs:
        arr = mpimg.imread(io.BytesIO(png), format="png")
        assert arr.ndim == 3 and arr.shape[0] > 100 and arr.std() > 0.01     # not a blank image
        if Image is not None:
            Image.open(io.BytesIO(png)).verify()
    # --png DIR writes the same charts
    files = {p.stem: p.read_bytes() for p in built["png_dir"].glob("*.png")}
    assert {"breakdown", "memory", "scaling", "sensitivity"} <= set(files)
    assert sorted(files.values()) == sorted(pngs)


def test_numbers_equal_estimate_json(built):
    d, shown = built["json"], keyed(built["html"])
    assert shown["step_time_s"] == fmt.step_time(d["step_time_s"])
    assert shown["tokens_per_s_per_chip"] == fmt.tokens_per_s(d["tokens_per_s_per_chip"])
    assert shown["mfu"] == fmt.pct(d["mfu"]) and shown["hfu"] == fmt.pct(d["hfu"])
    assert shown["memory_per_chip_bytes"] == fmt.gib(d["memory_per_chip_bytes"])
    assert shown["hbm_bytes"] == fmt.gib(d["hbm_bytes"])
    assert shown["days"] == fmt.days(d["days"]) and shown["chip_hours"] == fmt.chip_hours(d["chip_hours"])
    plan = {k: v for k, v in d["plan"].items() if k != "placement"}
    assert shown["plan"] == fmt.plan(plan)
    # the answer sentence quotes the same numbers
    for text in (fmt.days(d["days"]), fmt.pct(d["mfu"]), fmt.step_time(d["step_time_s"])):
        assert text in shown["answer"]
    # the step-time table is the JSON breakdown
    for cause, sec in d["breakdown"].items():
        if sec > 0:
            assert f"<td>{cause}</td><td class=\"num\">{sec:.4f}</td>" in built["html"]
    # the validation error that applies is the one of the chip family
    from trainsim.perf.calibration import validation_error

    assert shown["median_abs_error"] == fmt.pct(validation_error("nvidia-hopper")["median_abs_error"])


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_headless_browser_renders_the_page(built):
    """Open the report in headless Chromium (skipped when none is installed): the page loads, every section is
    in the DOM and every embedded image decodes (naturalWidth > 0)."""
    exe = _browser()
    if exe is None:
        pytest.skip("no headless Chromium installed (Debian's chromium; .ci/run installs it where it can)")
    # a copy of the page with a probe script that records what the browser made of it
    probe = built["dir"] / "probe.html"
    script = ("<script>window.addEventListener('load', function () {"
              "var imgs = Array.from(document.images);"
              "var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;"
              "var secs = document.querySelectorAll('section').length;"
              "document.body.setAttribute('data-probe', 'images=' + imgs.length + ' ok=' + ok + ' sections=' + secs);"
              "});</script>")
    probe.write_text(built["html"].replace("</body>", script + "</body>"), encoding="utf-8")
    try:
        r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                           capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:               # pragma: no cover
        pytest.skip("the headless browser did not finish")
    if r.returncode != 0 and "data-probe" not in r.stdout:      # pragma: no cover - a browser that cannot start
        pytest.skip(f"headless browser failed to start: {r.stderr.strip()[-200:]}")
    m = re.search(r'data-probe="images=(\d+) ok=(\d+) sections=(\d+)"', r.stdout)
    assert m, r.stdout[:500]
    n, ok, secs = map(int, m.groups())
    assert n >= 4 and ok == n and secs >= len(SECTIONS)


def test_charts_without_a_display(tmp_path):
    """No DISPLAY and no MPLBACKEND: the charts render on the Agg canvas and pyplot is never imported, so a
    notebook's or script's backend is left alone."""
    code = textwrap.dedent("""
        import sys
        from trainsim.report import charts
        plans = [{"label": "a", "breakdown": {"compute_gemm": 1.0, "tp_comm": 0.2},
                  "memory": {"weights": 2e9, "activations": 3e9, "total": 5e9}}]
        for fig in (charts.breakdown_chart(plans), charts.memory_chart(plans, 8e9),
                    charts.scaling_chart([{"chips": 8, "days": 10.0, "step_time_s": 1.0, "mfu": 0.4},
                                          {"chips": 16, "days": 5.5, "step_time_s": 0.55, "mfu": 0.38}], 8),
                    charts.tornado_chart([{"label": "x", "low": 10.0, "high": -5.0},
                                          {"label": "y", "low": float("inf"), "high": 0.0}]),
                    charts.accuracy_chart([{"reported": 100.0, "predicted": 110.0, "family": "f"}])):
            assert charts.png_bytes(fig)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        assert "matplotlib.pyplot" not in sys.modules
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# ---------------------------------------------------------------- scenarios


def test_scenario_report_and_html_folder(tmp_path):
    """A scenario YAML (has kind:) gets its verdict, numbers, assumptions and its run's charts; ``trainsim
    scenario FILE --html DIR`` writes the report plus an index page, and --json keeps stdout machine-readable."""
    sc = tmp_path / "T1.yaml"
    sc.write_text(SCENARIO)
    from trainsim.report.build import build_report

    site = trainsim("scenario", str(sc), "--json", "--html", str(tmp_path / "site"), "--jobs", "1")
    html = build_report(sc, with_scaling=False, with_sensitivity=False).html
    results = json.loads(finish(site))
    for sid in ("answer", "numbers", "best-plan", "scenario-ranges", "assumptions", "scenario-validation",
                "breakdown", "memory", "plans", "inputs"):
        assert f'<section id="{sid}"' in html, sid
    assert keyed(html)["answer"] == results[0]["verdict"].replace("'", "&#x27;")
    bp = results[0]["best_plan"]
    assert keyed(html)["best_plan_step_time_s"] == fmt.step_time(bp["step_time_s"])
    assert keyed(html)["step_time_s"] == fmt.step_time(bp["step_time_s"])   # the re-estimated run agrees
    assert len(images(html)) >= 2
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert 'href="T1.html"' in index and (tmp_path / "site" / "T1.html").is_file()


def test_scenario_without_a_run_still_renders():
    from trainsim.report.scenario_report import build_scenario_report

    r = {"id": "X", "kind": "fleet-capacity", "claim": "c", "verdict": "supported: yes", "verdict_class": "supported",
         "numbers": {"days": {"low": 1.0, "nominal": 2.0, "high": 3.0, "unit": "days"},
                     "rows": [{"system": "a", "days": 1.5}]},
         "assumptions": [{"key": "k", "value": 1.0, "source": "s", "confidence": "high"}],
         "validation_error": {"nvidia-hopper": {"runs": 3, "median_abs_error": 0.1, "max_abs_error": 0.2,
                                                "bias": 0.0, "basis": "b"}}}
    rep = build_scenario_report(r, doc={})
    # no run to chart, but every scenario page has a chart: the spread of its ranged numbers
    # (days: low 1.0, high 3.0 around nominal 2.0 -> -50% and +50%)
    assert set(rep.charts) == {"scenario_ranges"} and 'data-chart="scenario_ranges"' in rep.html
    for sid in ("answer", "numbers", "scenario-ranges", "assumptions", "scenario-validation"):
        assert f'<section id="{sid}"' in rep.html
    # the numbers given above, each in its place: nominal with its range and unit, the row, the range table
    assert '<td>days</td><td class="num">2 (1-3) days</td>' in rep.html    # numfmt range style: 29.2M (7.1M-90M)
    assert "<td>a</td><td>1.5</td>" in rep.html
    assert ('<td>days</td><td class="num">1</td><td class="num">2</td><td class="num">3</td><td>days</td>'
            in rep.html)


# ---------------------------------------------------------------- progress


def test_progress_bar_only_on_a_terminal_and_after_the_delay():
    from rich.console import Console

    from trainsim.report.progress import Tick, as_tick, progress_bar

    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, width=100)
    with progress_bar("searching", delay_s=0.0, console=con) as tick:
        for i in range(1, 4):
            tick(i, 3)
    assert "searching" in buf.getvalue()
    buf2 = io.StringIO()
    with progress_bar("searching", delay_s=60.0, console=Console(file=buf2, force_terminal=True)) as tick:
        tick(1, 2)                                   # quick work: no bar at all
    assert buf2.getvalue() == ""
    with progress_bar("quiet", enabled=False) as tick:
        tick(1, 2)
        tick.advance("x")
    seen = []
    t = as_tick(lambda done, total: seen.append((done, total)))
    t.set_total(2)
    t.advance("a")
    assert seen[-1] == (1, 2) and isinstance(as_tick(None), Tick)


def test_search_reports_progress():
    import trainsim

    calls = []
    run = trainsim.load_run(RUN)
    trainsim.search(run, top=1, progress=lambda d, n: calls.append((d, n)))
    assert calls and calls[-1][0] == calls[-1][1] > 0


# ---------------------------------------------------------------- notebook API and examples


def test_search_and_validate_to_frame():
    pd = pytest.importorskip("pandas")
    import trainsim
    from trainsim.validate.runner import validate

    df = trainsim.search(trainsim.load_run(RUN), top=3).to_frame()
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    assert {"tp", "pp", "dp", "step_time_s", "mfu", "memory_gib"} <= set(df.columns)
    assert df["step_time_s"].is_monotonic_increasing
    one = sorted((ROOT / "validation" / "runs").glob("megatron-sc21-a100-1p7b*.yaml"))[:1]
    vf = validate(one).to_frame()
    assert isinstance(vf, pd.DataFrame) and {"run", "family", "reported", "predicted", "error"} <= set(vf.columns)
    assert len(vf) >= 1 and vf["error"].abs().iloc[0] < 1.0


def test_examples_notebook_and_script_are_valid():
    nb = json.loads((ROOT / "examples" / "trainsim_tour.ipynb").read_text())
    assert nb["nbformat"] == 4 and nb["cells"]
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["source"], list)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and "execution_count" in cell
            ast.parse("".join(cell["source"]))
    src = (ROOT / "examples" / "readme_figures.py").read_text()
    ast.parse(src)
    assert "accuracy_chart" in src and "png_bytes" in src
