"""Axes -> points: expansion of the axis forms (lists, ranges, log-spaced ranges, catalog globs, zips, samples),
the mixed-radix numbering of the product (the last axis varies fastest) and a stable key per point."""
from __future__ import annotations

import fnmatch
import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np

from ..catalog.types import System
from ..errors import TrainsimError
from ..numfmt import axis_value
from ..types_checked import MAX_SCALE_FACTOR, check_scale_factor
from ..units import parse_count
from . import targets as T
from ..catalog.load import chips, systems
from ..errors import unknown


@dataclass(frozen=True)
class Axis:
    """One axis of the product: ``rows[k]`` is the k-th position, one value per target (aligned)."""

    name: str
    kind: str                          # 'values' | 'zip' | 'samples'
    targets: tuple[str, ...]
    scale: tuple[bool, ...]            # per target: the values are factors of the point's own value
    rows: tuple[tuple, ...]
    index_column: str | None = None    # samples: the draw index column
    names: tuple[str, ...] | None = None   # result column names where they differ from the default

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def default_columns(self) -> tuple[str, ...]:
        """Output column per target: the target name, with ``_scale`` where the axis scales it."""
        return tuple(t + ("_scale" if s else "") for t, s in zip(self.targets, self.scale))

    @property
    def columns(self) -> tuple[str, ...]:
        """The result column of each target: the target (``TARGET_scale`` for factors), or ``axis.TARGET`` where
        a recorded column has that name (``plan.tp`` given vs ``plan.tp`` of the best plan)."""
        return self.names if self.names is not None else self.default_columns

    def describe(self) -> dict:
        """The axis as JSON-ready data (name, kind, targets, columns, scale, size)."""
        return {"name": self.name, "kind": self.kind, "targets": list(self.targets), "columns": list(self.columns),
                "scale": list(self.scale), "size": len(self), "index_column": self.index_column}


@dataclass(frozen=True)
class Point:
    """One sweep point: its index, key, the (target, value, is_scale) assignment and its output columns."""

    index: int
    key: str
    assignment: tuple[tuple[str, object, bool], ...]   # (target, value, is_scale) in axis order
    columns: dict


# ---------------------------------------------------------------- value forms


def _clean(x):
    """numpy scalars -> Python numbers (pickling, JSON and Parquet stay plain)."""
    if isinstance(x, np.generic):
        return x.item()
    return x


def _grid_range(r, target: str, field: str, where: str, factors: bool) -> list:
    if not isinstance(r, dict) or set(r) != {"start", "stop", "step"}:
        raise TrainsimError(f"expected {{start, stop, step}}, got {r!r}", field=field, where=where)
    num = (lambda v, k: parse_count(v, f"{field}.{k}", where=where)) if factors else \
        (lambda v, k: T.parse_number(target, v, f"{field}.{k}", where))
    start, stop, step = (num(r[k], k) for k in ("start", "stop", "step"))
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (start, stop, step)):
        raise TrainsimError(f"expected numbers, got {r!r}", field=field, where=where)
    if step <= 0 or stop < start:
        raise TrainsimError(f"expected step > 0 and stop >= start, got {r!r}", field=field, where=where)
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    if n > 1_000_000:
        raise TrainsimError(f"{n:,} values on one axis; is the step right?", field=field, where=where)
    ints = all(float(x).is_integer() for x in (start, step)) and (
        T.is_integer(target) or all(isinstance(x, int) for x in (r["start"], r["step"])))
    vals = [start + i * step for i in range(n)]
    if ints and not factors:
        return [int(round(v)) for v in vals]
    return [float(f"{v:.12g}") for v in vals]


