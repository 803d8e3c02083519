"""End to end: headless Chromium drives the explorer through its three questions and the numbers it shows must
equal the CLI's ``--json`` for the same inputs (the inputs reach the CLI as the spec YAML the page downloads).

Needs Selenium (the test extra) and a Chromium with its driver (Debian: ``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them where it can). Without them the test is skipped and says why."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the explorer needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="the explorer needs the serve extra: pip install -e '.[serve]'")

from trainsim.report import fmt  # noqa: E402
from trainsim.serve.app import background  # noqa: E402

NO_BROWSER = ("no headless browser for the explorer's end-to-end test: {why}. Install Debian's chromium and "
              "chromium-driver (apt-get install chromium chromium-driver) and selenium (pip install -e '.[test]')")
RUN = "model=llama-3.1-8b&system=dgx-h100&chips=64&tokens=1e12&seq=4096&batch=512&prec=bf16"


def find_browser() -> tuple[str | None, str | None, str]:
    chrome = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                  None)
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/lib/chromium/chromedriver", "/usr/bin/chromedriver") if os.path.exists(p)), None)
    why = "" if chrome and driver else ("no chromium binary on PATH" if not chrome else "no chromedriver on PATH")
    return chrome, driver, why


def make_driver(width: int = 1400, height: int = 1500):
    """A headless Chromium driver, or pytest.skip with the reason."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip(NO_BROWSER.format(why="selenium is not installed"))
    chrome, driver, why = find_browser()
    if not (chrome and driver):
        pytest.skip(NO_BROWSER.format(why=why))
    o = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={width},{height}"):
        o.add_argument(a)
    o.binary_location = chrome
    try:
        return webdriver.Chrome(service=Service(driver), options=o)
    except Exception as exc:  # noqa: BLE001 - a browser that cannot start is a missing browser
        pytest.skip(NO_BROWSER.format(why=f"chromium did not start ({str(exc).splitlines()[0]})"))


@pytest.fixture(scope="module")
def browser():
    d = make_driver()
    d.set_script_timeout(300)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def url():
    with background() as u:
        yield u


def answered(d, view: str) -> int:
    return int(d.find_element("id", view).get_attribute("data-answered") or 0)


def wait(d, view: str, count: int, timeout: float = 300) -> None:
    """Until ``view`` has been answered ``count`` times and no request is pending (or an error is shown)."""
    from selenium.webdriver.support.ui import WebDriverWait

    def done(drv):
        if drv.execute_script("return document.body.dataset.error") == "1":
            return True
        return answered(drv, view) >= count and drv.execute_script("return document.body.dataset.pending") == "0"

    WebDriverWait(d, timeout, poll_frequency=0.2).until(done)
    err = d.find_element("id", "error")
    assert not err.is_displayed(), err.text


def shown(d) -> dict[str, tuple[float | None, str]]:
    """Every number the page shows: data-key -> (raw value, text)."""
    out = {}
    for e in d.find_elements("css selector", ".view:not([hidden]) [data-key]"):
        v = e.get_attribute("data-value")
        out[e.get_attribute("data-key")] = (float(v) if v not in (None, "") else None, e.text)
    return out


def spec_file(d, tmp_path: Path, name: str, whatif: bool = False) -> Path:
    """The spec YAML the page's "Download spec YAML" button gets, for the page's current state."""
    req = "runRequest({edits: whatifEdits(), failure_rate: failureRate()})" if whatif else "runRequest()"
    text = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"fetch('/api/spec.yaml', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, "
        f"body: JSON.stringify({req})}}).then(r => r.text()).then(done);")
    p = tmp_path / name
    p.write_text(text)
    return p


