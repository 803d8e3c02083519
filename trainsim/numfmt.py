"""One number format for every human-readable output (terminal tables, HTML, CSV labels); ``--json`` keeps raw SI.

* counts: 3 significant digits with a k / M / B / T suffix (``2.92M``); below 10,000 plain with separators;
* money: the same with a dollar sign (``$29.2M``, ``$950``);
* ranges: ``29.2M (7.1M-90M)`` -- nominal, then low-high in the same style;
* snake_case keys become labels (``pod_price_usd`` -> ``pod price (USD)``).
"""
from __future__ import annotations

import math
import re

from .units import GIB, GIGA, TERA, gbit_to_bytes_per_s

_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, without trailing zeros or exponent (for |x| < 1e15)."""
    if x == 0:
        return "0"
    d = max(digits - 1 - int(math.floor(math.log10(abs(x)))), 0)
    s = f"{x:.{d}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def fraction(x: float, digits: int = 1) -> str:
    """A fraction as a percentage to ``digits`` decimals (``0.412`` -> ``41.2%``), with as many more (up to 4) as a
    fraction below 1 needs not to print as 100%: a goodput of 0.99965 read 'with failures ... goodput 100.0%'
    beside effective days above the ideal ones; it is ``99.97%``."""
    for d in range(digits, max(digits, 4) + 1):
        s = f"{x:.{d}%}"
        if not (x < 1.0 and s.startswith("100.")):
            return s
    return f"{x:.{max(digits, 4)}%}"


def rate_cell(x: float | None) -> str:
    """A throughput in a validation table cell (tokens/s per chip): whole from 100 up (``1,234``), one decimal
    below (``87.5``), ``-`` for none."""
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.1f}"


def pct_cell(x: float | None, signed: bool = True) -> str:
    """A fraction in a validation table cell as a percentage with one decimal: ``+12.3%`` (``signed``, an error or
    a bias) or ``12.3%`` (a magnitude), ``-`` for none."""
    if x is None:
        return "-"
    return f"{x:+.1%}" if signed else f"{x:.1%}"


def counted(n: int, noun: str) -> str:
    """An exact count with its noun, singular for one: ``1 point``, ``1,024 points``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def days_text(days: float) -> str:
    """A stated wall-clock duration (a deadline) in days, singular for one: ``1 day``, ``0.5 days``, ``90 days``
    (``:g``, as written); a computed one is :func:`days`."""
    return f"{days:g} day{'' if days == 1 else 's'}"


def days(d: float | None, unit: bool = True) -> str:
    """A computed duration in days (a run's, a probe's): ``54.3 days``, grouped from 1,000 on (``1,234.5 days``);
    under 0.1 days two significant figures and the time in seconds, minutes or hours (``2.1e-05 days (1.8 s)``),
    never a ``0.0 days`` no run takes; ``n/a`` when unknown or infinite. ``unit`` False leaves out the word (a table
    cell under a 'days' header: ``54.3``, ``0.0099 (14.3 min)``)."""
    if d is None or not math.isfinite(d):
        return "n/a"
    word = " days" if unit else ""
    if d >= 0.1:
        return f"{d:,.1f}{word}"
    s = d * 86400.0
    short = f"{s:.1f} s" if s < 60 else f"{s / 60:.1f} min" if s < 3600 else f"{s / 3600:.1f} h"
    return f"{d:.2g}{word} ({short})"


def count(x: float | int | None, unit: str = "", digits: int = 3) -> str:
    """A count with a magnitude suffix: ``2.92M``; ``unit`` is appended after a space (``2.92M GPU-hours``)."""
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    a = abs(x)
    if a == 0:                                   # $0 at a zero price, never 0.00e+00
        s = "0"
    elif a >= 1e15:
        s = f"{x:.{digits - 1}e}"
    elif a >= 1e4:
        i = next(j for j, (scale, _) in enumerate(_SUFFIXES) if a >= scale)
        if i > 0 and abs(float(sig(x / _SUFFIXES[i][0], digits))) >= 1000:   # 999.96k rounds to 1M
            i -= 1
        s = sig(x / _SUFFIXES[i][0], digits) + _SUFFIXES[i][1]
    elif isinstance(x, int) or a >= 100:
        s = f"{int(round(x)):,}"
    elif a >= 1e-3:
        s = sig(float(x), digits)
    else:
        s = f"{x:.{digits - 1}e}"
    return f"{s} {unit}" if unit else s


