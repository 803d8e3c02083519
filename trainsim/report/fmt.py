"""The one formatting layer: how numbers, plans and units are printed, by the terminal (:mod:`.terminal`), the
HTML pages, the explorer and every domain's tables. One function per quantity, the same format as the terminal
(``trainsim estimate``), so a number in report.html can be checked against ``--json`` by formatting it alike.
Number formats themselves (significant digits, money, labels) are :mod:`trainsim.numfmt`'s; this module imports
nothing else at load time, so any layer may use it."""
from __future__ import annotations

import math
from typing import Any
from ..numfmt import PLAN_KEYS as PLAN_KEYS, plan as plan  # the one plan formatter lives in the base layer
from ..numfmt import counted as counted  # "1 point", "2 points"
from ..numfmt import fraction
from ..numfmt import (axis_name, axis_value, count as _count, is_money_key, key_parts, money as _money,
                      label as _label)
from ..numfmt import gib as gib  # "68.7 GiB"
from ..numfmt import days as days  # "54.3 days": the one computed-duration format, in the base layer
from ..catalog.describe import FIELD_DIMS, fmt as _fmt

from ..units import GIB as GIB  # bytes per GiB: the one definition
from ..units import percent_value as percent_value  # "10%" / "0.1" -> 0.1: the CLI reads shares through here


def step_time(s: float) -> str:
    """A step time in seconds: ``12.345 s``; under 10 ms three significant figures (``0.000227 s``), never a
    ``0.000 s`` no step takes."""
    return f"{s:.3f} s" if s >= 0.01 else f"{s:.3g} s"


def search_counts(evaluated: int, feasible: int, rejected: dict, fit_word: str = "fit") -> str:
    """A plan search's counts as one phrase: ``51,660 plans evaluated, 13,990 fit`` and, where validity rules
    rejected candidates before evaluation, their total first: ``10,671,360 candidate plans: 51,660 valid and
    evaluated, 13,990 fit``. The rejections by reason count candidates (``tp: 6,800,640``) and the plans evaluated
    that do not fit (``memory``, evaluated - feasible); the title said '51,660 plans evaluated' above a
    6,800,640-plan row (qa31). ``rejected``: :attr:`trainsim.search.SearchResult.rejected` (or its JSON)."""
    by_rule = sum(rejected.values()) - (evaluated - feasible) if rejected else 0
    if by_rule <= 0:
        return f"{counted(evaluated, 'plan')} evaluated, {feasible:,} {fit_word}"
    return (f"{counted(evaluated + by_rule, 'candidate plan')}: {evaluated:,} valid and evaluated, {feasible:,} "
            f"{fit_word}")


#: what a plan that does not fit says when none of :mod:`trainsim.fit_advice`'s single changes makes it fit
NO_SINGLE_FIX = "no single change tried fits (recompute, ZeRO, offload, swapped optimizer where offered, micro-batch, pp x 2)"


def does_not_fit(d: dict) -> str:
    """The one line a stated plan that does not fit in HBM gets on stderr (``estimate``, ``compare``, ``report``
    exit 1 with it): the plan, its memory per chip against HBM and the nearest alternatives -- the single changes
    that make it fit (:mod:`trainsim.fit_advice`, fastest first) -- from an estimate's ``to_dict()``. Example:
    'the stated plan (tp=1 ...) does not fit: 302.6 GiB of 80.0 GiB HBM per chip; nearest alternatives: full
    recompute (uniform, 1 layer): 70.1 GiB, step 4.000 s'."""
    fixes = (d.get("does_not_fit") or {}).get("fixes") or []
    near = "; ".join(f"{f['change']}: {gib(f['memory_per_chip_bytes'])}, step {step_time(f['step_time_s'])}"
                     for f in fixes) or NO_SINGLE_FIX
    return (f"the stated plan ({plan(d.get('plan'))}) does not fit: {gib(d['memory_per_chip_bytes'])} of "
            f"{gib(d['hbm_bytes'])} HBM per chip; nearest alternatives: {near}")


def tokens_per_s(x: float) -> str:
    """Tokens per second: ``3,960.2``."""
    return f"{x:,.1f}"


def pct(x: float) -> str:
    """A fraction as a percentage: ``0.412`` -> ``41.2%`` (``0.99965`` -> ``99.97%``, never 100% below 1:
    :func:`trainsim.numfmt.fraction`)."""
    return fraction(x)


def signed_pct(x: float, digits: int = 1) -> str:
    """A change already in percent, signed, to ``digits`` decimals: ``+3.0%``; ``no fit`` for an infinite one; a
    change that rounds to zero is ``+0.0%`` (``+0%``), never ``-0.0%``."""
    return "no fit" if not math.isfinite(x) else f"{round(x, digits) + 0.0:+.{digits}f}%"


def chip_hours(x: float | None) -> str:
    """Chip-hours as a count: ``2.79M chip-hours``; ``n/a`` when unknown."""
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


