"""``trainsim sweep --summary results.parquet``: the frontier of a finished sweep, and plots.

* counts: points, evaluated without error, errors by kind (no valid plan, no plan fits, bad input, exception);
* the frontier among the points that work (and, with ``deadline_days``, finish within it): the fastest, the
  cheapest (rental, then capex), the one with the fewest chips, the best MFU; the Pareto front of days vs cost
  (days vs chips when the file has no cost);
* per axis: the best ``metric`` at each value, over every other axis (the best configuration there);
* plots (matplotlib, Agg backend): a line per axis, a heatmap per pair of axes (up to three pairs), and a
  histogram of the metric when an axis samples uncertain inputs.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import TrainsimError
from ..numfmt import axis_label as _label, axis_value as format_value
from .writer import pa, read_metadata

LOWER_IS_BETTER = {"days", "step_time_s", "cost_rental_usd", "cost_capex_usd", "energy_mwh", "chip_hours",
                   "memory_per_chip_bytes", "chips"}
HIGHER_IS_BETTER = {"mfu", "hfu", "tokens_per_s_per_chip"}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def load_results(path: str | Path) -> tuple[list[dict], dict, list[dict]]:
    """(rows, trainsim metadata, axes description) of a results file."""
    pa()
    import pyarrow.parquet as pq

    meta = read_metadata(path)
    if "trainsim.sweep.digest" not in meta:
        raise TrainsimError("not a trainsim sweep result (no trainsim.sweep metadata)", where=str(path))
    rows = pq.read_table(path).to_pylist()
    return rows, meta, json.loads(meta.get("trainsim.sweep.axes", "[]"))


def _better(metric: str):
    if metric in HIGHER_IS_BETTER:
        return lambda v: -v
    return lambda v: v


def _best(rows: list[dict], key: str, tie: str | None = "days", higher: bool = False) -> dict | None:
    cand = [r for r in rows if _finite(r.get(key))]
    if not cand:
        return None
    sign = -1 if higher else 1
    return min(cand, key=lambda r: (sign * r[key], r.get(tie) if _finite(r.get(tie)) else math.inf, r["point"]))


def pareto(rows: list[dict], x: str, y: str) -> list[dict]:
    """Rows no other row beats on both ``x`` and ``y`` (both lower-is-better), sorted by ``x``."""
    cand = sorted((r for r in rows if _finite(r.get(x)) and _finite(r.get(y))),
                  key=lambda r: (r[x], r[y], r["point"]))
    out, best_y = [], math.inf
    for r in cand:
        if r[y] < best_y:
            out.append(r)
            best_y = r[y]
    return out


def _axis_columns(axes: list[dict]) -> list[dict]:
    """Axes that can be plotted: more than one position; x is the first column."""
    return [a for a in axes if a["size"] > 1 and a["kind"] in ("values", "zip")]


def per_axis(rows: list[dict], ok: list[dict], axes: list[dict], metric: str) -> dict[str, list[dict]]:
    """For each axis column: every value (in sweep order) with the best ``metric`` over the other axes."""
    key = _better(metric)
    out: dict[str, list[dict]] = {}
    for a in _axis_columns(axes):
        col = a["columns"][0]
        order: list = []
        for r in rows:
            if r.get(col) not in order:
                order.append(r.get(col))
        table = []
        for v in order:
            sub = [r for r in ok if r.get(col) == v and _finite(r.get(metric))]
            best = min(sub, key=lambda r: (key(r[metric]), r["point"])) if sub else None
            table.append({"value": v, "best": None if best is None else best[metric],
                          "point": None if best is None else best["point"], "ok": len(sub),
                          "of": sum(1 for r in rows if r.get(col) == v)})
        out[col] = table
    return out


#: the result columns a ``--metric`` usually names (listed when it names none of the file's columns)
RESULT_METRICS = ("days", "step_time_s", "tokens_per_s_per_chip", "mfu", "mfu_at_precision", "chip_hours",
                  "cost_rental_usd", "cost_capex_usd", "energy_mwh", "memory_per_chip_bytes")


def summarize(path: str | Path, *, deadline_days: float | None = None, metric: str = "days",
              plots_dir: str | Path | None = None) -> dict:
    """The frontier of a sweep result file (see the module docstring); writes plots when ``plots_dir``."""
    rows, meta, axes = load_results(path)
    if rows and metric not in rows[0]:
        have = [k for k in RESULT_METRICS if k in rows[0]]
        raise TrainsimError(f"the file has no column {metric!r}; expected a result column such as "
                            f"{', '.join(have)}", field="--metric")
    ok = [r for r in rows if not r.get("error_kind")]
    errors: dict[str, int] = {}
    examples: dict[str, str] = {}
    for r in rows:
        k = r.get("error_kind")
        if k:
            errors[k] = errors.get(k, 0) + 1
            examples.setdefault(k, r.get("error") or "")
    pool = ok
    if deadline_days is not None:
        pool = [r for r in ok if _finite(r.get("days")) and r["days"] <= deadline_days]
    has_cost = any(_finite(r.get("cost_rental_usd")) for r in ok)
    frontier = {
        "fastest": _best(pool, "days" if any(_finite(r.get("days")) for r in pool) else "step_time_s", tie=None),
        "cheapest_rental": _best(pool, "cost_rental_usd") if has_cost else None,
        "cheapest_capex": _best(pool, "cost_capex_usd") if any(_finite(r.get("cost_capex_usd")) for r in pool)
        else None,
        "fewest_chips": _best(pool, "chips"),
        "best_mfu": _best(pool, "mfu", higher=True),
    }
    front = pareto(pool, "days", "cost_rental_usd" if has_cost else "chips")
    axis_cols = [c for a in axes for c in a["columns"]] + [a["index_column"] for a in axes if a.get("index_column")]
    out = {
        "file": str(path), "name": meta.get("trainsim.sweep.name"), "trainsim_version": meta.get("trainsim.version"),
        "points": len(rows), "ok": len(ok), "errors": errors, "error_examples": examples,
        "deadline_days": deadline_days, "meeting_deadline": len(pool) if deadline_days is not None else None,
        "metric": metric, "axes": axes, "axis_columns": axis_cols,
        "frontier": frontier, "pareto": {"x": "days", "y": "cost_rental_usd" if has_cost else "chips",
                                         "rows": front[:20]},
        "per_axis": per_axis(rows, ok, axes, metric),
    }
    if plots_dir is not None:
        out["plots"] = [str(p) for p in plots(rows, ok, axes, metric, Path(plots_dir), deadline_days)]
    return out


# ---------------------------------------------------------------- plots


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def plots(rows: list[dict], ok: list[dict], axes: list[dict], metric: str, folder: Path,
          deadline_days: float | None = None) -> list[Path]:
    """Line per axis, heatmap per pair of axes (best ``metric`` over the other axes), histogram for samples."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise TrainsimError("plots need matplotlib: pip install 'trainsim[plot]'", field="--plots") from None
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig, name: str) -> None:
        """Lay ``fig`` out, write it to ``folder / name`` at 110 dpi, close it and list the file."""
        fig.tight_layout()
        path = folder / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    key = _better(metric)
    plottable = _axis_columns(axes)
    table = per_axis(rows, ok, axes, metric)
    for a in plottable:
        col = a["columns"][0]
        pts = table[col]
        xs = [p["value"] for p in pts]
        ys = [np.nan if p["best"] is None else p["best"] for p in pts]
        numeric = all(_finite(x) for x in xs)
        fig, ax = plt.subplots(figsize=(6, 4))
        if numeric:
            ax.plot(xs, ys, "o-")
            pos = [x for x in xs if x > 0]
            if len(pos) == len(xs) and max(xs) / min(xs) >= 8:
                ax.set_xscale("log")
            if len(xs) <= 12:
                ax.set_xticks(xs, [format_value(col, x) for x in xs], rotation=30, ha="right")
                ax.minorticks_off()
        else:
            ax.plot(range(len(xs)), ys, "o-")
            ax.set_xticks(range(len(xs)), [format_value(col, x) for x in xs], rotation=30, ha="right")
        if deadline_days is not None and metric == "days":
            ax.axhline(deadline_days, color="red", linestyle="--", label=f"deadline {deadline_days:g} d")
            ax.legend()
        ax.set_xlabel(col)
        ax.set_ylabel(f"best {metric}")
        ax.set_title(f"best {metric} vs {col}", fontsize=10)
        ax.grid(alpha=0.3)
        save(fig, f"line_{_safe(col)}.png")
    pairs = [(plottable[i], plottable[j]) for i in range(len(plottable)) for j in range(i + 1, len(plottable))][:3]
    for ay, ax_ in pairs:   # rows: the earlier axis, columns: the later one
        cy, cx = ay["columns"][0], ax_["columns"][0]
        ys = [p["value"] for p in table[cy]]
        xs = [p["value"] for p in table[cx]]
        grid = np.full((len(ys), len(xs)), np.nan)
        yi, xi = {_label(v): i for i, v in enumerate(ys)}, {_label(v): i for i, v in enumerate(xs)}
        for r in ok:
            v = r.get(metric)
            if not _finite(v):
                continue
            i, j = yi.get(_label(r.get(cy))), xi.get(_label(r.get(cx)))
            if i is None or j is None:
                continue
            if np.isnan(grid[i, j]) or key(v) < key(grid[i, j]):
                grid[i, j] = v
        fig, axp = plt.subplots(figsize=(1.2 + 0.8 * max(4, len(xs)), 1.0 + 0.55 * max(4, len(ys))))
        im = axp.imshow(grid, aspect="auto", origin="lower", cmap="viridis_r" if metric not in HIGHER_IS_BETTER
                        else "viridis")
        axp.set_xticks(range(len(xs)), [format_value(cx, x) for x in xs], rotation=30, ha="right")
        axp.set_yticks(range(len(ys)), [format_value(cy, y) for y in ys])
        axp.set_xlabel(cx)
        axp.set_ylabel(cy)
        fig.colorbar(im, ax=axp, label=f"best {metric}")
        if len(xs) * len(ys) <= 225:
            for i in range(len(ys)):
                for j in range(len(xs)):
                    if np.isnan(grid[i, j]):
                        txt = "x"
                    else:
                        txt = f"{grid[i, j]:.3g}"
                        if deadline_days is not None and metric == "days" and grid[i, j] > deadline_days:
                            txt += "*"
                    rgba = (0.0, 0.0, 0.0, 1.0) if np.isnan(grid[i, j]) else im.cmap(im.norm(grid[i, j]))
                    light = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] > 0.55
                    axp.text(j, i, txt, ha="center", va="center", fontsize=7, color="black" if light else "white")
        note = "; x: no plan" + ("; *: misses the deadline" if deadline_days is not None and metric == "days" else "")
        axp.set_title(f"best {metric}{note}", fontsize=9)
        save(fig, f"heatmap_{_safe(cy)}__{_safe(cx)}.png")
    if any(a["kind"] == "samples" for a in axes):
        vals = [r[metric] for r in ok if _finite(r.get(metric))]
        if vals:
            fig, axh = plt.subplots(figsize=(6, 4))
            axh.hist(vals, bins=min(40, max(5, len(vals) // 5)))
            axh.set_xlabel(metric)
            axh.set_ylabel("points")
            axh.set_title(f"{metric} over the sampled inputs ({len(vals)} points)", fontsize=10)
            save(fig, f"hist_{_safe(metric)}.png")
    return written