def money(x: float | None, digits: int = 3) -> str:
    """USD: ``$29.2M``, ``$512k``, ``$950``, ``$2.5`` (3 significant digits)."""
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return count(x)
    sign = "-" if x < 0 else ""
    return f"{sign}${count(abs(float(x)), digits=digits)}"


def gib(b: float) -> str:
    """Bytes in GiB, one decimal: ``68.7 GiB`` (HBM capacity and memory per chip; :data:`trainsim.units.GIB`);
    from a million GiB on, three significant digits (``1.37e+290 GiB``, not a 291-digit number: a serving spec's
    ``prefill_tokens_per_chip: 1e300`` printed every digit of its need)."""
    g = b / GIB
    return f"{g:.3g} GiB" if abs(g) >= 1e6 else f"{g:.1f} GiB"


def span(nominal, low=None, high=None, fn=count) -> str:
    """A range: ``29.2M (7.1M-90M)``; just the nominal when low and high are missing or equal."""
    s = fn(nominal)
    if low is not None and high is not None and low != high:
        s += f" ({fn(low)}-{fn(high)})"
    return s


#: decimal byte units a key may end in (``hbm_pb``), and the same followed by ``_s`` for a rate (``hbm_bandwidth_pb_s``)
BYTE_UNITS = {"kb": "kB", "mb": "MB", "gb": "GB", "tb": "TB", "pb": "PB"}
#: decimal bit units a rate key may end in, followed by ``_s`` (``wan_gbit_s``: Gbit/s)
BIT_UNITS = {"kbit": "kbit", "mbit": "Mbit", "gbit": "Gbit", "tbit": "Tbit"}
#: FLOP units after ``peak_``: a peak is a rate (``peak_eflops``: EFLOP/s)
PEAK_UNITS = {"flops": "FLOP/s", "tflops": "TFLOP/s", "pflops": "PFLOP/s", "eflops": "EFLOP/s"}


#: a dot that joins two parts of a flattened result key: any dot but one between two digits, which belongs to a
#: number inside a part ("ratio_to_reference.Llama 3.1 405B", "tokens_vs_scale_out_bandwidth.x0.5")
_KEY_SEP = re.compile(r"(?<!\d)\.|\.(?!\d)")


def key_parts(key: str) -> list[str]:
    """The parts of a dotted (flattened) result key, a number's decimal point kept inside its part:
    ``ratio_to_reference.LongCat-2.0 class (S2)`` -> ``["ratio_to_reference", "LongCat-2.0 class (S2)"]``."""
    return _KEY_SEP.split(str(key))


