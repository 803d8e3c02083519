"""The sweep spec (format v1; see :mod:`trainsim.sweep`): loading, validation and the compiled
:class:`SweepSpec` that every worker receives (plain data: the base mapping, the expanded axes, the columns)."""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from ..errors import TrainsimError, unknown
from .evaluate import GROUPS, HEAD, TAIL, record_columns
from .points import Axis, Point, check_axes, expand_axis, n_points, point
from .._version import __version__
from ..io import load_spec_file, read_text, require_file, spec_kind, yaml_shape
from ..io.specfile import SPEC_COMMAND, SPEC_LABEL
from ..spec import parse_run
from ..model.load import resolve_model
from ..assumptions import defaults
from .evaluate import COLUMN_DEFINITIONS

KEYS = ("name", "base", "axes", "record", "assumptions", "notes")
FORMAT = 1


def _version() -> str:
    return __version__


def _axis_type(values: list) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "bool"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int64"
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float64"
    return "string"


@dataclass(frozen=True)
class SweepSpec:
    """A compiled sweep: what a worker needs to evaluate any point, and what the Parquet file records."""

    name: str
    text: str                          # the sweep spec YAML as written (file metadata)
    base_doc: dict                     # the base run-spec mapping
    base_dir: str | None               # absolute folder that relative paths of the base run resolve against
    axes: tuple[Axis, ...]
    columns: tuple[tuple[str, str], ...]   # (name, Arrow type) of every result column, in order
    groups: tuple[str, ...]
    assumptions: dict = field(default_factory=dict)
    path: str | None = None
    digest: str = ""
    cost_overrides: dict = field(default_factory=dict)   # --price-per-chip-hour / --pue / --electricity

    def with_cost_overrides(self, overrides: dict) -> "SweepSpec":
        """A copy whose cost columns use ``overrides`` (keyword arguments of :func:`trainsim.cost.run_cost`:
        ``price_per_chip_hour``, ``pue``, ``electricity_usd_per_kwh``); the digest changes with them, so
        ``--resume`` never mixes rows priced differently."""
        if not overrides:
            return self
        src = json.dumps({"digest": self.digest, "cost_overrides": overrides}, sort_keys=True)
        return replace(self, cost_overrides=dict(overrides), digest=hashlib.sha256(src.encode()).hexdigest()[:24])

    @property
    def n_points(self) -> int:
        """Points in the sweep's grid."""
        return n_points(self.axes)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of the output columns, in order."""
        return tuple(c for c, _ in self.columns)

    def point(self, i: int) -> Point:
        """The ``i``-th point of the grid."""
        return point(self.axes, i)

    def metadata(self) -> dict[str, str]:
        """The Parquet schema metadata: spec text, resolved base run, axes, version, digest."""
        return {
            "trainsim.version": _version(),
            "trainsim.sweep.format": str(FORMAT),
            "trainsim.sweep.spec": self.text,
            "trainsim.sweep.name": self.name,
            "trainsim.sweep.base_run": yaml.safe_dump(self.base_doc, sort_keys=False),
            "trainsim.sweep.axes": json.dumps([a.describe() for a in self.axes]),
            "trainsim.sweep.points": str(self.n_points),
            "trainsim.sweep.digest": self.digest,
            "trainsim.sweep.cost_overrides": json.dumps(self.cost_overrides, sort_keys=True),
            "trainsim.sweep.columns": json.dumps(_column_definitions(self.column_names)),
        }


def _load_base(value, base_dir: Path | None, where: str) -> tuple[dict, Path | None]:
    if isinstance(value, dict):
        return dict(value), base_dir
    if not isinstance(value, str) or not value:
        raise TrainsimError(f"expected a run-spec path or an inline run-spec mapping, got {value!r}", field="base",
                            where=where)
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise TrainsimError(f"no such run spec {str(path)!r}", field="base", where=where)

    doc = load_spec_file(path, None, what="run spec")
    return doc, path.parent


def parse_sweep(doc, *, base_dir: Path | str | None = None, text: str | None = None, where: str = "sweep spec",
                path: str | None = None) -> SweepSpec:
    """Validate a sweep-spec mapping, resolve the base run once (errors surface before any point runs) and
    expand the axes."""
    if not isinstance(doc, dict):
        raise TrainsimError(f"expected a mapping with base: and axes:, got {yaml_shape(doc)}", where=where)
    for k in doc:
        if k not in KEYS:
            raise unknown("key", str(k), KEYS, where=where)
    if "base" not in doc:
        raise TrainsimError("missing required key 'base' (a run-spec path or mapping)", where=where)
    base_dir = Path(base_dir).resolve() if base_dir is not None else None
    base_doc, run_dir = _load_base(doc["base"], base_dir, where)
    kind = spec_kind(base_doc) if isinstance(base_doc, dict) else "run"
    if kind != "run":   # was 'base: serving: unknown key (typo?)' -- the run-spec reader's view of another kind
        raise TrainsimError(f"the base is a {SPEC_LABEL[kind]} spec ({SPEC_COMMAND[kind]}); a sweep varies a run "
                            "spec", field="base", where=where)
    run_dir = run_dir.resolve() if run_dir is not None else None
    base_run = parse_run(base_doc, base_dir=run_dir, where=f"{where}: base")
    axes_doc = doc.get("axes") or {}
    if not isinstance(axes_doc, dict):
        raise TrainsimError("expected a mapping TARGET: VALUES", field="axes", where=where)
    axes = [expand_axis(k, v, base_run.system, where) for k, v in axes_doc.items()]
    check_axes(axes, where)
    _check_models(axes, base_doc.get("model"), run_dir, where)
    record = doc.get("record")
    if record is not None and not isinstance(record, list):
        raise TrainsimError(f"expected a list of groups ({', '.join(GROUPS)}) or columns, got {record!r}",
                            field="record", where=where)
    rec = record_columns(record, where)  # first: it checks that every item is a name
    groups = tuple(r for r in (record or ("inputs", "time", "memory", "plan", "cost", "binding")) if r in GROUPS)
    assumptions = doc.get("assumptions") or {}
    if not isinstance(assumptions, dict):
        raise TrainsimError("expected a mapping of assumption overrides", field="assumptions", where=where)
    if assumptions:
        defaults().with_overrides(assumptions)   # unknown keys and bad values fail here, not per point

    recorded = {c for c, _ in rec}
    for k, a in enumerate(axes):   # an axis column that a recorded column would shadow is renamed axis.TARGET
        # chips: a numeric axis column is the recorded one; "4 pods" keeps its own column beside the count
        names = tuple(f"axis.{c}" if c in recorded and (c != "chips" or any(isinstance(r[j], str) for r in a.rows))
                      else c for j, c in enumerate(a.default_columns))
        if names != a.default_columns:
            axes[k] = replace(a, names=names)
    cols: list[tuple[str, str]] = list(HEAD)
    for a in axes:
        if a.index_column is not None:
            cols.append((a.index_column, "int64"))
        for j, c in enumerate(a.columns):
            vals = [r[j] for r in a.rows]
            vals = [json.dumps(v, sort_keys=True, separators=(",", ":")) if isinstance(v, (dict, list)) else v
                    for v in vals]
            cols.append((c, _axis_type(vals)))
    taken = {c for c, _ in cols}
    cols += [c for c in rec if c[0] not in taken]       # chips: the axis column is the recorded one
    cols += list(TAIL)
    name = str(doc.get("name") or (Path(path).stem if path else base_doc.get("name") or "sweep"))
    text = text if text is not None else yaml.safe_dump(doc, sort_keys=False)
    digest_src = json.dumps({"base": base_doc, "axes": [[a.name, a.targets, a.scale, a.rows] for a in axes],
                             "columns": cols, "assumptions": assumptions, "version": _version()},
                            sort_keys=True, default=str)
    digest = hashlib.sha256(digest_src.encode()).hexdigest()[:24]
    return SweepSpec(name=name, text=text, base_doc=base_doc, base_dir=str(run_dir) if run_dir else None,
                     axes=tuple(axes), columns=tuple(cols), groups=groups, assumptions=dict(assumptions), path=path,
                     digest=digest)


def _check_models(axes, base_model, run_dir: Path | None, where: str) -> None:
    """Refuse with the spec what every point of a model axis would refuse: a ``model`` value that resolves to no
    model (an unknown catalog id, a missing file; :func:`trainsim.model.load.resolve_model`, as each point resolves
    it against the base run's folder), and a ``model.*`` axis beside a base run whose model is not an inline
    mapping (:func:`trainsim.sweep.targets.apply_mapping`), unless a ``model`` axis supplies the model."""
    varied = {t for a in axes for t in a.targets}
    for a in axes:
        for k, t in enumerate(a.targets):
            at = f"axes.{a.name}" + (f".zip.{t}" if a.kind == "zip" else "")
            if t == "model":
                for i, row in enumerate(a.rows):
                    resolve_model(row[k], run_dir, field=f"{at}[{i}]", where=where)
            elif t.startswith("model.") and "model" not in varied and not isinstance(base_model, dict):
                raise TrainsimError(f"a model.* axis needs an inline model in the base run, got {base_model!r}",
                                    field=at, where=where)


def load_sweep(path: str | Path) -> SweepSpec:
    """Load a sweep-spec YAML file (safe loader only)."""
    path = Path(path)
    require_file(path, what="sweep spec")
    text = read_text(path, what="sweep spec")
    return load_spec_file(path, functools.partial(parse_sweep, text=text, path=str(path)), what="sweep spec",
                          text=text)


def _column_definitions(names) -> dict[str, str]:
    """What each recorded utilisation column is measured against (labels for MFU/HFU, issue #16 item 3)."""
    return {k: v for k, v in COLUMN_DEFINITIONS.items() if k in names}
