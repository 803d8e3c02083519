"""How the reports print the headline numbers: one function per quantity, the same format as the terminal
(``trainsim estimate``), so a number in report.html can be checked against ``--json`` by formatting it alike."""
from __future__ import annotations

import math

GIB = 2**30


def step_time(s: float) -> str:
    return f"{s:.3f} s"


def tokens_per_s(x: float) -> str:
    return f"{x:,.1f}"


def pct(x: float) -> str:
    return f"{x:.1%}"


def signed_pct(x: float) -> str:
    return "no fit" if not math.isfinite(x) else f"{x:+.1f}%"


def gib(b: float) -> str:
    return f"{b / GIB:.1f} GiB"


def days(d: float | None) -> str:
    if d is None or not math.isfinite(d):
        return "n/a"
    return f"{d:.1f} days"


def chip_hours(x: float | None) -> str:
    from ..numfmt import count as _count

    return "n/a" if x is None else _count(x, "chip-hours")


def count(n: float) -> str:
    """A token or FLOP count: 15.6T, 405B, 2.1e+25."""
    for div, suf in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div and abs(n) < div * 1e3:
            return f"{n / div:.3g}{suf}"
    return f"{n:.3g}"


def si(x: float | None, unit: str) -> str:
    """A value in SI units with a readable prefix: 989 TFLOP/s, 3.35 TB/s, 80 GB, 2 us."""
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if unit == "s":
        for div, suf in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
            if abs(x) >= div:
                return f"{x / div:.3g} {suf}"
        return f"{x:.3g} s"
    for div, pre in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g} {pre}{unit}"
    return f"{x:.3g} {unit}"


def plan(p: dict | None) -> str:
    if not p:
        return "-"
    keys = ("tp", "pp", "vpp", "dp", "ep", "etp", "cp", "zero", "recompute", "micro_batch", "schedule")
    s = " ".join(f"{k}={p[k]}" for k in keys if k in p)
    if p.get("node_limit"):
        s += f" node_limit={p['node_limit']}"
    return s
