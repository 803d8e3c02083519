"""Screenshots of the explorer's three views for the README: ``python scripts/explorer_screenshots.py docs/figures``.

Starts the explorer in the background, drives headless Chromium (Debian's chromium + chromium-driver, Selenium)
through the plan, size / capacity and what-if views of the page's default run (the seed's 1.6T MoE on 65
CloudMatrix 384 pods), and writes explorer-plan.png, explorer-size.png and explorer-whatif.png."""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def main(out: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    from trainsim.serve.app import background

    out.mkdir(parents=True, exist_ok=True)
    o = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1250",
              "--hide-scrollbars"):
        o.add_argument(a)
    o.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=o)

    def wait(view: str, count: int) -> None:
        WebDriverWait(d, 600, poll_frequency=0.2).until(
            lambda drv: int(drv.find_element("id", view).get_attribute("data-answered") or 0) >= count
            and drv.execute_script("return document.body.dataset.pending") == "0")
        time.sleep(0.3)

    try:
        with background() as url:
            d.get(f"{url}/?view=plan")
            wait("view-plan", 1)
            d.save_screenshot(str(out / "explorer-plan.png"))
            d.get(f"{url}/?view=size&size_days=60&cap_units=65&cap_days=90")
            wait("view-size", 2)
            d.save_screenshot(str(out / "explorer-size.png"))
            d.get(f"{url}/?view=whatif")
            wait("view-whatif", 1)
            for key, value in (("hbm_bw", -1), ("scale_up_bw", -1), ("fail", 1)):
                n = int(d.find_element("id", "view-whatif").get_attribute("data-answered"))
                el = d.find_element("css selector", f"input[data-w='{key}']")
                d.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))",
                                 el, value)
                wait("view-whatif", n + 1)
            d.save_screenshot(str(out / "explorer-whatif.png"))
    finally:
        d.quit()
    print(f"wrote explorer-plan.png, explorer-size.png, explorer-whatif.png in {out}")


def cli(argv: list[str] | None = None) -> None:
    """The command line: [OUT] (``--help`` and a mistyped flag exit here, before the explorer starts)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("docs/figures"),
                    help="folder for the PNG files (default docs/figures)")
    main(ap.parse_args(argv).out)


if __name__ == "__main__":
    cli()