def label(key: str) -> str:
    """A snake_case key as a human label: units in names become a parenthesised unit (``*_peak_flops``, a rate,
    ``(FLOP/s)``; ``peak_eflops`` ``(EFLOP/s)``; ``hbm_pb`` ``(PB)``; ``hbm_bandwidth_pb_s`` ``(PB/s)``;
    ``wan_gbit_s`` ``(Gbit/s)``, never the seconds a bare trailing ``_s`` means)."""
    units = {"usd": "USD", "mwh": "MWh", "s": "s", "bytes": "bytes", "gib": "GiB", "w": "W", "kwh": "kWh",
             "flops": "FLOP", "flop": "FLOP", "h": "h", **BYTE_UNITS}
    parts = key.split("_")
    unit = None
    low = [x.lower() for x in parts]
    if "usd" in low[:-1] and low[low.index("usd") + 1] == "per":   # rental_usd_per_chip_hour: a rate
        i = low.index("usd")
        rate = "USD per " + " ".join(parts[i + 2:])
        return f"{label('_'.join(parts[:i]))} ({rate})" if i else rate
    if len(parts) >= 2 and low[-2] == "peak" and low[-1] in PEAK_UNITS:   # a peak is a rate
        return f"{label('_'.join(parts[:-1]))} ({PEAK_UNITS[low[-1]]})"
    if len(parts) > 2 and low[-1] == "s" and low[-2] in BYTE_UNITS:         # bytes per second
        return f"{label('_'.join(parts[:-2]))} ({BYTE_UNITS[low[-2]]}/s)"
    if len(parts) >= 2 and low[-1] == "s" and low[-2] in BIT_UNITS:         # bits per second: wan_gbit_s
        head = label('_'.join(parts[:-2]))
        return f"{head} ({BIT_UNITS[low[-2]]}/s)" if head else f"{BIT_UNITS[low[-2]]}/s"
    # "per s" / "per h" is a rate of the word before it: tokens_per_s -> "tokens/s", tokens_per_s_per_chip ->
    # "tokens/s per chip" (never "tokens per (s)", which reads as a unit of the whole label)
    i = 1
    while i + 1 < len(parts):
        if parts[i].lower() == "per" and parts[i + 1].lower() in ("s", "h"):
            parts = parts[:i - 1] + [f"{parts[i - 1]}/{parts[i + 1].lower()}"] + parts[i + 2:]
        else:
            i += 1
    if len(parts) > 1 and parts[-1].lower() in units:
        unit = units[parts[-1].lower()]
        parts = parts[:-1]
    words = " ".join(parts)
    for a, b in (("per chip", "per chip"), ("mfu", "MFU"), ("hfu", "HFU"), ("hbm", "HBM"), ("tp", "TP"),
                 ("pp", "PP"), ("ep", "EP"), ("dp", "DP")):
        words = " ".join(b if w == a else w for w in words.split(" "))
    return f"{words} ({unit})" if unit else words


def is_money_key(key: str) -> bool:
    """Whether a result key holds an amount of money (``*_usd``, ``usd_*``, ``cost*``, ``*price``)."""
    k = key.lower()
    return k.endswith("_usd") or "usd_" in k or k.startswith("cost") or k.endswith("price")


# ---------------------------------------------------------------- sweep axes (columns and values of a sweep)


def axis_label(v) -> str:
    """A sweep axis value as a short label (3 significant digits; a whole count grouped, ``24,960``; ``-`` for
    None)."""
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "-" if v is None else str(v)


def axis_name(col: str) -> str:
    """A column name without its ``system.``, ``training.``, ``model.`` ... prefix."""
    for prefix in ("system.chip.", "system.", "training.", "model.", "assumptions."):
        if col.startswith(prefix):
            return col[len(prefix):]
    return col


#: display scale and unit per dimension of a quantity: the one table of the units people read (HBM capacity in
#: GiB, as the catalog reads vendors' "80 GB"; network links in bits, as vendors state them; peaks in TFLOP/s)
#: GiB's bytes, Gb/s's 1e9 / 8 byte/s and the decimal prefixes are units.py's (one conversion each)
DISPLAY_UNITS = {
    "flops": (TERA, "TFLOP/s"), "bytes": (GIB, "GiB"), "bytes_per_s": (GIGA, "GB/s"),
    "bits_per_s": (gbit_to_bytes_per_s(1.0), "Gb/s"),
    "seconds": (1e-6, "us"), "watts": (1.0, "W"), "usd": (1.0, "USD"), "count": (1.0, ""),
}


def _in_unit(x: float, unit: str) -> str:
    """A quantity already in its display unit: 4 significant digits, grouped (``3,350 GB/s``), from 10,000 up a
    grouped whole number (``14,400 GB/s``), never an exponent."""
    return f"{x:,.0f} {unit}" if abs(x) >= 1e4 else f"{x:,.4g} {unit}"