def _logspace(r, target: str, field: str, where: str, factors: bool) -> list:
    if not isinstance(r, dict) or set(r) != {"start", "stop", "num"}:
        raise TrainsimError(f"expected {{start, stop, num}}, got {r!r}", field=field, where=where)
    num = (lambda v, k: parse_count(v, f"{field}.{k}", where=where)) if factors else \
        (lambda v, k: T.parse_number(target, v, f"{field}.{k}", where))
    start, stop = num(r["start"], "start"), num(r["stop"], "stop")
    n = r["num"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise TrainsimError(f"expected a positive whole number, got {n!r}", field=f"{field}.num", where=where)
    if not (isinstance(start, (int, float)) and isinstance(stop, (int, float))) or start <= 0 or stop <= 0:
        raise TrainsimError(f"expected positive end values (not exponents), got {r!r}", field=field, where=where)
    vals = [float(f"{v:.12g}") for v in np.geomspace(start, stop, n)] if n > 1 else [float(start)]
    if T.is_integer(target) and not factors:
        out: list = []
        for v in vals:
            iv = int(round(v))
            if iv not in out:
                out.append(iv)
        return out
    return vals


def _catalog(glob, target: str, field: str, where: str) -> list[str]:
    if not isinstance(glob, str):
        raise TrainsimError(f"expected a glob such as 'nvidia-h*', got {glob!r}", field=field, where=where)
    if target == "system":
        ids = [k for k in systems()]
    elif target == "system.chip":
        ids = [k for k, c in chips().items() if c.usable]
    else:
        raise TrainsimError("catalog: applies to system and system.chip axes", field=field, where=where)
    hits = [k for k in ids if fnmatch.fnmatchcase(k, glob)]
    if not hits:
        raise TrainsimError(f"no catalog id matches {glob!r}", field=field, where=where)
    return hits


def _check_ids(target: str, vals: list, field: str, where: str) -> None:
    """Catalog ids on system / system.chip axes must exist (a typo is caught before the sweep starts)."""
    table = systems() if target == "system" else chips() if target == "system.chip" else None
    if table is None:
        return
    for v in vals:
        if isinstance(v, str) and v not in table and not (target == "system" and v.endswith((".yaml", ".yml"))):
            raise unknown("system" if target == "system" else "chip", v, table, field=field, where=where)


def _check_choices(target: str, vals: list, field: str, where: str) -> None:
    """A value outside a ``Literal`` field's choices (``training.fp8_recipe: [foo]``) can never be valid: refused
    with the spec, not as an input error at every point. ``null`` (the stack's default) passes where the field
    allows it; a plan field's list value is checked item by item."""
    allowed = T.choices(target)
    if allowed is None:
        return
    for i, v in enumerate(vals):
        for x in (v if isinstance(v, list) else [v]):
            if x is not None and x not in allowed:
                raise unknown(target.partition(".")[2], str(x), allowed, field=f"{field}[{i}]", where=where)


def values(target: str, spec, field: str, where: str) -> tuple[list, bool]:
    """The values of one target from an axis value form; returns (values, values_are_factors)."""
    scale = False
    if isinstance(spec, list):
        raw = spec
    elif isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in ("values", "range", "logspace", "scale",
                                                                             "catalog"):
        (form, arg), = spec.items()
        if form == "values":
            if not isinstance(arg, list):
                raise TrainsimError(f"expected a list, got {arg!r}", field=f"{field}.values", where=where)
            raw = arg
        elif form == "catalog":
            raw = _catalog(arg, target, f"{field}.catalog", where)
        elif form in ("range", "logspace"):
            if not T.numeric(target):
                raise TrainsimError(f"{form} needs a numeric target", field=field, where=where)
            fn = _grid_range if form == "range" else _logspace
            return fn(arg, target, f"{field}.{form}", where, False), False
        else:  # scale
            if not T.is_system_field(target):
                raise TrainsimError("scale: applies to numeric system.* targets; give values instead",
                                    field=field, where=where)
            scale = True
            if isinstance(arg, list):
                raw = arg
            elif isinstance(arg, dict) and len(arg) == 1 and next(iter(arg)) in ("range", "logspace"):
                (form2, arg2), = arg.items()
                fn = _grid_range if form2 == "range" else _logspace
                raw = fn(arg2, target, f"{field}.scale.{form2}", where, True)
            else:
                raise TrainsimError(f"expected a list of factors or {{range: ...}} / {{logspace: ...}}, got {arg!r}",
                                    field=f"{field}.scale", where=where)
    elif isinstance(spec, dict):
        raise TrainsimError("expected a list, or one of {values | range | logspace | scale | catalog: ...}; an "
                            "inline mapping value goes inside a list", field=field, where=where)
    else:
        raw = [spec]
    if not raw:
        raise TrainsimError("an empty list of values", field=field, where=where)
    if scale:
        out = []
        for i, f in enumerate(raw):
            x = parse_count(f, f"{field}[{i}]", where=where)
            if not check_scale_factor(x):
                raise TrainsimError(f"expected a positive factor from {1 / MAX_SCALE_FACTOR:g} to "
                                    f"{MAX_SCALE_FACTOR:g}, got {f!r}", field=f"{field}[{i}]", where=where)
            out.append(float(x))
        return out, True
    out = [_clean(T.parse_number(target, v, f"{field}[{i}]", where)) for i, v in enumerate(raw)]
    for i, v in enumerate(out):
        T.check_value(target, v, f"{field}[{i}]", where)
    _check_ids(target, out, field, where)
    _check_choices(target, out, field, where)
    return out, False


# ---------------------------------------------------------------- samples


def _draw(rng, dist: str, lo: float, hi: float, mode, n: int, field: str, where: str) -> np.ndarray:
    if not (lo < hi):
        raise TrainsimError(f"expected low < high, got {lo:g} and {hi:g}", field=field, where=where)
    if dist == "uniform":
        return rng.uniform(lo, hi, n)
    if dist == "loguniform":
        if lo <= 0:
            raise TrainsimError("loguniform needs low > 0", field=field, where=where)
        return np.exp(rng.uniform(math.log(lo), math.log(hi), n))
    if dist == "triangular":
        m = 0.5 * (lo + hi) if mode is None else mode
        if not lo <= m <= hi:
            raise TrainsimError(f"expected low <= mode <= high, got mode {m:g}", field=field, where=where)
        return rng.triangular(lo, m, hi, n)
    raise TrainsimError(f"expected dist uniform, loguniform or triangular, got {dist!r}", field=field, where=where)


def _samples(name: str, spec, base_system: System, where: str) -> Axis:
    field = f"axes.{name}.samples"
    if not isinstance(spec, dict) or not set(spec) <= {"n", "seed", "inputs"} or "n" not in spec or \
            "inputs" not in spec:
        raise TrainsimError(f"expected {{n, seed, inputs: {{TARGET: DIST}}}}, got {spec!r}", field=field, where=where)
    n, seed = spec["n"], spec.get("seed", 0)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise TrainsimError(f"expected a positive whole number, got {n!r}", field=f"{field}.n", where=where)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TrainsimError(f"expected a whole number, got {seed!r}", field=f"{field}.seed", where=where)
    inputs = spec["inputs"]
    if not isinstance(inputs, dict) or not inputs:
        raise TrainsimError("expected a mapping TARGET: DIST", field=f"{field}.inputs", where=where)
    rng = np.random.default_rng(seed)
    tgts, scales, cols = [], [], []
    for key, dist in inputs.items():
        t = T.canonical(key, where)
        f = f"{field}.inputs.{key}"
        scale = False
        if dist == "catalog":
            if not T.is_system_field(t):
                raise TrainsimError("catalog ranges exist for numeric system.* targets only", field=f, where=where)
            lo, nom, hi = T.catalog_range(base_system, t, where)
            draws = list(rng.triangular(lo, nom, hi, n))
        elif isinstance(dist, dict) and set(dist) == {"values"}:
            vals, _ = values(t, dist, f, where)
            draws = [vals[i] for i in rng.integers(0, len(vals), n)]
        elif isinstance(dist, dict) and set(dist) == {"scale"}:
            if not T.is_system_field(t):
                raise TrainsimError("scale: applies to numeric system.* targets", field=f, where=where)
            s = dist["scale"]
            if not isinstance(s, dict) or not {"low", "high"} <= set(s) <= {"low", "high", "dist", "mode"}:
                raise TrainsimError(f"expected {{low, high, dist?}}, got {s!r}", field=f"{f}.scale", where=where)
            lo, hi = (parse_count(s[k], f"{f}.scale.{k}", where=where) for k in ("low", "high"))
            for k, x in (("low", lo), ("high", hi)):     # as a scale axis's factors: the draws lie between them
                if not check_scale_factor(x):
                    raise TrainsimError(f"expected a positive factor from {1 / MAX_SCALE_FACTOR:g} to "
                                        f"{MAX_SCALE_FACTOR:g}, got {s[k]!r}", field=f"{f}.scale.{k}", where=where)
            mode = None if s.get("mode") is None else parse_count(s["mode"], f"{f}.scale.mode", where=where)
            draws = list(_draw(rng, s.get("dist", "uniform"), lo, hi, mode, n, f"{f}.scale", where))
            scale = True
        elif isinstance(dist, dict) and {"low", "high"} <= set(dist) <= {"low", "high", "dist", "mode"}:
            if not T.numeric(t):
                raise TrainsimError("low/high need a numeric target", field=f, where=where)
            lo, hi = (float(T.parse_number(t, dist[k], f"{f}.{k}", where)) for k in ("low", "high"))
            mode = None if dist.get("mode") is None else float(T.parse_number(t, dist["mode"], f"{f}.mode", where))
            draws = list(_draw(rng, dist.get("dist", "uniform"), lo, hi, mode, n, f, where))
        else:
            raise TrainsimError(f"expected catalog, {{low, high, dist?}}, {{scale: {{low, high}}}} or "
                                f"{{values: [...]}}, got {dist!r}", field=f, where=where)
        draws = [_clean(x) for x in draws]
        if T.is_integer(t) and not scale:
            draws = [int(round(x)) for x in draws]
        elif all(isinstance(x, float) for x in draws):
            draws = [float(f"{x:.12g}") for x in draws]
        tgts.append(t)
        scales.append(scale)
        cols.append(draws)
    rows = tuple(tuple(c[i] for c in cols) for i in range(n))
    return Axis(name=name, kind="samples", targets=tuple(tgts), scale=tuple(scales), rows=rows, index_column=name)


# ---------------------------------------------------------------- axes


def expand_axis(key: str, spec, base_system: System, where: str) -> Axis:
    """One ``axes:`` entry -> an :class:`Axis`."""
    key = str(key)
    if isinstance(spec, dict) and set(spec) == {"zip"}:
        z = spec["zip"]
        if not isinstance(z, dict) or not z:
            raise TrainsimError("expected a mapping TARGET: VALUES", field=f"axes.{key}.zip", where=where)
        tgts, scales, cols = [], [], []
        for t, v in z.items():
            ct = T.canonical(t, where)
            vals, scale = values(ct, v, f"axes.{key}.zip.{t}", where)
            tgts.append(ct)
            scales.append(scale)
            cols.append(vals)
        if len({len(c) for c in cols}) != 1:
            raise TrainsimError(f"zipped lists differ in length: {', '.join(f'{t} {len(c)}' for t, c in zip(z, cols))}",
                                field=f"axes.{key}.zip", where=where)
        rows = tuple(zip(*cols))
        _check_distinct(rows, tuple(tgts), tuple(scales), f"axes.{key}.zip", where)
        return Axis(name=key, kind="zip", targets=tuple(tgts), scale=tuple(scales), rows=rows)
    if isinstance(spec, dict) and set(spec) == {"samples"}:
        return _samples(key, spec["samples"], base_system, where)
    if key == "samples" and isinstance(spec, dict) and "inputs" in spec:
        return _samples(key, spec, base_system, where)
    t = T.canonical(key, where)
    vals, scale = values(t, spec, f"axes.{key}", where)
    rows = tuple((v,) for v in vals)
    _check_distinct(rows, (t,), (scale,), f"axes.{key}", where)
    return Axis(name=key, kind="values", targets=(t,), scale=(scale,), rows=rows)


def _check_distinct(rows: tuple[tuple[object, ...], ...], targets: tuple[str, ...], scales: tuple[bool, ...],
                    field: str, where: str) -> None:
    """A position given twice on one axis (``plan.tp: [8, 8, 16]``, or a zip row repeated) would run the same
    points twice: refused with the spec, as an empty list or a target varied by two axes is (values compared as
    parsed, so ``8`` and ``8.0`` or ``"1 TB/s"`` and ``1e12`` are one value), each value named in the unit a person
    reads (:func:`trainsim.numfmt.axis_value`: ``1,600 GB/s``, not the SI ``1600000000000.0`` of ``"1.6 TB/s"``
    and ``"1600 GB/s"``; a factor of a ``scale:`` list as ``x0.5``). Generated forms that round to a repeat (an
    integer ``logspace``) drop it where they are made (:func:`_logspace`)."""
    def shown(t: str, v, scale: bool) -> str:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return repr(v)
        return f"x{v:g}" if scale else axis_value(t, v)

    first: dict[tuple[object, ...], int] = {}
    for i, row in enumerate(rows):
        k = tuple(json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for v in row)
        if k in first:
            what = (f"value {shown(targets[0], row[0], scales[0])}" if len(row) == 1 else
                    "row " + ", ".join(f"{t} {shown(t, v, sc)}" for t, v, sc in zip(targets, row, scales)))
            raise TrainsimError(f"{what} is given twice (positions {first[k]} and {i}); each point would run twice",
                                field=field, where=where)
        first[k] = i


def check_axes(axes: list[Axis], where: str) -> None:
    """Reject two axes varying one target, or an axis index column named like a target."""
    seen: dict[str, str] = {}
    for a in axes:
        for t in a.targets:
            if t in seen:
                raise TrainsimError(f"target {t} is varied by two axes ({seen[t]} and {a.name})", field="axes",
                                    where=where)
            seen[t] = a.name
        if a.index_column is not None and a.index_column in seen:
            raise TrainsimError(f"axis name {a.index_column} collides with a target", field="axes", where=where)


def n_points(axes) -> int:
    """Points in the full grid: the product of the axis lengths."""
    n = 1
    for a in axes:
        n *= len(a)
    return n


def _jsonable(v):
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    return v


def point(axes, i: int) -> Point:
    """Point ``i`` of the product (mixed radix, last axis fastest)."""
    sizes = [len(a) for a in axes]
    pos = [0] * len(axes)
    rest = i
    for k in range(len(axes) - 1, -1, -1):
        rest, pos[k] = divmod(rest, sizes[k])
    if rest:
        raise IndexError(f"point {i} out of range")
    assignment, cols = [], {}
    for a, p in zip(axes, pos):
        if a.index_column is not None:
            cols[a.index_column] = p
        for t, s, c, v in zip(a.targets, a.scale, a.columns, a.rows[p]):
            assignment.append((t, v, s))
            cols[c] = _jsonable(v)
    draws = {a.index_column: p for a, p in zip(axes, pos) if a.index_column is not None}
    blob = json.dumps([[[t, s, v] for t, v, s in assignment], draws], sort_keys=True, separators=(",", ":"),
                      default=str)
    key = hashlib.sha1(blob.encode()).hexdigest()[:16]
    return Point(index=i, key=key, assignment=tuple(assignment), columns=cols)
