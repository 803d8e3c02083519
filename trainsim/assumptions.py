"""Scenario assumptions (``scenario/data/assumptions.yaml``): defaults with source and confidence, overridable.

Every number a scenario uses that is not a catalog fact (amortisation life, $/kWh, rental prices, failure rate,
checkpoint and restart times, scaling-law ratios) is one entry here. A scenario YAML may override any of them
under ``assumptions:``; the override is reported with source ``scenario override``. :class:`Assumptions` records
which entries a computation read, so a result lists exactly the assumptions behind it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any


from .errors import TrainsimError
from .yamlload import load_data
from .errors import unknown
from .io import yaml_shape


@dataclass(frozen=True)
class Assumption:
    """One scenario assumption: key, value and unit, its source and confidence, a note and a low-high range."""

    key: str
    value: Any
    unit: str = ""
    source: str = ""
    confidence: str = "low"
    note: str = ""
    low: Any = None
    high: Any = None
    min: float | None = None      # the allowed values of an override: >= min, > above, <= max (assumptions.yaml)
    above: float | None = None
    max: float | None = None
    label: str = "a number"       # what the entry's bound names in an error ("a PUE")

    def check(self, v: Any, field: str | None = None) -> None:
        """Refuse an override value (a number, or a mapping of numbers: per-chip prices, a value with its range)
        outside the entry's allowed values: a boolean, NaN, infinity, below ``min``, not above ``above`` or above
        ``max``; one line naming ``field`` (default ``assumptions.KEY``). ``life_years: 0`` and
        ``checkpoint_write_bw: 0`` ended in a ZeroDivisionError (exit 3), ``interruptions_per_chip_hour: -1`` in a
        math domain error, ``restart_s: -600`` gave a goodput above 1, ``pue: 100`` 100x the facility energy
        (qa30a)."""
        field = field or f"assumptions.{self.key}"
        unit = f" ({self.unit})" if self.unit else ""
        for x in (v.values() if isinstance(v, dict) else [v]):
            if isinstance(x, bool):
                raise TrainsimError(f"expected a number, got {x!r}", field=field)
            if not isinstance(x, (int, float)):
                continue                    # a source or note string beside the value; a wrong type is said below
            if self.max is not None and not (x <= self.max and (self.min is None or x >= self.min)):   # NaN too
                span = (f"between {self.min:g} and {self.max:g}" if self.min is not None else f"<= {self.max:g}")
                raise TrainsimError(f"expected {self.label} {span}{unit}, got {x:g}", field=field)
            if self.min is not None and not (x >= self.min and x < float("inf")):
                raise TrainsimError(f"expected {self.label} >= {self.min:g}{unit}, got {x:g}", field=field)
            if self.above is not None and not (x > self.above and x < float("inf")):
                raise TrainsimError(f"expected {self.label} > {self.above:g}{unit}, got {x:g}", field=field)

    def to_dict(self) -> dict:
        """The assumption as a JSON-able dict (range and note only where set)."""
        out = {"key": self.key, "value": self.value, "unit": self.unit, "source": self.source,
               "confidence": self.confidence}
        if self.low is not None or self.high is not None:
            out["low"], out["high"] = self.low, self.high
        if self.note:
            out["note"] = self.note
        return out


def check_pue(value: float, field: str) -> None:
    """Refuse a PUE outside the bounds of assumptions.yaml's ``pue`` entry (1 to :data:`PUE_MAX`, NaN included):
    one line naming ``field`` (``--pue``, ``assumptions.pue``), the value and the range. ``--pue`` and a scenario's
    ``assumptions: {pue: ...}`` are checked by this one entry (qa29b, qa30a)."""
    check_entry("pue", value, field)


def check_entry(key: str, value: float, field: str) -> None:
    """Refuse ``value`` outside the bounds of assumptions.yaml's ``key`` entry (min / above / max, NaN included):
    one line naming ``field``, so that a command-line option (``--pue``, ``capacity --sparsity``) and a scenario's
    ``assumptions: {KEY: ...}`` are held to the same bounds."""
    _defaults()[key].check(value, field=field)


def _num(v):
    """PyYAML reads ``2.0e12`` (no exponent sign) as a string: turn numeric strings into floats, recursively."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    if isinstance(v, dict):
        return {k: _num(x) for k, x in v.items()}
    return v