def in_unit(value: float | None, dim: str) -> str:
    """``value`` (SI) of dimension ``dim`` (a key of :data:`DISPLAY_UNITS`) in the unit people read: ``989
    TFLOP/s``, ``80 GiB``, ``3,350 GB/s``, ``400 Gb/s``, ``2 us``, ``1,275 W``; the one quantity format of the
    catalog's tables, ``check``'s resolved system and the sweep axes. 4 significant digits grouped by thousands
    (``812.5 W``, ``3,350 GB/s``), from 10,000 up a grouped whole number (``14,400 GB/s``), never an exponent;
    whole counts (chips per domain, ``8,192``) and dollars (``33,625 USD``, the catalog's sourced price) grouped
    whole; ``-`` for None."""
    if value is None:
        return "-"
    scale, unit = DISPLAY_UNITS[dim]
    x = value / scale
    if dim == "usd" or (dim == "count" and float(x).is_integer()):
        return f"{x:,.0f} {unit}".strip()
    return _in_unit(x, unit).strip()


def axis_value(col: str, x) -> str:
    """An axis value in the unit a person reads (the file holds SI numbers), each scaled once here: network links
    in Gb/s, other bandwidths in GB/s, HBM capacity in GiB, latencies in us, other times in s (us below 1 ms),
    peaks in TFLOP/s, power in W, money in dollars (:func:`money`), token counts with a suffix (:func:`count`), a
    factor as ``x0.5``."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return axis_label(x)
    if col.endswith("_scale"):
        return f"x{x:g}"
    if col.endswith(("scale_out.bandwidth", "inter_site.bandwidth", "scale_out_bw", "scale_out_bw_bytes_per_s")):
        return in_unit(x, "bits_per_s")   # network links in bits, as the catalog states them
    if col.endswith(("bandwidth", "_bw", "_bytes_per_s")):   # hbm_bw, assumptions.checkpoint_write_bw
        return in_unit(x, "bytes_per_s")
    if col.endswith("hbm_bytes"):
        return in_unit(x, "bytes")          # HBM capacity in GiB everywhere (the vendors' '80 GB' is 80 GiB)
    if col.endswith("latency"):
        return in_unit(x, "seconds")
    if col.endswith("_s"):
        return f"{x * 1e6:.3g} us" if abs(x) < 1e-3 else f"{x:.3g} s"   # assumptions.restart_s, min_layer_latency_s
    if col.endswith("peak_flops"):
        return in_unit(x, "flops")
    if col.endswith("_w"):
        return in_unit(x, "watts")                  # system.power_per_chip_w
    if is_money_key(col.rsplit(".", 1)[-1]):
        return money(x)                          # system.price_per_chip_usd, assumptions.*_usd / *price
    if col.endswith("tokens"):
        return count(x)                          # 2M, 14.8T: never 0.002B for a 2M-token batch
    return axis_label(x)


PLAN_KEYS = ("tp", "pp", "vpp", "dp", "ep", "etp", "cp", "zero", "zero_shard_group", "recompute", "micro_batch",
             "schedule")


def plan(p: dict | None, *, empty: str = "-", keys: tuple[str, ...] = PLAN_KEYS, node_limit: bool = True) -> str:
    """A plan mapping as ``tp=8 pp=16 ... schedule=1f1b`` (the fields of ``keys`` it has, in that order), plus
    ``node_limit=N`` when set and ``node_limit``; ``empty`` for no plan. The one plan formatter (re-exported by
    :mod:`trainsim.report.fmt`): the terminal, the HTML pages, the validation table, the scenario tables and the
    serving tables (``keys=("chips", "tp", "pp", "dp", "ep", "etp")``) call it."""
    if not p:
        return empty
    s = " ".join(f"{k}={p[k]}" for k in keys if k in p)
    if node_limit and p.get("node_limit"):
        s += f" node_limit={p['node_limit']}"
    return s
