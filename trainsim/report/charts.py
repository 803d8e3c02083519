"""The report's charts, drawn with matplotlib's object API on the Agg canvas: no display, no pyplot state, and
the backend of a notebook or script that imports trainsim is left alone.

Every function takes plain data (the dicts of :mod:`trainsim.report.collect`, or ``Estimate.to_dict()``
fields) and returns a :class:`matplotlib.figure.Figure`; :func:`png_bytes` turns one into PNG bytes.
"""
from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from .fmt import signed_pct

if TYPE_CHECKING:   # matplotlib is imported when a chart is drawn (0.5 s), not when trainsim.report is
    from matplotlib.figure import Figure

from ..units import GIB as GIB  # bytes per GiB: the one definition

# one colour per cause, in the engine's breakdown order (compute warm, communication cool, waits grey)
CAUSE_COLOURS = {
    "compute_gemm": "#1f77b4", "attention": "#6baed6", "memory_bound": "#9ecae1", "recompute": "#c6dbef",
    "tp_comm": "#d62728", "ep_alltoall": "#ff7f0e", "cp_comm": "#e377c2", "pp_p2p": "#bcbd22",
    "pipeline_bubble": "#7f7f7f", "dp_comm": "#2ca02c", "optimizer": "#8c564b", "host": "#dbdb8d",
    "activation_offload": "#9467bd", "other": "#c7c7c7",
}
MEMORY_COLOURS = {"weights": "#1f77b4", "gradients": "#ff7f0e", "optimizer": "#2ca02c", "activations": "#d62728",
                  "buffers_and_margin": "#9467bd"}


def _figure(w: float = 8.0, h: float = 4.2) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (Agg)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def breakdown_chart(plans: list[dict], title: str = "Step time by cause") -> Figure:
    """Stacked bars of step time (seconds) by cause, one bar per plan. ``plans``: dicts with ``label`` and
    ``breakdown`` (cause -> seconds, the engine's ``Estimate.breakdown``)."""
    fig = _figure(8.0, 0.9 + 0.55 * max(len(plans), 2))
    ax = fig.add_subplot()
    causes = [k for k in CAUSE_COLOURS if any(p["breakdown"].get(k, 0) > 0 for p in plans)]
    causes += sorted({k for p in plans for k, v in p["breakdown"].items() if v > 0} - set(causes))
    labels = [p["label"] for p in plans][::-1]
    left = [0.0] * len(plans)
    for k in causes:
        vals = [max(p["breakdown"].get(k, 0.0), 0.0) for p in plans][::-1]
        ax.barh(labels, vals, left=left, color=CAUSE_COLOURS.get(k, "#aaaaaa"), label=k, edgecolor="white",
                linewidth=0.5)
        left = [a + b for a, b in zip(left, vals)]
    for y, tot in enumerate(left):
        ax.text(tot, y, f" {tot:.3f} s", va="center", fontsize=8)
    ax.set_xlabel("seconds per training step")
    ax.set_xlim(0, max(left) * 1.15 if left and max(left) > 0 else 1)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    return fig