def cli(*args: str) -> dict:
    p = subprocess.run([sys.executable, "-m", "trainsim", *args], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_plan_view_equals_cli(browser, url, tmp_path):
    d = browser
    d.get(f"{url}/?view=plan&{RUN}")
    wait(d, "view-plan", 1)
    page = shown(d)
    ref = cli("plan", str(spec_file(d, tmp_path, "plan.yaml")), "--json")
    ref = {**ref, **(ref.get("best") or {})}   # plan --json nests the best plan
    for k in ("days", "step_time_s", "tokens_per_s_per_chip", "mfu", "memory_per_chip_bytes", "plans_evaluated"):
        assert page[k][0] == pytest.approx(ref[k], rel=1e-12), k
    # the text is the terminal's format of the CLI's number
    assert page["days"][1] == fmt.days(ref["days"])
    assert page["step_time_s"][1] == fmt.step_time(ref["step_time_s"])
    assert page["tokens_per_s_per_chip"][1] == fmt.tokens_per_s(ref["tokens_per_s_per_chip"])
    assert page["mfu"][1] == fmt.pct(ref["mfu"])
    assert page["memory_per_chip_bytes"][1].startswith(fmt.gib(ref["memory_per_chip_bytes"]))
    flags = subprocess.run([sys.executable, "-m", "trainsim", "plan", str(tmp_path / "plan.yaml"), "--emit",
                            "megatron"], capture_output=True, text=True, timeout=600).stdout.strip()
    assert d.find_element("id", "plan-flags").text.strip() == flags
    # every chart has hoverable marks with values and axes with units
    assert d.find_elements("css selector", "#chart-breakdown .mark[data-tip]")
    assert "seconds per step" in d.find_element("id", "chart-breakdown").text
    assert "GiB per chip" in d.find_element("id", "chart-memory").text


def test_edited_system_and_url_state(browser, url, tmp_path):
    d = browser
    d.get(f"{url}/?view=plan&{RUN}")
    wait(d, "view-plan", 1)
    n = answered(d, "view-plan")
    inp = d.find_element("css selector", "input[data-edit='hbm_bw']")
    d.execute_script("arguments[0].value = '1.5'; arguments[0].dispatchEvent(new Event('change'))", inp)
    wait(d, "view-plan", n + 1)
    src = d.find_element("css selector", "[data-src='hbm_bw']").text
    assert src.startswith("edited")
    page = shown(d)
    spec = spec_file(d, tmp_path, "edited.yaml")
    assert "hbm_bandwidth: 1.5 TB/s" in spec.read_text()
    ref = cli("plan", str(spec), "--json")
    ref = {**ref, **(ref.get("best") or {})}   # plan --json nests the best plan
    for k in ("days", "step_time_s", "mfu", "memory_per_chip_bytes"):
        assert page[k][0] == pytest.approx(ref[k], rel=1e-12), k
    # the URL carries the state: a fresh load of it shows the same numbers
    link = d.current_url
    assert "e.hbm_bw=" in link
    d.get("about:blank")
    d.get(link)
    wait(d, "view-plan", 1)
    again = shown(d)
    assert again["days"] == page["days"] and again["step_time_s"] == page["step_time_s"]


def test_bad_input_shows_one_line(browser, url):
    d = browser
    d.get(f"{url}/?view=plan&{RUN}")
    wait(d, "view-plan", 1)
    chips = d.find_element("id", "chips")
    d.execute_script("arguments[0].value = '0'; arguments[0].dispatchEvent(new Event('change'))", chips)
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(d, 120).until(lambda drv: drv.find_element("id", "error").is_displayed())
    msg = d.find_element("id", "error").text
    assert msg == "request: chips: expected a positive number of chips, got 0"   # the same one line as a file


def test_size_and_capacity_view_equals_cli(browser, url, tmp_path):
    d = browser
    d.get(f"{url}/?view=size&{RUN}&size_days=20&size_unit=system&cap_units=8&cap_days=30&cap_family=dense")
    wait(d, "view-size", 2)            # size, then capacity
    page = shown(d)
    ref = cli("size", str(spec_file(d, tmp_path, "size.yaml")), "--days", "20", "--json")
    assert page["size_chips"][0] == ref["chips"] and page["size_units"][0] == ref["units"]
    assert page["size_effective_days"][0] == pytest.approx(ref["effective_days"], rel=1e-12)
    assert d.find_element("id", "size-answer").text == ref["message"]
    cap = cli("capacity", "--system", "dgx-h100", "--units", "8", "--days", "30", "--family", "dense", "--json")
    for k in ("total_params", "active_params", "tokens", "training_flops"):
        assert page[f"cap_{k}"][0] == pytest.approx(cap[k], rel=1e-12), k
    assert d.find_element("id", "cap-answer").text == cap["message"]


def test_whatif_view_equals_cli(browser, url, tmp_path):
    d = browser
    d.get(f"{url}/?view=whatif&{RUN}")
    wait(d, "view-whatif", 1)
    nominal = shown(d)
    assert nominal["w_days"][0] == pytest.approx(nominal["w_days"][0])
    n = answered(d, "view-whatif")
    slider = d.find_element("css selector", "input[data-w='hbm_bw']")
    d.execute_script("arguments[0].value = -1; arguments[0].dispatchEvent(new Event('input'))", slider)  # x0.5
    wait(d, "view-whatif", n + 1)
    page = shown(d)
    spec = spec_file(d, tmp_path, "whatif.yaml", whatif=True)
    assert "hbm_bandwidth: 1.675 TB/s" in spec.read_text()        # DGX H100: 3.35 TB/s x 0.5
    ref = cli("plan", str(spec), "--json")
    ref = {**ref, **(ref.get("best") or {})}   # plan --json nests the best plan
    assert page["w_days"][0] == pytest.approx(ref["days"], rel=1e-12)
    assert page["w_step_time_s"][0] == pytest.approx(ref["step_time_s"], rel=1e-12)
    assert page["w_mfu"][0] == pytest.approx(ref["mfu"], rel=1e-12)
    # the nominal point is the plan view's run
    base = cli("plan", str(spec_file(d, tmp_path, "nominal.yaml")), "--json")
    base = {**base, **(base.get("best") or {})}   # plan --json nests the best plan
    assert page["w_nominal_effective_days"][0] >= base["days"]            # failures only add time
    assert len(d.find_elements("css selector", "#chart-whatif circle.mark")) >= 2
    assert "w.hbm_bw=0.5" in d.current_url