#: the plan fields, in the order every plan is printed (terminal, HTML, validation table, explorer)
def plan_columns(r: dict) -> str:
    """A plan from a sweep row's flat ``plan.*`` columns in the one plan format (:func:`plan`: ``tp=8 pp=4 vpp=2
    ...``, as the terminal and ``plan`` print it; it was a second, compact ``tp8 pp4 ... z1 mb1``); ``-`` for a
    point without a plan."""
    if r.get("plan.tp") is None:
        return "-"
    return plan({k[len("plan."):]: v for k, v in r.items() if k.startswith("plan.") and v is not None})


def value(x: Any) -> str:
    """A number for a table: 3-4 significant digits, thousands separators, e-notation when large or small;
    exact integers below a million; ``{nominal, low, high, unit}`` as ``nominal (low-high) unit``; None as
    ``-``, booleans as yes / no, mappings as ``k=v``, pairs as ``k v``."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):   # exact below a million (chip counts), else 8.2M
        return f"{x:,}" if abs(x) < 1_000_000 else value(float(x))
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        if math.isinf(x):          # never "inf" in front of a reader
            return "unbounded" if x > 0 else "-unbounded"
        a = abs(x)
        if a == 0:
            return "0"
        if a >= 1e4:   # one number format everywhere (trainsim.numfmt): 29.2M, 4.52M
            return _count(x)
        if a < 1e-3:
            return f"{x:.3g}"
        if a >= 100:
            return f"{x:,.0f}"
        if a >= 1:
            return f"{x:.3g}" if a < 10 else f"{x:.1f}"
        return f"{x:.3f}"
    if isinstance(x, dict) and "nominal" in x:
        s = value(x.get("nominal"))
        if x.get("low") is not None and x.get("high") is not None and x["low"] != x["high"]:
            s += f" ({value(x['low'])}-{value(x['high'])})"
        if x.get("unit"):
            s += f" {x['unit']}"
        return s
    if isinstance(x, dict):
        return ", ".join(f"{k}={value(v)}" for k, v in x.items())
    if isinstance(x, (list, tuple)):
        if x and all(isinstance(v, (list, tuple)) and len(v) == 2 for v in x):
            return ", ".join(f"{k} {value(v)}" for k, v in x)
        return ", ".join(value(v) for v in x)
    return str(x)


#: result keys holding a fraction that every output prints as a percentage (MFU, HFU, goodput, a sweep point's
#: binding cause's share of the step)
FRACTION_KEYS = frozenset({"mfu", "hfu", "goodput", "mfu_at_precision", "hfu_at_precision", "slowdown",
                           "binding_share"})


#: the suffix of result keys holding a signed relative difference as a fraction (``total_vs_claim``: 0.013 is
#: 1.3% more than claimed), printed as a signed percentage
SIGNED_FRACTION_SUFFIX = "_vs_claim"
#: result keys whose value is a bandwidth with no unit in the name (assumptions.yaml checkpoint_write_bw), printed
#: in the unit :func:`trainsim.numfmt.axis_value` gives it (a network link in bit/s, any other bandwidth in byte/s)
BYTE_RATE_SUFFIXES = ("_bw",)
#: result keys holding (cause, fraction of the step) pairs (:func:`trainsim.scenario.common.where_time_goes`)
SHARE_KEYS = frozenset({"where_time_goes"})


def is_fraction_key(key: str) -> bool:
    """Whether the last part of a (dotted) result key is one of :data:`FRACTION_KEYS`, a share (a word
    ``share``: ``share_of_cluster_life``, ``tp_comm_share_restricted``, a fraction of a whole that the scenario's
    prose gives in percent, '7%', where the table printed 0.072) or a change already in percent (``*_pct``:
    ``change_pct``, ``slowdown_pct``), all printed with a % sign."""
    last = key_parts(key)[-1].split("[")[0]
    return last in FRACTION_KEYS or "share" in last.split("_") or last.endswith("_pct")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _ranged(x: Any, fn: Any) -> str | None:
    """``fn`` of a finite number, or of a range's nominal with ``(low-high)`` beside it where they differ
    (``94.2% (77.1%-98.1%)``); None for anything else. The one copy of the range layout :func:`value_of_key`
    prints fractions and rates in."""
    if _finite(x):
        return str(fn(x))
    if isinstance(x, dict) and _finite(x.get("nominal")):
        s = str(fn(x["nominal"]))
        if _finite(x.get("low")) and _finite(x.get("high")) and x["low"] != x["high"]:
            s += f" ({fn(x['low'])}-{fn(x['high'])})"
        return s
    return None


def value_of_key(key: str, x: Any) -> str:
    """:func:`value` of the value of ``key``: money keys (``*_usd``, ``cost*``, ``*price``;
    :func:`trainsim.numfmt.is_money_key`) in dollars (``$29.2M ($7.1M-$90M)`` style, :func:`money`); a catalog
    quantity (a mapping naming its catalog field) in the catalog's unit (:func:`catalog_range`); a fraction
    (:func:`is_fraction_key`: MFU, goodput, a slowdown) as a percentage, ``94.2% (77.1%-98.1%)``, as the answer's
    sentences state it, a change already in percent (``change_pct``) signed, ``+18.7%``, and a bandwidth
    (:data:`BYTE_RATE_SUFFIXES`) in :func:`trainsim.numfmt.axis_value`'s unit, ``2,000 GB/s (500 GB/s-7,000 GB/s)``."""
    last = key_parts(key)[-1].split("[")[0]
    if isinstance(x, dict) and "name" in x and catalog_range(x) is not None:   # a catalog quantity, in its unit
        return catalog_range(x)
    if last.endswith(SIGNED_FRACTION_SUFFIX) and _finite(x):     # 0.013 -> +1.3%, not a bare 0.013
        return signed_pct(100.0 * x, 1)
    if last in SHARE_KEYS and isinstance(x, (list, tuple)) and all(
            isinstance(v, (list, tuple)) and len(v) == 2 and _finite(v[1]) for v in x):
        return ", ".join(f"{k} {pct(v)}" for k, v in x)
    if is_fraction_key(last) and not isinstance(x, bool):
        as_pct = (lambda v: signed_pct(v, 1)) if last.endswith("_pct") else pct   # *_pct: a change in percent
        s = _ranged(x, as_pct)
        if s is not None:
            return s
    if last.endswith(BYTE_RATE_SUFFIXES) and not isinstance(x, bool):   # checkpoint_write_bw: 2e12 -> 2,000 GB/s
        # bits or bytes by axis_value's one rule (network links in bit/s, other bandwidths in byte/s)
        s = _ranged(x, lambda v: axis_value(last, v))
        if s is not None:
            return s
    if not is_money_key(last) or isinstance(x, bool):
        return value(x)
    if isinstance(x, (int, float)):
        return money(x)
    if isinstance(x, dict) and "nominal" in x and (x.get("nominal") is None or isinstance(x["nominal"], (int, float))):
        s = money(x.get("nominal"))
        if isinstance(x.get("low"), (int, float)) and isinstance(x.get("high"), (int, float)) and x["low"] != x["high"]:
            s += f" ({money(x['low'])}-{money(x['high'])})"
        return s
    return value(x)


