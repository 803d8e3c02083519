"""What every scenario kind shares: reading a scenario file, the typed input base, the result of ``compute``, the
helpers that turn runs into rows with ranges, and :func:`register_kind`, which ties a kind's input model,
``compute(inputs, base_dir) -> KindResult`` (numbers only) and ``verdict(result) -> (class, text)`` together.

A kind's handler (what :func:`trainsim.scenario.registry.handler` returns) takes ``(doc, base_dir)`` and returns a
dict with ``id``, ``kind``, ``claim``, ``question``, ``verdict`` (a sentence that starts with "supported",
"not supported" or "depends on ..."), ``verdict_class``, ``numbers`` (scalars, or ``{low, nominal, high}`` where an
input is uncertain), ``best_plan``, ``assumptions`` (each with its source) and ``validation_error``. Numbers come
from the engine; nothing here hard-codes a result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from ...errors import TrainsimError, from_validation, refuse_unknown_keys, short
from ...model.counts import count, training_flops_6nd
from ...spec import chips_as_stated, load_run
from ...perf.calibration import validation_error
from ...assumptions import Assumptions
from ..common import best, make_run, where_time_goes
from ..economics import economics
from ..goodput import goodput, goodput_range
from ..ranges import propagate
from ..registry import register
from ...assumptions import _num
from ...io import read_yaml, yaml_shape
from ...units import parse_count, parse_int_count
from ...catalog.resolve import resolve_system
from ...catalog.load import get_chip
from ...units import GIB
from ...frameworks import chip_vendor, default_framework, default_framework_rule, framework_of

# ---------------------------------------------------------------- helpers


def _need(doc: dict, key: str):
    if key not in doc:
        raise TrainsimError("missing key", field=key, where=f"scenario {doc.get('id', '?')}")
    return doc[key]


def _listify(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _assumptions(doc: dict) -> Assumptions:
    return Assumptions().with_overrides(doc.get("assumptions"))


def load_doc(path: Path) -> dict:
    """A scenario YAML; numeric strings under ``claimed`` and ``frontier_model`` become numbers (PyYAML reads
    ``1.6e12`` without an exponent sign as a string)."""
    path = Path(path)
    if not path.exists():
        raise TrainsimError(f"no such scenario file: {path}")

    doc = read_yaml(path, what="scenario file")
    if not isinstance(doc, dict):
        raise TrainsimError(f"expected a mapping of scenario keys, got {yaml_shape(doc)}", where=str(path))
    for key in ("claimed", "frontier_model"):
        if isinstance(doc.get(key), dict):
            doc[key] = _num(doc[key])
    refs = doc.get("reference_runs")
    if refs is not None and not isinstance(refs, list):   # 'reference_runs: 7' iterated an int (exit 3)
        raise TrainsimError(f"expected a list of published runs, got {yaml_shape(refs)}", field="reference_runs",
                            where=str(path))
    for i, r in enumerate(refs or []):
        if isinstance(r, dict) and "flops" in r:     # '3.29e24' (a YAML 1.1 string) or '3.3e24'; 'abc' one line
            r["flops"] = parse_count(r["flops"], f"reference_runs[{i}].flops", where=str(path))
    return doc


def _sibling(doc: dict, key: str, base_dir: Path) -> dict:
    return load_doc(Path(base_dir) / _need(doc, key))


def _system_id(system) -> str:
    if isinstance(system, str):
        return system
    return str(system.get("id") or system.get("base") or system.get("name") or "inline")


def _chips(doc: dict, system_obj, field: str = "") -> int:
    """The chips of a scenario document or one side of it (``field``: its key path): ``chips`` as a run spec
    states them, or ``pods`` / ``units`` of the system's scale-up domain, a whole count (units.parse_int_count:
    '65', 65, '1K'; 65.5, true or 'abc' are one error line, not 65 pods, 1 pod or exit 3)."""
    where = f"scenario {doc.get('id', '?')}"
    if "chips" in doc:
        return int(chips_as_stated(doc["chips"], system_obj, None, where))
    if "pods" in doc or "units" in doc:
        key = "pods" if "pods" in doc else "units"
        n = parse_int_count(doc[key], f"{field}{key}", where=where)
        if n < 1:
            raise TrainsimError(f"expected a positive whole number of scale-up domains, got {doc[key]!r}",
                                field=f"{field}{key}", where=where)
        return n * system_obj.scale_up_size
    raise TrainsimError("give chips or pods", where=where)


def _job_run(doc: dict, base_dir: Path, *, system=None, chips=None, precision=None, name=None, training=None,
             framework=None):
    """The run of a scenario document (model, system, chips/pods, training, framework) with optional changes
    (``training``: keys that replace the document's training keys for this run, e.g. one system's dispatcher;
    ``framework``: the software stack of this run, else the document's ``framework:``, else the default profile)."""
    training = {**dict(_need(doc, "training")), **dict(training or {})}
    if precision:
        training["precision"] = precision
    sysv = system if system is not None else _need(doc, "system")
    sys_obj = resolve_system(sysv, base_dir)
    n = chips if chips is not None else _chips(doc, sys_obj)
    return make_run(_need(doc, "model"), sysv, n, training, base_dir, name=name or str(doc.get("id", "scenario")),
                    framework=framework or doc.get("framework"))


def _stack_input(label: str, entry: dict, doc: dict | None = None, *, system=None) -> dict | None:
    """The assumption line naming the software stack an entry (a system of a comparison, or a whole document) runs
    on ``system`` (a resolved :class:`~trainsim.catalog.types.System`): its ``framework`` with its
    ``framework_source``, else the document's, else the default profile of the system's chip vendor (today's
    Megatron-Core stack of that vendor, :func:`trainsim.frameworks.default_framework`), so that every answer says
    which stack each system ran."""
    for d in (entry, doc or {}):
        if d.get("framework"):
            return _input(label, d["framework"], d.get("framework_source", "scenario file"))
    vendor = chip_vendor(system)
    return _input(label, default_framework(system),
                  f"no framework stated: the default profile of the chip vendor ({vendor or 'none known'}): "
                  f"{default_framework_rule()} (catalog/data/framework_schedules.yaml default_framework_by_vendor)")


@lru_cache(maxsize=1)
def validation_coverage() -> dict[str, dict]:
    """What the validation runs (validation/runs/*.yaml) cover per chip family: run count, the chip ids and the
    largest chip count; empty where the folder is absent (an installed package)."""
    folder = Path(__file__).resolve().parents[3] / "validation" / "runs"
    out: dict[str, dict] = {}
    for p in sorted(folder.glob("*.yaml")):
        try:
            r = load_run(p)
        except TrainsimError:
            continue
        c = out.setdefault(r.system.chip.family, {"runs": 0, "chip_ids": set(), "max_chips": 0})
        c["runs"] += 1
        c["chip_ids"].add(r.system.chip.id)
        c["max_chips"] = max(c["max_chips"], int(r.chips))
    return out


def _scale_note(fam: str, chip_ids: set, chips: int) -> dict:
    """How far a scenario's runs of family ``fam`` (``chip_ids`` at up to ``chips``) lie from what the family's
    validation runs cover: the trust figure says nothing about chips or scales it was never measured on."""
    allcov = validation_coverage()
    if not allcov:        # no validation/ folder (an installed package): nothing to set the answer against
        return {}
    cov = allcov.get(fam)
    if not cov:
        return {"scenario_runs": f"{', '.join(sorted(chip_ids))} at up to {chips:,} chips",
                "extrapolation": "no validation run of this family"}
    out = {"validated_on": f"{cov['runs']} run files of {', '.join(sorted(cov['chip_ids']))} at up to "
                           f"{cov['max_chips']:,} chips",
           "scenario_runs": f"{', '.join(sorted(chip_ids))} at up to {chips:,} chips"}
    gaps = []
    new_chips = sorted(chip_ids - cov["chip_ids"])
    if new_chips:
        gaps.append(f"{', '.join(new_chips)} not in the validation set")
    if chips > cov["max_chips"]:
        gaps.append(f"{chips / cov['max_chips']:,.0f}x the largest validated run")
    if gaps:
        out["extrapolation"] = "; ".join(gaps)
    return out


def family_validation(items) -> dict:
    """The held-out error each chip family of a scenario answer carries: its own leave-one-out figure, or for a
    family without runs the same vendor's floor (:func:`trainsim.perf.calibration.validation_error`). ``items`` are family names, or runs / (system, chips) pairs,
    whose chips and scale are then set against what the family's validation runs cover (:func:`_scale_note`)."""
    out: dict = {}
    scale: dict[str, tuple[set, int]] = {}
    for it in items:
        if isinstance(it, str):
            fam = it
        else:
            sys_, n = (it.system, it.chips) if hasattr(it, "system") else it
            fam = sys_.chip.family
            ids, mx = scale.setdefault(fam, (set(), 0))
            ids.add(sys_.chip.id)
            scale[fam] = (ids, max(mx, int(n)))
        out.setdefault(fam, None)
    for fam in out:
        v = validation_error(fam)
        v = dict(v) if v is not None else {"note": "no held-out validation figure in calibration.yaml yet"}
        if fam in scale:
            v.update(_scale_note(fam, *scale[fam]))
        out[fam] = v
    return out


def _input(key: str, value: Any, source: str, note: str = "") -> dict:
    d = {"key": key, "value": value, "source": source, "confidence": "scenario input"}
    if note:
        d["note"] = note
    return d


def _model_inputs(doc: dict) -> list[dict]:
    m = doc.get("model")
    out = [_input("model", m if isinstance(m, str) else (m.get("name", "inline") if isinstance(m, dict) else m),
                  doc.get("model_source", "scenario file"), doc.get("model_note", ""))]
    tr = doc.get("training") or {}
    if tr:
        out.append(_input("training", tr, doc.get("training_source", "scenario file"), doc.get("training_note", "")))
    return out


def _base(doc: dict) -> dict:
    return {"id": doc.get("id"), "kind": doc.get("kind"), "claim": doc.get("claim", ""),
            "question": doc.get("question", "")}


def _verdict(cls: str, text: str) -> dict:
    return {"verdict_class": cls, "verdict": f"{cls}: {text}"}


def _triple(lo, nom, hi, unit: str = "") -> dict:
    vals = [v for v in (lo, nom, hi) if v is not None and math.isfinite(v)]
    d = {"low": min(vals) if vals else None, "nominal": nom, "high": max(vals) if vals else None}
    if unit:
        d["unit"] = unit
    return d


def _run_row(run, a: Assumptions, *, with_ranges: bool = True) -> dict:
    """Best plan of one run with days (ideal, effective with goodput, ranges), chip-days, MFU, memory, cost."""
    res = best(run)
    est = res.best
    row = {"system": run.system.id, "chip": run.system.chip.id, "chips": run.chips,
           "precision": run.training.precision, "framework": framework_of(run)}
    if est is None:
        row.update(fits=False, message=res.no_plan_message())
        return row
    g = goodput(run.arch, run.chips, est.days, a)
    eco = economics(est, a, goodput=g)
    row.update(
        fits=est.fits, days=None, effective_days=None, goodput=None,
        chip_days=est.days * run.chips, effective_chip_days=est.days / g.fraction * run.chips,
        mfu=est.mfu, tokens_per_s_per_chip=est.tokens_per_s_per_chip,
        memory_per_chip_gib=est.memory_per_chip_bytes / GIB, hbm_gib=run.system.chip.hbm_bytes / GIB,
        plan=est.plan, range_driver=None, range_inputs=[],
        energy_mwh=eco["energy_mwh"], cost_capex_usd=eco["cost_capex_usd"], cost_rental_usd=eco["cost_rental_usd"],
        where_time_goes=where_time_goes(est), mtbf_hours=g.mtbf_hours,
    )
    row["_est"], row["_eco"], row["_run"] = est, eco, run
    _add_ranges(row, a, with_ranges)
    return row


def _add_ranges(row: dict, a: Assumptions, search: bool = True) -> dict:
    """Fill days / effective days / goodput with low-nominal-high: the catalog ranges of the system (re-searched
    when ``search``) and the goodput assumptions' ends."""
    run, est = row["_run"], row["_est"]
    g = goodput(run.arch, run.chips, est.days, a)
    gp = goodput_range(run.arch, run.chips, est.days, a)
    rng = propagate(run) if search else {"low": est.days, "nominal": est.days, "high": est.days,
                                         "by_input": [], "driver": None}
    row["days"] = _triple(rng["low"], est.days, rng["high"], "days")
    row["effective_days"] = _triple(rng["low"] / gp["fraction"]["high"], est.days / g.fraction,
                                    rng["high"] / gp["fraction"]["low"], "days")
    row["goodput"] = _triple(gp["fraction"]["low"], g.fraction, gp["fraction"]["high"])
    row["range_driver"] = rng["driver"]
    row["range_inputs"] = [{k: r[k] for k in ("input", "low", "high", "result_at_low", "result_at_high")}
                           for r in rng["by_input"]]
    row["_gp"] = gp["fraction"]
    return row


def _dominant(row: dict) -> str:
    """What drives the spread of a row's effective days: a catalog input or the failure assumptions."""
    d, g = row.get("days") or {}, row.get("_gp") or {}
    cat = (d.get("high") or 1.0) / (d.get("low") or 1.0)
    gpr = (g.get("high") or 1.0) / (g.get("low") or 1.0)
    if cat >= gpr and row.get("range_driver"):
        return row["range_driver"]
    return "the failure rate and restart time"


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _flops_claimed(claimed: dict | None) -> float | None:
    if not claimed or "active_params" not in claimed or "tokens" not in claimed:
        return None
    return training_flops_6nd(parse_count(claimed["active_params"], "claimed.active_params"),
                              parse_count(claimed["tokens"], "claimed.tokens"))


def _count_check(arch, claimed: dict | None) -> dict:
    c = count(arch)
    out = {"total_params": float(c.total_params), "active_params": float(c.active_params)}
    if claimed:
        if "total_params" in claimed:
            out["total_vs_claim"] = c.total_params / parse_count(claimed["total_params"], "claimed.total_params") - 1.0
        if "active_params" in claimed:
            out["active_vs_claim"] = (c.active_params / parse_count(claimed["active_params"], "claimed.active_params")
                                      - 1.0)
    return out




# ---------------------------------------------------------------- typed inputs, results, registration


class KindInputs(BaseModel):
    """The keys every scenario file has; each kind's input model adds its own, each default stated with a
    description. Keys a kind does not declare are kept (``extra="allow"``) and reach ``compute`` through
    :meth:`doc` (the scenario file as read, for nested specs passed on to the engine unchanged) when they are
    shared ones (:data:`DOC_KEYS`) or notes and sources; any other is refused (:func:`parse_inputs`)."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True, defer_build=True, protected_namespaces=())

    id: Any = Field(None, description="scenario id (S1 ... S9)")
    kind: str = Field(description="the scenario kind (one module of trainsim.scenario.kinds)")
    claim: str = Field("", description="the claim as the seed states it")
    question: str = Field("", description="what trainsim computes to test it")
    _doc: dict = PrivateAttr(default_factory=dict)

    def doc(self) -> dict:
        """The scenario file as read (a mapping)."""
        return self._doc

    def assumption_set(self) -> Assumptions:
        """``assumptions.yaml`` with this file's ``assumptions:`` overrides."""
        return _assumptions(self._doc)


@dataclass
class KindResult:
    """What ``compute`` returns: the numbers a reader sees, and what the verdict needs beyond them (``facts``:
    labels, thresholds and flags, never printed as numbers)."""

    numbers: dict[str, Any]
    best_plan: dict | None = None
    assumptions: list[dict] = field(default_factory=list)
    validation_error: dict = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


#: top-level keys a kind reads through :meth:`KindInputs.doc` rather than as declared fields (``_chips``,
#: ``_job_run``, ``_sibling``, ``load_doc`` and the kinds' ``compute``)
DOC_KEYS = frozenset({"id", "kind", "claim", "question", "model", "system", "chips", "pods", "units", "training",
                      "plan", "name", "assumptions", "job", "reference", "restricted", "compare_to", "reference_runs",
                      "param", "slowdown", "claimed", "frontier_model", "framework", "framework_source"})
def _check_keys(model: type[KindInputs], doc: dict) -> None:
    """Refuse a top-level key neither the kind nor the shared helpers (:data:`DOC_KEYS`) read."""
    refuse_unknown_keys(doc, set(model.model_fields) | DOC_KEYS, reads=f"{doc.get('kind')} reads",
                        where=f"scenario {doc.get('id', '?')}")


def parse_inputs(model: type[KindInputs], doc: dict) -> KindInputs:
    """``doc`` validated against a kind's input model (:func:`_check_keys` first); a bad value is one line naming
    the field."""
    _check_keys(model, doc)
    try:
        inp = model.model_validate(doc)
    except ValidationError as exc:   # one line, the union branch tried left out of the field path
        raise from_validation(exc, where=f"scenario {doc.get('id', '?')}", model=model) from None
    _check_entry_keys(model, inp)
    inp._doc = doc
    return inp


def _check_entry_keys(model: type[KindInputs], inp: KindInputs) -> None:
    """Refuse an entry of a list-of-mappings field that lacks a key its kind reads (the model's ``ENTRY_KEYS``:
    field -> the alternative key sets an entry may have, one of which it must hold in full): one line naming
    ``field[i]`` and the key, not a KeyError deep in ``compute`` (qa18: ``systems: [{}]`` of S1, ``compare: [{}]``
    of S3, ``history: [{}]`` of S9, ``reference_runs: [{}]`` of S4 / S6 exited 3)."""
    for name, alternatives in getattr(model, "ENTRY_KEYS", {}).items():
        for i, entry in enumerate(getattr(inp, name) or []):
            if any(all(k in entry for k in keys) for keys in alternatives):
                continue
            want = " or ".join("{" + ", ".join(keys) + "}" for keys in alternatives)
            missing = next(k for k in alternatives[0] if k not in entry)
            raise TrainsimError(f"missing key {missing!r}; expected an entry {want}, got {short(entry)}",
                                field=f"{name}[{i}]", where=f"scenario {inp.id or '?'}")


def register_kind(kind: str, inputs: type[KindInputs], compute: Callable[[Any, Path], KindResult],
                  verdict: Callable[[KindResult], tuple]) -> Callable[[dict, Path], dict]:
    """Register the handler of ``kind``: parse the inputs, compute the numbers, then write the verdict.

    ``verdict`` returns ``(class, headline, details)``: the headline is at most two sentences for any reader (no
    catalog ids; where an input's range flips the verdict, "supported if ...; not if ..."), the details the
    numbers behind it. The result's ``verdict`` is ``"<class>: <headline>"``."""

    def handle(doc: dict, base_dir: Path) -> dict:
        inp = parse_inputs(inputs, doc)
        res = compute(inp, Path(base_dir))
        out = verdict(res)
        cls, headline, details = out if len(out) == 3 else (out[0], out[1], "")
        return {**_base(doc), **_verdict(cls, headline), "headline": headline, "details": details,
                "deciding_assumption": res.facts.get("deciding", ""), "numbers": res.numbers,
                "best_plan": res.best_plan, "assumptions": res.assumptions,
                "validation_error": res.validation_error}

    handle.__name__ = kind.replace("-", "_")
    handle.__doc__ = f"Handler of scenario kind {kind!r}: {inputs.__name__} -> {compute.__module__}.compute."
    handle.inputs = inputs            # type: ignore[attr-defined]
    handle.validate = lambda doc: parse_inputs(inputs, doc)   # type: ignore[attr-defined] - `trainsim check`
    handle.compute = compute          # type: ignore[attr-defined]
    handle.verdict = verdict          # type: ignore[attr-defined]
    return register(kind)(handle)


def short_name(obj) -> str:
    """A chip's or system's catalog name without its parenthesised remark ("Ascend 910C", "Huawei CloudMatrix384"):
    what a headline says instead of a catalog id."""
    name = str(getattr(obj, "name", "") or getattr(obj, "id", "") or obj)
    return name.split(" (")[0].strip()


def chip_name(chip_id: str) -> str:
    """:func:`short_name` of a catalog chip id (the id itself when the catalog does not know it)."""
    try:
        return short_name(get_chip(chip_id))
    except Exception:  # noqa: BLE001 - an inline chip keeps its id
        return str(chip_id)
