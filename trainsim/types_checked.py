"""Pydantic field types that check inputs at the edge: integers that are integers (never booleans), finite
numbers, and physical ranges.

YAML reads ``true`` as a boolean and pydantic's lax mode turns it into 1; ``.inf`` and ``1e400`` are floats that
overflow every later formula. These annotated types refuse both once, where the spec is validated, so the
engine never sees them. The upper bounds are far above any real system or model and exist so that no
arithmetic or enumeration downstream can be asked for an absurd size (see :data:`MAX_CHIPS`).
"""
from __future__ import annotations

import math
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from .errors import TrainsimError, readable_count
from .units import parse_length

#: the largest chip count any command accepts: a plan search over 10^7 chips takes seconds (all candidate values
#: are divisors of the chip count, found by factorisation); the largest announced clusters are ~10^6 chips
MAX_CHIPS = 10_000_000
#: the largest model dimension accepted (hidden, ffn, vocab, head counts): real models are below 10^6
MAX_DIM = 100_000_000
#: the largest layer count accepted (real models: < 1,000)
MAX_LAYERS = 100_000
#: the largest sequence length accepted (tokens)
MAX_SEQ_LEN = 100_000_000
#: the largest token count accepted for a run (10^18 tokens: ~10^5 times the largest published runs)
MAX_TOKENS = 1e18
#: the widest multiplier of a hardware value accepted (`sensitivity --factors`, a sweep's `scale:` axis): 10^6 either
#: way already spans HBM bandwidth from 3 MB/s to 3 EB/s; past it a peak overflows a float (1e300 x 752 TFLOP/s) or a
#: step time does (1e-300 x 3.2 TB/s), and the engine's invariants, not the input check, would refuse the value
MAX_SCALE_FACTOR = 1e6


def check_scale_factor(f: float) -> bool:
    """True when ``f`` is a usable multiplier of a hardware value: finite and within 1 / :data:`MAX_SCALE_FACTOR`
    .. :data:`MAX_SCALE_FACTOR`."""
    return math.isfinite(f) and 1.0 / MAX_SCALE_FACTOR <= f <= MAX_SCALE_FACTOR


def _no_bool(v):
    if isinstance(v, bool):
        raise ValueError(f"expected a number, got a boolean ({str(v).lower()})")
    return v


def as_field_error(parse, *args):
    """``parse(*args)`` inside a pydantic validator: a :class:`TrainsimError` it raises becomes a ``ValueError``, so
    that the one-line error (:func:`trainsim.errors.from_validation`) gives the field's whole path
    (``links.0.bandwidth``, ``training.seq_len``), not the bare key."""
    try:
        return parse(*args)
    except TrainsimError as exc:
        raise ValueError(str(exc)) from None


def _length(v):
    """A string length ("4K") in tokens by :func:`trainsim.units.parse_length` (binary K); other values unchanged."""
    return as_field_error(parse_length, _no_bool(v), None)


def lower_case(v):
    """A precision or other lower-case keyword as people write it ("BF16", "FP8"): a string folded to lower case
    (with surrounding blanks removed) before the ``Literal`` check; other values unchanged."""
    return v.strip().lower() if isinstance(v, str) else v


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError(f"expected a finite number, got {v}")
    return v


#: the longest id or path string accepted for a model, system or chip (checked before any lookup)
MAX_ID_CHARS = 1000
#: a catalog id or a file path
IdStr = Annotated[str, StringConstraints(max_length=MAX_ID_CHARS)]

#: an integer (booleans refused) of at most :data:`MAX_DIM` in size (no later conversion to int64 can overflow)
Int = Annotated[int, BeforeValidator(_no_bool), Field(ge=-MAX_DIM, le=MAX_DIM)]
#: a positive integer up to :data:`MAX_DIM`
PosInt = Annotated[int, BeforeValidator(_no_bool), Field(gt=0, le=MAX_DIM)]
#: a non-negative integer up to :data:`MAX_DIM`
NonNegInt = Annotated[int, BeforeValidator(_no_bool), Field(ge=0, le=MAX_DIM)]
def too_many_chips(v) -> str:
    """The one message for a chip count above :data:`MAX_CHIPS`, with the count as :func:`readable_count` prints it."""
    return (f"expected at most {MAX_CHIPS:,} chips (larger counts are refused: no plan search or sizing is offered "
            f"beyond that), got {readable_count(v)}")


def _chip_count(v):
    """Before the integer check: a float above :data:`MAX_CHIPS` (``chips: 1.0e+30``) is too many chips, not
    pydantic's 'unable to parse input string as an integer, exceeded maximum size'."""
    v = _no_bool(v)
    if isinstance(v, float) and math.isfinite(v) and v > MAX_CHIPS:
        raise ValueError(too_many_chips(v))
    return v


def _chips(v: int) -> int:
    if v < 1:
        raise ValueError(f"expected a positive number of chips, got {readable_count(v)}")
    if v > MAX_CHIPS:
        raise ValueError(too_many_chips(v))
    return v


#: a chip count: 1 .. :data:`MAX_CHIPS`
Chips = Annotated[int, BeforeValidator(_chip_count), AfterValidator(_chips)]
#: a chip count as a scenario file states it: an integer (:data:`Chips`) or a string read against the run's system
#: by :func:`trainsim.spec.chips_as_stated` ("25K", "24 pods"), the one parser of run specs' ``chips``
StatedChips = Chips | Annotated[str, StringConstraints(max_length=100)]
#: a layer count: 1 .. :data:`MAX_LAYERS`
Layers = Annotated[int, BeforeValidator(_no_bool), Field(gt=0, le=MAX_LAYERS)]
#: a sequence length in tokens: 1 .. :data:`MAX_SEQ_LEN`; a string takes the binary suffixes ("4K" = 4,096)
SeqLen = Annotated[int, BeforeValidator(_length), Field(gt=0, le=MAX_SEQ_LEN)]
#: a finite float (booleans, inf and nan refused)
FiniteFloat = Annotated[float, BeforeValidator(_no_bool), AfterValidator(_finite)]
#: a finite float > 0
PosFloat = Annotated[float, BeforeValidator(_no_bool), AfterValidator(_finite), Field(gt=0)]
#: a finite float >= 0
NonNegFloat = Annotated[float, BeforeValidator(_no_bool), AfterValidator(_finite), Field(ge=0)]


def positive_count(x: float | None, name: str, *, upper: float | None = None) -> float | None:
    """Check a parsed count (tokens, batch tokens): finite, > 0 and at most ``upper``; raises ``ValueError``."""
    if x is None:
        return None
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a positive number, got {x:g}")
    if upper is not None and x > upper:
        raise ValueError(f"{name} must be at most {upper:g}, got {x:g}")
    return x