@lru_cache(maxsize=1)
def _defaults() -> dict[str, Assumption]:
    text = resources.files("trainsim.scenario").joinpath("data/assumptions.yaml").read_text(encoding="utf-8")
    doc = load_data(text) or {}
    out = {}
    for key, e in (doc.get("assumptions") or {}).items():
        out[key] = Assumption(key=key, value=_num(e.get("value")), unit=str(e.get("unit", "")),
                              source=str(e.get("source", "")), confidence=str(e.get("confidence", "low")),
                              note=str(e.get("note", "")), low=_num(e.get("low")), high=_num(e.get("high")),
                              min=e.get("min"), above=e.get("above"), max=e.get("max"),
                              label=str(e.get("label", "a number")))
    return out


#: The largest PUE an override may state: assumptions.yaml's ``pue`` entry ``max``, with its source there.
PUE_MAX: float = float(_defaults()["pue"].max or 0.0)


class Assumptions:
    """The assumption table of one scenario: defaults merged with overrides; remembers what was read."""

    def __init__(self, table: dict[str, Assumption] | None = None):
        self._table = dict(table if table is not None else _defaults())
        self.used: list[str] = []

    # ---------------------------------------------------------------- reading
    def get(self, key: str) -> Assumption:
        """The assumption ``key``, recorded as used; an unknown key raises with the nearest names."""
        if key not in self._table:
            raise unknown("assumption", key, self._table, field="assumptions")
        if key not in self.used:
            self.used.append(key)
        return self._table[key]

    def __getitem__(self, key: str) -> Any:
        return self.get(key).value

    def bounds(self, key: str) -> tuple[Any, Any, Any]:
        """(low, nominal, high); a missing bound is the nominal value."""
        a = self.get(key)
        lo = a.value if a.low is None else a.low
        hi = a.value if a.high is None else a.high
        return lo, a.value, hi

    def keys(self):
        """The keys of every assumption in the table."""
        return self._table.keys()

    # ---------------------------------------------------------------- overriding
    def with_overrides(self, overrides: dict | None, source: str = "scenario override") -> "Assumptions":
        """A copy with ``overrides`` applied: ``{key: value}`` or ``{key: {value, low, high, source, note}}``;
        a mapping-valued entry (rental prices per chip) is merged key by key. An override of another shape than
        the entry's is one line naming it (a list, a scalar for a mapping, a {value: ...} that is no number ended
        in an AttributeError or TypeError, exit 3, or replaced the critical-batch rule silently: qa30a)."""
        if overrides is not None and not isinstance(overrides, dict):
            raise TrainsimError(f"expected a mapping of assumption: value (such as {{life_years: 4}}), got "
                                f"{yaml_shape(overrides)}", field="assumptions")
        table = dict(self._table)
        for key, v in (overrides or {}).items():
            v = _num(v)
            if key not in table:
                raise unknown("assumption", key, table, field="assumptions")
            base = table[key]
            base.check(v)           # its allowed values, on the value and on its range
            if isinstance(base.value, dict) and isinstance(v, dict) and "value" not in v:
                merged = {**base.value, **v}
                lo = {**(base.low or base.value), **v} if base.low is not None else None
                hi = {**(base.high or base.value), **v} if base.high is not None else None
                table[key] = replace(base, value=merged, low=lo, high=hi,
                                     source=f"{source} ({', '.join(v)}); otherwise: {base.source}")
            elif isinstance(v, dict) and "value" in v:
                for x in (v["value"], v.get("low"), v.get("high")):
                    if isinstance(base.value, (int, float)) and x is not None and not isinstance(x, (int, float)):
                        raise TrainsimError(f"expected a number, got {x!r}", field=f"assumptions.{key}")
                table[key] = replace(base, value=v["value"], low=v.get("low", v["value"]),
                                     high=v.get("high", v["value"]), source=v.get("source", source),
                                     confidence=v.get("confidence", base.confidence), note=v.get("note", base.note))
            else:
                if isinstance(base.value, dict):    # per-chip prices, the critical-batch rule: a mapping
                    k0, v0 = next(iter(base.value.items()))
                    raise TrainsimError(f"expected a mapping such as {{{k0}: {v0:g}}}, got {v!r}",
                                        field=f"assumptions.{key}")
                if isinstance(base.value, (int, float)) and not isinstance(v, (int, float)):
                    raise TrainsimError(f"expected a number, got {v!r}", field=f"assumptions.{key}")
                table[key] = replace(base, value=v, low=v, high=v, source=source, confidence="user")
        out = Assumptions(table)
        return out

    def report(self, keys=None) -> list[dict]:
        """The assumptions read so far (or ``keys``), each with value, range, source and confidence."""
        return [self._table[k].to_dict() for k in (keys if keys is not None else self.used)]


def defaults() -> Assumptions:
    """The shipped assumption table, without overrides."""
    return Assumptions()