def money(x: float | None, digits: int = 3) -> str:
    """US dollars: ``$29.2M``, ``$812k`` (:func:`trainsim.numfmt.money`)."""
    return _money(x, digits)


def quantity(x: float | int | None, unit: str = "", digits: int = 3) -> str:
    """A count with a unit: ``4.52M chip-hours`` (:func:`trainsim.numfmt.count`)."""
    return _count(x, unit, digits)


def label(key: str) -> str:
    """A snake_case key as a human label (:func:`trainsim.numfmt.label`)."""
    return _label(key)


def catalog_value(x: float | None, dim: str) -> str:
    """A catalog value (SI) in the unit people read: 989 TFLOP/s, 80 GiB, 400 Gb/s (:func:`trainsim.catalog.describe.fmt`)."""
    return _fmt(x, dim)


def catalog_input(item: dict, key: str) -> str | None:
    """The ``low`` / ``nominal`` / ``high`` of a catalog input in a ranges row (one naming its field, ``name:
    bf16_flops``, or ``input: ascend-910c.bf16_flops``), or a column holding a chip's peak rate (``*_peak_flops``,
    as :func:`trainsim.numfmt.axis_value` reads it: S6's ``effective_fp8_peak_flops``), in the unit the catalog
    prints (708 TFLOP/s, 96 GiB, 1.9 us), never raw SI (7.08e+14, 708T, 1.41e+15); None for any other cell or a
    field without a unit."""
    x = item.get(key)
    if key in ("low", "nominal", "high"):
        dim = FIELD_DIMS.get(str(item.get("name") or str(item.get("input") or "").rsplit(".", 1)[-1]))
    else:
        dim = "flops" if str(key).endswith("peak_flops") else None
    if dim is None or not isinstance(x, (int, float)) or isinstance(x, bool):
        return None
    return _fmt(float(x), dim)


def catalog_range(item: dict) -> str | None:
    """A catalog quantity's ``{name, low, nominal, high}`` (``name`` a catalog field, as :func:`catalog_input`
    reads it) as one cell in the catalog's unit: ``836-1,410 TFLOP/s`` or ``989 TFLOP/s (836-1,410 TFLOP/s)``, never
    a mix of styles (836T next to 1.41e+15); None when ``item`` names no catalog field."""
    cells = {k: catalog_input(item, k) for k in ("low", "nominal", "high")}
    if not any(cells.values()):
        return None
    lo, nom, hi = cells["low"], cells["nominal"], cells["high"]
    if lo and hi and lo != hi:
        unit = lo.split(" ", 1)[1] if " " in lo else ""
        span = f"{lo.split(' ', 1)[0]}-{hi}" if unit and hi.endswith(" " + unit) else f"{lo} - {hi}"
        return f"{nom} ({span})" if nom else span
    return nom or lo or hi


def sweep_value(col: str, x: Any) -> str:
    """A sweep column's value as the summary prints it (:func:`trainsim.numfmt.axis_value`)."""
    return axis_value(col, x)


def sweep_column(col: str) -> str:
    """A sweep column's short name (:func:`trainsim.numfmt.axis_name`)."""
    return axis_name(col)