def memory_chart(plans: list[dict], hbm_bytes: float, title: str = "Memory per chip against HBM capacity") -> Figure:
    """Stacked bars of memory per chip (GiB) by part, one bar per plan, with the HBM capacity as a line.
    ``plans``: dicts with ``label`` and ``memory`` (part -> bytes, the engine's memory breakdown)."""
    fig = _figure(8.0, 4.0)
    ax = fig.add_subplot()
    parts = [k for k in MEMORY_COLOURS if any(k in p["memory"] for p in plans)]
    parts += sorted({k for p in plans for k in p["memory"] if k != "total"} - set(parts))
    labels = [p["label"] for p in plans]
    bottom = [0.0] * len(plans)
    for k in parts:
        vals = [max(p["memory"].get(k, 0.0), 0.0) / GIB for p in plans]
        ax.bar(labels, vals, bottom=bottom, color=MEMORY_COLOURS.get(k, "#aaaaaa"), label=k, edgecolor="white",
               linewidth=0.5)
        bottom = [a + b for a, b in zip(bottom, vals)]
    hbm = hbm_bytes / GIB
    ax.axhline(hbm, color="black", linestyle="--", linewidth=1.2)
    ax.text(len(plans) - 0.5, hbm, f"HBM {hbm:.1f} GiB", ha="right", va="bottom", fontsize=8)
    for x, tot in enumerate(bottom):
        ax.text(x, tot, f"{tot:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("GiB per chip")
    ax.set_ylim(0, max(bottom + [hbm]) * 1.15)
    ax.set_title(title)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def scaling_chart(rows: list[dict], nominal_chips: int | None = None,
                  title: str = "Scaling: the best plan at each chip count") -> Figure:
    """Days (or step time when the run has no token count) and MFU against chips. ``rows``: dicts with
    ``chips``, ``days`` (may be None), ``step_time_s``, ``mfu``; rows without a plan (``mfu`` None) are skipped."""
    ok = [r for r in rows if r.get("mfu") is not None]
    fig = _figure(8.0, 4.0)
    ax = fig.add_subplot()
    xs = [r["chips"] for r in ok]
    use_days = bool(ok) and all(r.get("days") is not None for r in ok)
    ys = [r["days"] if use_days else r["step_time_s"] for r in ok]
    ax.plot(xs, ys, "o-", color="#1f77b4", label="days" if use_days else "step time (s)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, NullLocator

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel("chips")
    ax.set_ylabel("days to train" if use_days else "seconds per step", color="#1f77b4")
    if ys:   # headroom (log axes) so the point labels above the top points stay inside the axes
        ax.set_ylim(min(ys) / 1.25, max(ys) * 1.6)
        ax.set_xlim(min(xs) / 1.3, max(xs) * 1.3)
    for x, y in zip(xs, ys):
        ax.annotate(f"{y:.3g}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7,
                    color="#1f77b4", annotation_clip=True)
    ax2 = ax.twinx()
    ax2.plot(xs, [100 * r["mfu"] for r in ok], "s--", color="#d62728", label="MFU (vs BF16 peak)")
    ax2.set_ylabel("MFU vs BF16 peak (%)", color="#d62728")
    ax2.set_ylim(0, max([100 * r["mfu"] for r in ok] + [10]) * 1.25)
    if nominal_chips:
        ax.axvline(nominal_chips, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:,}" for x in xs], fontsize=8)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.legend(handles=ax.get_lines()[:1] + ax2.get_lines()[:1], fontsize=8, frameon=False, loc="upper right")
    ax.set_title(title)
    return fig


def tornado_chart(rows: list[dict], title: str = "Sensitivity", xlabel: str = "change in days (%)") -> Figure:
    """A tornado chart: for each input, the change at its low and high end (in %), widest swing on top.
    ``rows``: dicts with ``label``, ``low`` and ``high`` (changes in %; inf = no plan fits), optional
    ``low_label`` / ``high_label`` (e.g. "x0.5")."""
    def swing(r):
        return max(abs(v) if math.isfinite(v) else 1e18 for v in (r["low"], r["high"]))

    rows = sorted(rows, key=lambda r: -swing(r))
    fig = _figure(8.0, 1.0 + 0.5 * max(len(rows), 2))
    ax = fig.add_subplot()
    labels = [r["label"] for r in rows][::-1]
    finite = [abs(v) for r in rows for v in (r["low"], r["high"]) if math.isfinite(v)] or [1.0]
    cap = max(finite) * 1.1 or 1.0
    for y, r in enumerate(rows[::-1]):
        for end, colour, dy in (("low", "#d62728", 0.2), ("high", "#1f77b4", -0.2)):
            v = r[end]
            shown = v if math.isfinite(v) else cap
            ax.barh(y + dy, shown, height=0.38, color=colour, alpha=0.85 if math.isfinite(v) else 0.3,
                    hatch=None if math.isfinite(v) else "//")
            txt = r.get(f"{end}_label", end) + (f" {signed_pct(v)}" if math.isfinite(v) else " no plan fits")
            ax.text(shown, y + dy, f" {txt} ", va="center", ha="left" if shown >= 0 else "right", fontsize=7)
    lo_lab = rows[0].get("low_label", "low") if rows else "low"
    hi_lab = rows[0].get("high_label", "high") if rows else "high"
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="#d62728", label=f"{lo_lab} (low end)"),
                       Patch(color="#1f77b4", label=f"{hi_lab} (high end)")], fontsize=7, frameon=False,
              loc="lower right")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlim(-cap * 1.6, cap * 1.6)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def accuracy_chart(rows: list[dict], title: str = "Predicted vs reported tokens/s per chip") -> Figure:
    """Validation: predicted against reported tokens/s per chip on log axes, coloured by chip family.
    ``rows``: dicts with ``reported``, ``predicted``, ``family`` (the validation runner's rows)."""
    fig = _figure(6.0, 5.5)
    ax = fig.add_subplot()
    fams = sorted({r.get("family") or "?" for r in rows})
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    for i, fam in enumerate(fams):
        sel = [r for r in rows if (r.get("family") or "?") == fam]
        ax.scatter([r["reported"] for r in sel], [r["predicted"] for r in sel], s=22, label=fam,
                   color=palette[i % len(palette)], alpha=0.85)
    vals = [v for r in rows for v in (r["reported"], r["predicted"]) if v and v > 0]
    if vals:
        lo, hi = min(vals) / 1.5, max(vals) * 1.5
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
        for f, ls in ((1.25, ":"), (0.8, ":")):
            ax.plot([lo, hi], [lo * f, hi * f], color="grey", linewidth=0.7, linestyle=ls)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("reported tokens/s per chip")
    ax.set_ylabel("predicted tokens/s per chip")
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    return fig


def bar_chart(rows: list[dict], title: str, xlabel: str) -> Figure:
    """Horizontal bars, one per row (``label``, ``value``), in the given order from the top, each labelled with
    its value inside the axes (the chart of a scenario page that has neither a run nor ranged numbers)."""
    fig = _figure(8.0, 1.0 + 0.45 * max(len(rows), 2))
    ax = fig.add_subplot()
    vals = [float(r["value"]) for r in rows]
    ys = list(range(len(rows)))[::-1]
    ax.barh(ys, vals, height=0.6, color="#1f77b4", alpha=0.85)
    top = max([abs(v) for v in vals] or [1.0]) or 1.0
    for y, v in zip(ys, vals):
        ax.text(v, y, f" {v:,.3g} ", va="center", ha="left" if v >= 0 else "right", fontsize=7)
    ax.set_yticks(ys)
    ax.set_yticklabels([r["label"] for r in rows], fontsize=8)
    ax.set_xlim(min(0.0, min(vals or [0.0]) * 1.3), top * 1.3)   # room for the value labels inside the axes
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig
