"""A folder of scenario reports: one self-contained HTML file per scenario result plus ``index.html`` linking
them (``trainsim scenario --all --html DIR``). Reports are built in worker processes, like the scenarios."""
from __future__ import annotations

import re
import time
from pathlib import Path

from .page import esc, page, section, table
from .scenario_report import build_scenario_report
from ..errors import TrainsimError
from .progress import as_tick
from ..io import write_atomic

VERDICT_COLOURS = {"supported": "#2ca02c", "not supported": "#d62728", "error": "#d62728"}


def file_name(result: dict) -> str:
    """The HTML file name of a result's page: its id (or file stem) with unsafe characters replaced by ``_``."""
    rid = str(result.get("id") or Path(str(result.get("file", "scenario"))).stem)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", rid) + ".html"


def write_one(result: dict, out_dir: str | Path, with_run: bool = True, force: bool = False) -> dict:
    """Build and write one scenario's report; returns {id, file, seconds, error}. An existing page is replaced
    only with ``force`` (a symlink in its place is replaced, never followed)."""
    t0 = time.perf_counter()
    out = Path(out_dir) / file_name(result)
    error = None
    try:
        rep = build_scenario_report(result, with_run=with_run)
    except Exception as exc:  # noqa: BLE001 - a failing chart must not lose the scenario's page
        error = f"{type(exc).__name__}: {exc}"
        rep = build_scenario_report(result, with_run=False)
    rep.write(out, force=force)
    return {"id": result.get("id"), "file": out.name, "seconds": time.perf_counter() - t0, "error": error,
            "charts": sorted(rep.charts)}


def write_group(results: list[dict], out_dir: str | Path, with_run: bool = True, force: bool = False) -> list[dict]:
    """Write the reports of scenarios that share a run in one process, so that its plan searches are reused."""
    return [write_one(r, out_dir, with_run, force) for r in results]


def check_site_dir(out_dir: str | Path, names: list[str], *, force: bool = False) -> Path:
    """Refuse, before any work, a site folder that is a symlink (never followed, even with ``force``) or not a
    folder, and (without ``force``) one that already holds any of the pages ``names`` (or ``index.html``)."""
    out = Path(out_dir)
    if out.is_symlink():
        raise TrainsimError("HTML folder is a symlink; expected a real folder (symlinks are never followed)",
                            field="--html", where=str(out))
    if out.exists() and not out.is_dir():
        raise TrainsimError("HTML folder exists and is not a folder; expected a folder path", field="--html",
                            where=str(out))
    if out.is_dir():
        clash = [n for n in [*names, "index.html"] if (out / n).exists() or (out / n).is_symlink()]
        if clash and not force:
            raise TrainsimError(f"{len(clash)} page(s) exist in the folder (e.g. {clash[0]}); pass --force to "
                                "replace them", field="--html", where=str(out))
    return out


def group_by_run(results: list[dict]) -> list[list[dict]]:
    """Scenario results grouped by their best plan (S2, S3 and S8 share one run), largest group first."""
    import json

    groups: dict[str, list[dict]] = {}
    for r in results:
        bp = r.get("best_plan")
        key = json.dumps(bp, sort_keys=True, default=str) if isinstance(bp, dict) else f"id:{r.get('id')}"
        groups.setdefault(key, []).append(r)
    return sorted(groups.values(), key=len, reverse=True)


def index_html(results: list[dict], written: list[dict]) -> str:
    """The site's index page: one row per scenario result (link, claim, verdict, deciding assumption,
    headline, seconds) under the count of results per verdict class."""
    files = {w["id"]: w for w in written}
    rows = []
    for r in results:
        w = files.get(r.get("id"), {})
        colour = VERDICT_COLOURS.get(r.get("verdict_class", ""), "#b8860b")
        link = f'<a href="{esc(w.get("file", file_name(r)))}">{esc(r.get("id"))}</a>'
        rows.append([link, esc(r.get("claim", "")),
                     f'<span style="color:{colour}">{esc(r.get("verdict_class", "") or r.get("verdict", ""))}</span>',
                     esc(r.get("deciding_assumption") or r.get("headline") or ""),
                     esc(r.get("headline") or r.get("verdict", "")), f"{r.get('seconds', 0) or 0:.1f}"])
    n = len(results)
    counts = {}
    for r in results:
        counts[r.get("verdict_class", "other")] = counts.get(r.get("verdict_class", "other"), 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    body = (f'<h1>trainsim seed scenarios</h1><div class="answer" data-key="answer">{n} scenarios: {esc(summary)}.'
            "</div>" + section("claims", "The claims, their verdicts and the deciding assumptions",
                               table(["id", "claim", "verdict", "deciding assumption", "headline", "seconds"], rows,
                                     {5}, raw=True)))
    return page("trainsim scenarios", body)


def write_site(results: list[dict], out_dir: str | Path, *, jobs: int | None = None, progress=None,
               with_run: bool = True, force: bool = False) -> Path:
    """Write ``DIR/<id>.html`` for every scenario result and ``DIR/index.html``; returns the index path.
    ``jobs`` > 1 builds the reports in that many processes (default: one per CPU, at most one per result)."""
    import os


    out = check_site_dir(out_dir, [file_name(r) for r in results], force=force)
    out.mkdir(parents=True, exist_ok=True)
    tick = as_tick(progress)
    tick.set_total(len(results))
    jobs = jobs if jobs is not None else min(len(results), os.cpu_count() or 1)
    written: list[dict] = []
    groups = group_by_run(results)
    jobs = min(jobs, len(groups))
    if jobs <= 1:
        for r in results:
            tick.advance(str(r.get("id")), 0)
            written.append(write_one(r, out, with_run, force))
            tick.advance()
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as ex:
            futs = {ex.submit(write_group, g, str(out), with_run, force): g for g in groups}
            for f in as_completed(futs):
                written += f.result()
                tick.advance(", ".join(str(r.get("id")) for r in futs[f]), len(futs[f]))
    index = out / "index.html"

    write_atomic(index, index_html(results, written), force=force, what="index")
    return index
