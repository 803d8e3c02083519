"""Quantities with units at the edges, SI floats inside.

Strings such as ``"3.2 TB/s"``, ``"400 Gb/s"``, ``"128 GiB"`` or ``"14.8T"`` (a bare count with a metric
suffix) are parsed by a small grammar for the units the catalog uses (number, SI or IEC prefix, B / bit / FLOP /
W, optional /s; times in s, ms, us, ns, min, h, day) and by pint for anything else; bits and bytes are distinct
units, so ``Gb/s`` is never read as ``GB/s``.
Inside trainsim every quantity is a float in base units: bytes, bytes/s, FLOP/s, seconds, watts.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache

from .errors import TrainsimError, short

_COUNT_SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}
_COUNT_RE = re.compile(r"^\s*([0-9.eE+-]+)\s*([kKMBGTP]?)\s*$")

#: the longest unit or count string parsed; checked before any parsing (pint's parser is superlinear in length,
#: and no real quantity needs more than "1,234.5 TFLOP/s")
MAX_QUANTITY_CHARS = 64


def _finite(x: float, value, field: str, where: str | None, human: str) -> float:
    if not math.isfinite(x):
        raise TrainsimError(f"expected {human} (a finite number), got {short(value)}", field=field, where=where)
    return x

# dimension name -> (pint unit to convert to, human description)
_DIMS = {
    "bytes": ("byte", "a size such as '80 GB' or '96 GiB'"),
    "bytes_per_s": ("byte / second", "a bandwidth such as '3.35 TB/s' or '400 Gb/s'"),
    "flops": ("FLOP / second", "a rate such as '989 TFLOP/s'"),
    "seconds": ("second", "a time such as '2 us' or '90 day'"),
    "watts": ("watt", "a power such as '700 W'"),
}


# the tiny parser: "<number> <prefix><unit>[/s]" for the units the catalog and run specs use, so that start-up does
# not build pint's registry (~0.4 s); anything else goes to pint. Prefixes are SI (k = 1e3 ... P = 1e15) or IEC
# (Ki = 2^10 ... Pi = 2^50); "b" / "bit" is a bit (1/8 byte), "B" a byte; tests/test_units.py checks it against pint
# on every string of the catalog.
_PREFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
           "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}
_TIME_PREFIX = {"": 1.0, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9}
_BASE = {"B": ("bytes", 1.0), "byte": ("bytes", 1.0), "b": ("bits", 0.125), "bit": ("bits", 0.125),
         "FLOP": ("flop", 1.0), "W": ("watts", 1.0)}
_TINY_RE = re.compile(r"^([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*"
                      r"(Ki|Mi|Gi|Ti|Pi|[kKMGTP]?)(B|byte|bit|b|FLOP|W)(/s|ps)?$")
_TIME_RE = re.compile(r"^([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(m|u|µ|n)?(s|sec|second|seconds)$")
_DAY_RE = re.compile(r"^([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(day|days|h|hour|hours|min|minute|minutes)$")
_DAY = {"day": 86400.0, "days": 86400.0, "h": 3600.0, "hour": 3600.0, "hours": 3600.0, "min": 60.0,
        "minute": 60.0, "minutes": 60.0}


def _tiny(text: str, dim: str) -> float | None:
    """``text`` in SI base units of ``dim`` when the tiny grammar covers it, else None (pint decides)."""
    m = _TINY_RE.match(text)
    if m:
        num, pre, unit, per_s = m.groups()
        kind, scale = _BASE[unit]
        if kind in ("bytes", "bits"):
            ok = dim == ("bytes_per_s" if per_s else "bytes")
        elif kind == "flop":
            ok = dim == "flops" and per_s is not None
        else:
            ok = dim == "watts" and per_s is None
        if not ok or (pre.endswith("i") and kind not in ("bytes", "bits")):
            return None
        if unit == "b" and pre == "":       # a bare "b" is ambiguous (barn in pint); let pint say no
            return None
        return float(num) * _PREFIX[pre] * scale
    if dim == "seconds":
        m = _TIME_RE.match(text)
        if m:
            return float(m.group(1)) * _TIME_PREFIX[m.group(2) or ""]
        m = _DAY_RE.match(text)
        if m:
            return float(m.group(1)) * _DAY[m.group(2)]
    return None


#: pint's information units. pint defines the bit as dimensionless (pint 0.25.3 default_en.txt: 'bit = []',
#: 'byte = 8 * bit = B = octet', 'baud = bit / second = Bd = bps'), so a size or bandwidth with no bit or byte
#: in it converted: '450 GHz' was read as 56.25 GB/s, '80 ppm' as 1e-5 bytes, '80 dimensionless' as 10 bytes
_INFORMATION_UNITS = ("bit", "byte", "baud")


def _information_power(q, ureg) -> float:
    """The power of information (bit, byte, baud) in pint quantity ``q``'s units: 1 for '8 GB' or '400 Gb/s', 0
    for '450 GHz'. A size or bandwidth must carry exactly one (``parse_quantity``)."""
    # q._units (a UnitsContainer, name -> exponent): Quantity.unit_items() is pint >= 0.24, the floor is 0.23
    return sum(exp for name, exp in q._units.items() if ureg.parse_unit_name(name)[0][1] in _INFORMATION_UNITS)


@lru_cache(maxsize=1)
def _ureg():
    import pint

    ureg = pint.UnitRegistry()
    ureg.define("FLOP = [flop] = flop")
    ureg.define("FLOPS = FLOP / second")
    return ureg


def parse_quantity(value, dim: str, field: str, *, where: str | None = None) -> float:
    """Return ``value`` as a float in SI base units of ``dim``.

    A plain number is taken as already in the base unit (bytes, bytes/s, FLOP/s, s, W).
    """
    if isinstance(value, bool):
        raise TrainsimError(f"expected {_DIMS[dim][1]}, got {value!r}", field=field, where=where)
    if isinstance(value, (int, float)):
        return _finite(_float(value, field, where), value, field, where, _DIMS[dim][1])
    if not isinstance(value, str):
        raise TrainsimError(f"expected {_DIMS[dim][1]}, got {short(value)}", field=field, where=where)
    target, human = _DIMS[dim]
    if len(value) > MAX_QUANTITY_CHARS:
        raise TrainsimError(f"expected {human} (at most {MAX_QUANTITY_CHARS} characters), got {short(value)}",
                            field=field, where=where)
    text = ungrouped(value.strip()).replace("TFLOPS", "TFLOP/s").replace("PFLOPS", "PFLOP/s")
    if "," in text:     # pint drops every comma: '1,5 TB/s' (a decimal comma) was 15 TB/s, '2,5 us' 25 us
        raise TrainsimError(f"expected {human} (a comma only between groups of three digits), got {short(value)}",
                            field=field, where=where)
    plain = plain_number(text)
    if plain is not None:       # "3e12": a YAML 1.1 loader leaves an exponent without a dot and sign a string
        return _finite(plain, value, field, where, human)
    fast = _tiny(text, dim)
    if fast is not None:
        return fast
    # networking 'b' is a bit (pint would read 'Gb' as gilbert): Gb/s, Gbps, Mb -> Gbit/s, Mbit
    text = re.sub(r"(?<=[kKMGTP])bps\b", "bit/s", text)
    text = re.sub(r"(?<=[kKMGTP])b\b", "bit", text)
    try:
        ureg = _ureg()
        q = ureg.Quantity(text)
        x = float(q.to(target).magnitude)
        if dim in ("bytes", "bytes_per_s") and _information_power(q, ureg) != 1:
            raise ValueError("no bit or byte")     # a dimensionless quantity pint converts (_INFORMATION_UNITS)
    except Exception:
        raise TrainsimError(f"expected {human}, got {short(value)}", field=field, where=where) from None
    return _finite(x, value, field, where, human)


_PLAIN_RE = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


def plain_number(text: str) -> float | None:
    """``text`` as a float when it is a plain number without a unit (``"3e12"``, ``"2.0e12"``, ``"1024"``), else
    None. PyYAML reads YAML 1.1, whose floats need a dot and a signed exponent (``3.0e+12``), so ``3e12`` and
    ``3.0e12`` in a spec arrive as strings; a field that takes a plain number takes them too."""
    return float(text) if _PLAIN_RE.match(text) else None


def _float(value, field: str, where: str | None) -> float:
    try:
        return float(value)
    except OverflowError:  # an int with hundreds of digits
        raise TrainsimError(f"expected a finite number, got {short(value)}", field=field, where=where) from None


#: a run of digits grouped in thousands by one separator, "," or "_" ("1,024", "10_000_000")
_GROUPED_RE = re.compile(r"(?<![0-9.,_])[0-9]{1,3}([,_])[0-9]{3}(?:\1[0-9]{3})*(?![0-9,_])")


def ungrouped(text: str) -> str:
    """``text`` with its thousands separators removed ("1,024" -> "1024", "2,048 pods" -> "2048 pods"), or the text
    unchanged where a separator is not between groups of three digits, so that the number parse refuses it:
    removing every comma read "1,5T" (a European 1.5T) as 15T tokens and "1,0,0" as 100 chips. The one place a
    count, a length or a chip count loses its separators."""
    out = _GROUPED_RE.sub(lambda m: m.group(0).replace(m.group(1), ""), text)
    return text if "," in out or "_" in out else out


def parse_count(value, field: str, *, where: str | None = None) -> float:
    """A dimensionless count: ``14.8e12``, ``"14.8T"``, ``"35T"``, ``"2M"``."""
    human = "a number such as 14.8e12 or '14.8T'"
    if isinstance(value, bool):
        raise TrainsimError(f"expected {human}, got {value!r}", field=field, where=where)
    if isinstance(value, (int, float)):
        return _finite(_float(value, field, where), value, field, where, human)
    if isinstance(value, str) and len(value) <= MAX_QUANTITY_CHARS:
        m = _COUNT_RE.match(ungrouped(value))
        if m:
            try:
                x = float(m.group(1)) * _COUNT_SUFFIX[m.group(2)]
            except ValueError:
                pass
            else:
                return _finite(x, value, field, where, human)
    raise TrainsimError(f"expected {human}, got {short(value)}", field=field, where=where)


#: binary multiples of the count suffixes (k = 1,024, M = 2^20, G / B = 2^30), for :func:`batch_tokens_as_stated`
_BINARY_SUFFIX = {"k": 2.0**10, "K": 2.0**10, "M": 2.0**20, "B": 2.0**30, "G": 2.0**30}


def batch_tokens_as_stated(value: object, decimal: float, seq_len: int) -> float:
    """A global batch stated in tokens with a suffix, as its source means it. Batches are whole sequences, and
    sources that quote one in tokens use binary multiples: Llama 2 (arXiv 2307.09288 sec. 2.2) and Llama 3
    (arXiv 2407.21783 sec. 3.4.1) train on "4M tokens" of 4,096-token sequences = 1,024 x 4,096 = 4,194,304
    (4,000,000 / 4,096 = 976.6 is no batch); metaseq's OPT launcher writes 2M as ``int(2.0 * M)``, M = 1024 x 1024
    (metaseq/launcher/opt_job_constants.py). So the decimal reading ``decimal`` (:func:`parse_count`) is kept when
    it is a whole number of ``seq_len`` sequences ("64M" / 4,096 = 15,625), else the binary one when that is
    ("4M" / 4,096 = 1,024), else the decimal one (rounded to whole sequences by the spec)."""
    if not isinstance(value, str) or float(decimal / seq_len).is_integer():
        return decimal
    m = _COUNT_RE.match(ungrouped(value))
    if m is None or m.group(2) not in _BINARY_SUFFIX:
        return decimal
    try:
        binary = float(m.group(1)) * _BINARY_SUFFIX[m.group(2)]
    except ValueError:
        return decimal
    return binary if float(binary / seq_len).is_integer() else decimal


def percent_value(text: str) -> float | None:
    """``text`` as a fraction when it is a plain number or a percentage (``"0.1"``, ``"10%"`` -> 0.1), else None:
    the one reading of a stated share that :func:`parse_fraction`, ``sensitivity --threshold`` and
    ``training.batch_tolerance`` each check against their own range."""
    t = text.strip()
    pct = t.endswith("%")
    num = plain_number(t[:-1].strip() if pct else t)
    return None if num is None else (num / 100.0 if pct else num)


def parse_fraction(value, field: str, *, where: str | None = None, below_one: bool = False) -> float:
    """A positive fraction as people state it: ``0.1`` or ``"10%"`` (finite, > 0; with ``below_one`` also < 1), as
    ``sensitivity --threshold`` takes it; anything else is one error line."""
    human = "a fraction such as 0.1 or '10%'" + (" below 1" if below_one else "")
    x = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        x = float(value)
    elif isinstance(value, str) and len(value) <= MAX_QUANTITY_CHARS:
        x = percent_value(value)
    if x is None or not (math.isfinite(x) and x > 0) or (below_one and x >= 1):
        raise TrainsimError(f"expected {human}, got {short(value)}", field=field, where=where)
    return x


def parse_int_count(value, field: str, *, where: str | None = None) -> int:
    """A whole-number count (chips, sequences per batch) in the grammar of :func:`parse_count`: ``64``, ``"1,024"``,
    ``"2k"`` = 2,000, ``"1.5K"`` = 1,500; a value that is not a whole number (``"0.3"``) is one error line. The one
    parser for integer counts, so every integer field takes the suffixes ``chips`` and ``tokens`` take."""
    x = parse_count(value, field, where=where)
    if not float(x).is_integer():
        raise TrainsimError(f"expected a whole number such as 1024, '1,024' or '1K', got {short(value)}",
                            field=field, where=where)
    return int(x)


#: binary suffixes for lengths in tokens: sequence lengths are powers of two in every source ("4K" context =
#: 4,096 tokens, "128K" = 131,072), so a length's K is 1,024 and its M 1,048,576 (counts keep the decimal reading)
_LENGTH_SUFFIX = {"": 1, "k": 1024, "K": 1024, "m": 1024**2, "M": 1024**2}
_LENGTH_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmM]?)\s*$")


def parse_length(value, field: str, *, where: str | None = None):
    """A length in tokens (seq_len, input_len, output_len) as people state it: ``4096``, ``"4,096"``, ``"4k"`` or
    ``"4K"`` = 4,096, ``"128K"`` = 131,072, ``"1M"`` = 1,048,576 -- the binary reading (K = 1,024), because
    sequence lengths are powers of two in every source; the decimal ``parse_int_count`` would read "4k" as 4,000.
    A value that is not a whole number of tokens is one error line; non-strings are returned unchanged (left to
    the integer type check)."""
    if not isinstance(value, str):
        return value
    m = _LENGTH_RE.match(ungrouped(value)) if len(value) <= MAX_QUANTITY_CHARS else None
    if m is not None:
        x = float(m.group(1)) * _LENGTH_SUFFIX[m.group(2)]
        if x.is_integer():
            return int(x)
    raise TrainsimError(f"expected a length in tokens such as 4096, '4,096' or '4K' (K = 1,024), got {short(value)}",
                        field=field, where=where)


# unit conversions used at the catalog edge (the catalog research file stores numbers in these units)
TERA = 1e12
GIGA = 1e9
GB = 1e9
GIB = 2**30


def gbit_to_bytes_per_s(gbps: float) -> float:
    """Gb/s (1e9 bit/s) -> byte/s: divide by 8 bits per byte."""
    return gbps * 1e9 / 8.0


def bytes_per_s_to_gbit(bytes_per_s: float) -> float:
    """byte/s -> Gb/s (1e9 bit/s), as network links are quoted (400 Gb/s): times 8 bits per byte; the inverse of
    :func:`gbit_to_bytes_per_s`."""
    return bytes_per_s * 8.0 / 1e9
