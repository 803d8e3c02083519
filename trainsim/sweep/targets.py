"""Axis targets: what an axis may vary, how its values are parsed, and how a value is applied to a point.

Two kinds of target:

* **mapping targets** (``chips``, ``system``, ``system.chip``, ``model``, ``model.*``, ``training.*``,
  ``plan.*``, ``assumptions.*``) are written into a copy of the base run-spec mapping before
  :func:`trainsim.parse_run` (``assumptions.*`` go to the cost assumptions);
* **system targets** (numeric fields of the resolved :class:`~trainsim.catalog.types.System`) are set with
  ``dataclasses.replace`` after the run is resolved, as a value or as a factor of the point's own value.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Annotated, Literal, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

from ..catalog.resolve import hbm_capacity
from ..catalog.types import System
from ..errors import TrainsimError, ambiguous, short, unknown
from ..types_checked import MAX_CHIPS, too_many_chips
from ..units import parse_count, parse_int_count, parse_length, parse_quantity
from ..spec import PlanSpec, TrainingSpec, is_domain_count
from ..model.inline import InlineModel
from ..assumptions import defaults


@dataclass(frozen=True)
class SystemField:
    """A system or chip field a sweep can vary: its dimension, ranges.yaml field and whether it is an integer."""

    dim: str                 # 'bytes_per_s', 'bytes', 'flops', 'seconds', 'watts', 'count', 'usd'
    range_field: str         # the ranges.yaml field (catalog low / nominal / high)
    integer: bool = False


SYSTEM_FIELDS: dict[str, SystemField] = {
    "system.chip.hbm_bw": SystemField("bytes_per_s", "hbm_bw"),
    "system.chip.hbm_bytes": SystemField("bytes", "hbm_bytes"),
    "system.chip.peak_flops": SystemField("flops", "bf16_flops"),
    "system.scale_up.size": SystemField("count", "scale_up_size", integer=True),
    "system.scale_up.bandwidth": SystemField("bytes_per_s", "scale_up_bw"),
    "system.scale_up.latency": SystemField("seconds", "scale_up_latency"),
    "system.scale_out.bandwidth": SystemField("bytes_per_s", "scale_out_bw"),
    "system.scale_out.latency": SystemField("seconds", "scale_out_latency"),
    "system.power_per_chip_w": SystemField("watts", "power_per_chip_w"),
    "system.price_per_chip_usd": SystemField("usd", "price_per_chip_usd"),
}

ALIASES = {
    "system.chip.hbm_bandwidth": "system.chip.hbm_bw",
    "system.chip.hbm_capacity": "system.chip.hbm_bytes", "system.chip.bf16_flops": "system.chip.peak_flops",
    "system.scale_up.bw": "system.scale_up.bandwidth", "system.scale_out.bw": "system.scale_out.bandwidth",
    "system.scale_up_size": "system.scale_up.size", "system.chips_per_domain": "system.scale_up.size",
    "training.batch": "training.global_batch_seqs", "plan.mb": "plan.micro_batch",
}
#: targets that could mean more than one field: refused with the choices, as ``sensitivity --vary hbm`` is
#: (``system.chip.hbm`` is HBM capacity or bandwidth; it used to mean capacity without a word)
AMBIGUOUS = {"system.chip.hbm": ("system.chip.hbm_capacity", "system.chip.hbm_bandwidth")}

SIMPLE = ("chips", "system", "system.chip", "model")
TRAINING_KEYS = ("tokens", "seq_len", "global_batch_seqs", "global_batch_tokens", "precision", "attention",
                 "elementwise_kernels", "fp8_recipe", "fp8_activations")
TRAINING_INT = ("seq_len", "global_batch_seqs")
TRAINING_COUNT = ("tokens", "global_batch_tokens")


def plan_keys() -> tuple[str, ...]:
    """The plan fields a sweep can set (those of :class:`~trainsim.spec.PlanSpec`)."""
    return tuple(PlanSpec.model_fields)


def canonical(target: str, where: str) -> str:
    """The canonical name of a target; unknown ones raise with close matches."""
    t = ALIASES.get(str(target).strip(), str(target).strip())
    if t in AMBIGUOUS:
        raise ambiguous(t, AMBIGUOUS[t], field=f"axes.{t}", where=where)
    if t in SIMPLE or t in SYSTEM_FIELDS:
        return t
    head, _, rest = t.partition(".")
    if head == "model" and rest:
        first = rest.split(".")[0]
        if first not in InlineModel.model_fields:
            raise unknown("inline model key", first, InlineModel.model_fields, field=f"axes.{t}", where=where)
        return t
    if head == "training" and rest in TRAINING_KEYS:
        return t
    if head == "plan" and rest in plan_keys():
        return t
    if head == "assumptions" and rest:
        if rest not in defaults().keys():
            raise unknown("assumption", rest, list(defaults().keys()), field=f"axes.{t}", where=where)
        return t
    options = list(SIMPLE) + list(SYSTEM_FIELDS) + [f"training.{k}" for k in TRAINING_KEYS] + \
        [f"plan.{k}" for k in plan_keys()] + ["model.KEY", "assumptions.KEY"]
    raise unknown("axis target", t, options, field="axes", where=where)


def choices(target: str) -> tuple | None:
    """The values a ``training.*`` / ``plan.*`` target can ever take when its run-spec field is a ``Literal``
    (``training.fp8_recipe``: delayed, current, mxfp8, blockwise; a plan field's list form takes the same), else
    None. Read from the field's annotation in :mod:`trainsim.spec`, the one place the choices live."""
    head, _, rest = target.partition(".")
    model = {"training": TrainingSpec, "plan": PlanSpec}.get(head)
    if model is None or rest not in model.model_fields:
        return None
    out: list = []

    def walk(tp) -> None:
        if get_origin(tp) is Literal:
            out.extend(get_args(tp))
        else:
            for a in get_args(tp):
                walk(a)

    walk(model.model_fields[rest].annotation)
    return tuple(dict.fromkeys(out)) or None


def is_system_field(target: str) -> bool:
    """Whether ``target`` is a system or chip field."""
    return target in SYSTEM_FIELDS


def is_integer(target: str) -> bool:
    """Whether ``target`` takes integer values."""
    if target in SYSTEM_FIELDS:
        return SYSTEM_FIELDS[target].integer
    return target == "chips" or target in {f"training.{k}" for k in TRAINING_INT}


def parse_number(target: str, value, field: str, where: str):
    """A numeric value of a numeric target in SI units (ints for integer targets); other values unchanged."""
    if target in SYSTEM_FIELDS:
        f = SYSTEM_FIELDS[target]
        if f.dim in ("count", "usd"):
            x = parse_count(value, field, where=where)
        elif target == "system.chip.hbm_bytes" and isinstance(value, str):   # "96 GB" is 96 GiB, as in a run spec
            x = hbm_capacity(value, field, where)
        else:
            x = parse_quantity(value, f.dim, field, where=where)
        if not math.isfinite(x) or x < 0 or (x == 0 and f.dim not in ("seconds", "usd")):
            raise TrainsimError(f"expected a positive value, got {value!r}", field=field, where=where)
        return _int(x, value, field, where) if f.integer else x
    if target == "chips" and is_domain_count(value):   # "4 pods": resolved per point, with the point's system
        _positive_chips(parse_count(value.split()[0], field, where=where), value, field, where)
        return " ".join(value.split())
    if target == "chips" and isinstance(value, str):
        try:
            n = parse_int_count(value, field, where=where)
        except TrainsimError:
            raise TrainsimError(f"expected a number of chips (64, '1,000', '25K') or whole scale-up domains of the "
                                f"point's system ('4 pods', '2 systems'), got {value[:80]!r}",
                                field=field, where=where) from None
        return _positive_chips(n, value, field, where)
    if target == "chips":   # 0 or -3 chips has no plan on any system: refused with the spec, not per point
        return _positive_chips(parse_int_count(value, field, where=where), value, field, where)
    # 0 or -5 tokens per sequence, sequences or tokens has no plan at any point: refused with the spec, as chips are
    if target == "training.seq_len" and isinstance(value, str):   # a length: "4K" = 4,096, as in a run spec
        return _positive(parse_length(value, field, where=where), value, field, where)
    if target in {f"training.{k}" for k in TRAINING_INT}:
        return _positive(parse_int_count(value, field, where=where), value, field, where)
    if target in {f"training.{k}" for k in TRAINING_COUNT}:
        return _positive(parse_count(value, field, where=where), value, field, where)
    return value


def check_value(target: str, value, field: str, where: str) -> None:
    """Refuse, with the spec, an axis value the point's run spec could never take, as ``sweep`` would refuse it at
    every point ('point 1: plan.tp: Input should be a valid integer'): a ``plan.*`` value that fails its
    :class:`~trainsim.spec.PlanSpec` field (type and field rule: tp 'two', zero 7, cp -2), a top-level ``model.*``
    value that fails its :class:`~trainsim.model.inline.InlineModel` field's type (layers 'x', hidden -1), an
    ``assumptions.*`` value the assumption table refuses, and a ``model`` / ``system`` / ``system.chip`` value that
    is neither an id / path nor an inline mapping. Field checks only: a value valid alone may still meet a value
    of another axis that refuses it, which the point reports."""
    head, _, rest = target.partition(".")
    try:
        if target in ("model", "system", "system.chip"):
            if not isinstance(value, (str, dict)) or (isinstance(value, str) and not value.strip()):
                raise TrainsimError(f"expected a catalog id, a file path or an inline mapping, got {value!r}")
        elif head == "plan":
            PlanSpec.model_validate({rest: value})
        elif head == "model" and rest in InlineModel.model_fields:
            f = InlineModel.model_fields[rest]   # the type with its constraints (PosInt: gt 0)
            TypeAdapter(Annotated[f.annotation, *f.metadata] if f.metadata else f.annotation).validate_python(value)
        elif head == "assumptions":
            defaults().with_overrides({rest: value})
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise TrainsimError(msg if "got " in msg else f"{msg}; got {short(value)}", field=field,
                            where=where) from None
    except TrainsimError as exc:   # the message without the field / file it named
        prefix = "".join(f"{x}: " for x in (exc.where, exc.field) if x)
        raise TrainsimError(str(exc).removeprefix(prefix), field=field, where=where) from None


def _positive(x, value, field: str, where: str):
    if not x > 0:
        raise TrainsimError(f"expected a positive number, got {value!r}", field=field, where=where)
    return x


def _positive_chips(n, value, field: str, where: str):
    """A chips axis value: a positive count of chips (or of scale-up domains, each at least one chip) of at most
    :data:`~trainsim.types_checked.MAX_CHIPS`, refused with the spec; 1e30 reached the Parquet writer as an int
    too large for int64 (exit 3)."""
    if n <= 0:
        raise TrainsimError(f"expected a positive number of chips or scale-up domains, got {value!r}", field=field,
                            where=where)
    if n > MAX_CHIPS:
        raise TrainsimError(too_many_chips(n), field=field, where=where)
    return n


def _int(x: float, value, field: str, where: str) -> int:
    if x != round(x):
        raise TrainsimError(f"expected a whole number, got {value!r}", field=field, where=where)
    return int(round(x))


def numeric(target: str) -> bool:
    """True when the target's values are numbers (so ranges, logspace and samples apply)."""
    return (target in SYSTEM_FIELDS or target == "chips" or target.startswith("model.")
            or target in {f"training.{k}" for k in TRAINING_INT + TRAINING_COUNT}
            or target.startswith("plan.") or target.startswith("assumptions."))


# ---------------------------------------------------------------- applying a point


def _set_path(d: dict, path: list[str], value) -> None:
    for key in path[:-1]:
        nxt = d.get(key)
        if not isinstance(nxt, dict):
            nxt = {}
            d[key] = nxt
        d = nxt
    d[path[-1]] = value


def apply_mapping(doc: dict, target: str, value, assumptions: dict) -> None:
    """Write a mapping-target value into the run-spec mapping ``doc`` (modified in place)."""
    if target == "chips":
        doc["chips"] = value
    elif target in ("system", "model"):
        doc[target] = copy.deepcopy(value)
    elif target == "system.chip":
        sysv = doc.get("system")
        if isinstance(sysv, dict):
            doc["system"] = {**sysv, "chip": copy.deepcopy(value)}
        else:
            doc["system"] = {"base": sysv, "chip": copy.deepcopy(value)}
    elif target.startswith("model."):
        model = doc.get("model")
        if not isinstance(model, dict):
            raise TrainsimError(f"a model.* axis needs an inline model in the base run, got {model!r}",
                                field=target)
        model = copy.deepcopy(model)
        _set_path(model, target.split(".")[1:], value)
        doc["model"] = model
    elif target.startswith("training."):
        key = target.split(".", 1)[1]
        tr = dict(doc.get("training") or {})
        tr[key] = value
        if key == "global_batch_seqs":
            tr.pop("global_batch_tokens", None)
        elif key == "global_batch_tokens":
            tr.pop("global_batch_seqs", None)
        doc["training"] = tr
    elif target.startswith("plan."):
        plan = dict(doc.get("plan") or {})
        plan[target.split(".", 1)[1]] = value
        doc["plan"] = plan
    elif target.startswith("assumptions."):
        assumptions[target.split(".", 1)[1]] = value
    else:  # pragma: no cover - canonical() admits nothing else
        raise TrainsimError(f"not a mapping target: {target}")


def system_value(system: System, target: str) -> float:
    """The current SI value of a numeric system target."""
    c, up = system.chip, system.levels[0]
    out = system.levels[1] if len(system.levels) > 1 else None
    return {
        "system.chip.hbm_bw": c.hbm_bw, "system.chip.hbm_bytes": c.hbm_bytes,
        "system.chip.peak_flops": c.peak_flops.get("bf16", 0.0),
        "system.scale_up.size": float(up.size or 1), "system.scale_up.bandwidth": up.bw,
        "system.scale_up.latency": up.latency_s,
        "system.scale_out.bandwidth": out.bw if out else c.scale_out_bw,
        "system.scale_out.latency": out.latency_s if out else 0.0,
        "system.power_per_chip_w": system.power_per_chip_w, "system.price_per_chip_usd": system.price_per_chip_usd,
    }[target]


def apply_system(system: System, target: str, value: float, scale: bool) -> System:
    """``system`` with one numeric field set to ``value`` (or multiplied by it when ``scale``)."""
    cur = system_value(system, target)
    if scale:
        if cur is None:
            raise TrainsimError(f"the system {system.id} has no {target.split('.', 1)[1]} to scale", field=target)
        value = cur * value
    c = system.chip
    levels = list(system.levels)
    if target == "system.chip.hbm_bw":
        c = c.with_(hbm_bw=float(value))
    elif target == "system.chip.hbm_bytes":
        c = c.with_(hbm_bytes=float(value))
    elif target == "system.chip.peak_flops":
        f = value / cur if cur else 0.0
        c = c.with_(peak_flops={k: (v * f if v else v) for k, v in c.peak_flops.items()})
    elif target == "system.scale_up.size":
        size = int(round(value))
        if size < 1:
            raise TrainsimError(f"expected a scale-up size >= 1, got {value!r}", field=target)
        # the wiring cut to the new size as a run spec's scale_up.size cuts it (catalog/resolve.py)
        levels[0] = levels[0].resized(size)
    elif target == "system.scale_up.bandwidth":
        levels[0] = replace(levels[0], bw=float(value))
        c = c.with_(scale_up_bw=float(value))
    elif target == "system.scale_up.latency":
        levels[0] = replace(levels[0], latency_s=float(value))
    elif target in ("system.scale_out.bandwidth", "system.scale_out.latency"):
        if len(levels) < 2:
            raise TrainsimError("the system has no scale-out level", field=target)
        if target.endswith("bandwidth"):
            levels[1] = replace(levels[1], bw=float(value))
            c = c.with_(scale_out_bw=float(value))
        else:
            levels[1] = replace(levels[1], latency_s=float(value))
    elif target == "system.power_per_chip_w":
        return system.with_(power_per_chip_w=float(value))
    elif target == "system.price_per_chip_usd":
        return system.with_(price_per_chip_usd=float(value))
    return system.with_(chip=c, levels=tuple(levels))


def catalog_range(system: System, target: str, where: str) -> tuple[float, float, float]:
    """The catalog (ranges.yaml) low / nominal / high of a numeric system target of ``system``."""
    name = SYSTEM_FIELDS[target].range_field
    r = system.ranges.get(name) or system.chip.ranges.get(name)
    if r is None:
        raise TrainsimError(f"the catalog has no range for {name} of system {system.id} (chip {system.chip.id}); "
                            f"give {{low, high}} instead", field=f"samples.inputs.{target}", where=where)
    return r.low, r.nominal, r.high
