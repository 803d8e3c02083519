"""The public Python API: the one door to the engine. The CLI (:mod:`trainsim.cli`) and the explorer
(:mod:`trainsim.serve`) call only these functions (and render with :mod:`trainsim.report`); a test
(``tests/test_api_door.py``) keeps it so.

Every function takes specs as a :class:`Run`, a spec file path or a spec mapping, checks its arguments with the
one-line :class:`TrainsimError` (exit code 2 in the CLI; :class:`NoPlanError`, exit code 1, when the input is
valid but has no answer), and returns a typed result with ``to_dict()`` (the command's ``--json``).

Argument checks name the field as the caller spells it: ``names`` maps a field (``"days"``) to the caller's
name for it (the CLI passes :data:`CLI_NAMES`, so errors say ``--days``; the explorer's say ``days``).

This package is the core door (estimate, plan search, emit, compare, model, catalog: what ``trainsim plan`` and
``trainsim estimate`` need, so that their start-up stays short) and one module per domain, each importing what it
needs at its top: :mod:`.scenarios` (the explorer's plan question, size, capacity, sensitivity, the seed
scenarios), :mod:`.serving` (infer), :mod:`.posttraining` (posttrain), :mod:`.validation` (validate),
:mod:`.sweeps` (sweep), :mod:`.reports` (report) and :mod:`.checks` (check). Import the one you call:
``from trainsim.api import scenarios; scenarios.size(...)``.
"""
from __future__ import annotations

import typing as _typing
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from ..errors import NoPlanError, TrainsimError, from_validation
from ..io.specfile import located
from ..estimate import Estimate
from ..estimate import estimate as _estimate
from ..sanity import InvariantViolation
from ..search import SearchResult
from ..search import search as _search
from ..spec import (PlanSpec, Run, check_cp_attention, check_expert_fields, check_plan_options, check_plan_shape,
                    check_shard_group,
                    load_run, parse_run, run_warnings)
from ..errors import unknown
from ..assumptions import PUE_MAX as PUE_MAX, check_pue
from ..emit import EMITTER_TARGETS, emit_args, emit_notes
from ..frameworks import framework_of as _framework_of, restrict_plan, default_for_emit, check_precision
from ..frameworks import default_framework, default_for_vendors, emitter_for, frameworks, resolve_choice
from ..frameworks import describe_framework as _describe_framework
from ..alternatives import alternatives, no_plan
from ..catalog.load import get_system, systems as _systems
from ..catalog.resolve import resolve_system
from ..io import LIMITS as INPUT_LIMITS, load_spec_file
from ..io import check_output_dir as _check_output_dir, check_output_path as _check_output_path
from ..report.tabular import flatten
from ..model.load import list_models, model_ids, official_counts, resolve_model, spec_seq_len
from ..model.summary import model_summary
from ..catalog import describe as catalog_describe
from .._version import __version__
from ..plan_diff import plan_diff
from ..report.fmt import plan as plan_text
from ..types_checked import MAX_CHIPS, MAX_SEQ_LEN, too_many_chips
from ..units import GIB, parse_length

__all__ = ["TrainsimError", "NoPlanError", "InvariantViolation", "Estimate", "estimate", "SearchResult", "search",
           "PlanSpec", "Run", "load_run", "parse_run", "parse_fix", "as_run", "plan_against", "parse_against"]

_S = TypeVar("_S")
_R = TypeVar("_R")

#: the CLI's names for the fields the API checks (errors then name the option the user typed)
CLI_NAMES = {"days": "--days", "unit": "--unit", "units": "--units", "chips": "--chips", "family": "--family",
             "precision": "--precision", "system": "--system", "sparsity": "--sparsity", "factors": "--factors",
             "framework": "--framework", "workers": "--workers", "port": "--port", "price": "--price-per-chip-hour",
             "pue": "--pue", "electricity": "--electricity", "fix": "--fix", "deadline_days": "--deadline-days",
             "batch": "--batch", "seq_len": "--seq-len",
             "plots": "--plots", "host": "--host", "params": "--vary"}


def _name(names: Mapping[str, str] | None, key: str) -> str:
    return (names or {}).get(key, key)


def _check_days(days: float, names: Mapping[str, str] | None, key: str = "days") -> None:
    """A deadline in days: positive and below 10^6 (also refuses nan and inf), else a one-line input error."""
    if not (0 < days < 1e6):
        raise TrainsimError(f"expected a positive number of days below 10^6, got {days:g}", field=_name(names, key))


def as_run(spec: Run | str | Path | Mapping, *, base_dir: Path | None = None) -> Run:
    """A :class:`Run` from a Run, a run-spec YAML path (:func:`load_run`) or a run-spec mapping
    (:func:`parse_run`, files named in it relative to ``base_dir``)."""
    if isinstance(spec, Run):
        return spec
    if isinstance(spec, Mapping):
        return parse_run(dict(spec), base_dir=base_dir)
    return load_run(spec)


def spec_of(spec: Any, kind: type[_S], parse: Callable[[dict], _S], load: Callable[[Any], _S]) -> _S:
    """A ``kind`` spec (``Serving``, ``PostTrain``) from ``spec``: itself when it is one, ``parse`` of a mapping,
    else ``load`` of a spec-file path (what :func:`as_run` does for a run spec)."""
    if isinstance(spec, kind):
        return spec
    return parse(dict(spec)) if isinstance(spec, Mapping) else load(spec)


def answer_located(engine: Callable[[_S], _R], parsed: _S, spec: Any) -> _R:
    """``engine(parsed)``; a :class:`TrainsimError` the engine raises on a stated field names the spec file
    ``spec`` too (:func:`trainsim.io.specfile.located`; a mapping is named by nothing)."""
    try:
        return engine(parsed)
    except TrainsimError as exc:
        raise located(exc, spec) from None


def estimate(run: Run | str | Path | Mapping, plan: PlanSpec | None = None, **kw: Any) -> Estimate:
    """One training step of ``run`` (a Run or a run spec) under ``plan`` (default: the run's own plan,
    completed by the plan search where partial): :func:`trainsim.estimate.estimate`."""
    return _estimate(as_run(run), plan, **kw)


def search(run: Run | str | Path | Mapping, fixed: PlanSpec | None = None, **kw: Any) -> SearchResult:
    """The fastest plans of ``run`` (a Run or a run spec) that fit in memory, ``fixed`` pinning the fields it
    names: :func:`trainsim.search.search`."""
    return _search(as_run(run), fixed, **kw)


#: plan fields whose value is itself a list (recompute_modules): on the command line ``recompute_modules=mlp`` is
#: the list [mlp] and ``a|b`` its items, where for the other fields ``a|b`` lists allowed values
_LIST_FIELDS = frozenset(n for n, f in PlanSpec.model_fields.items()
                         if {_typing.get_origin(a) for a in _typing.get_args(f.annotation)} <= {list, None})


def parse_fix(text: str, base: PlanSpec | None = None, field: str = "--fix") -> PlanSpec:
    """``"tp=8,pp=16,schedule=1f1b|interleaved"`` -> a PlanSpec merged over ``base`` (the run's own plan);
    errors name ``field`` (``--fix``, or ``--against`` for a reference plan). A list-valued field
    (``recompute_modules=mla_up_proj|mlp``) takes its items from the ``|``-separated values."""
    from pydantic import ValidationError

    data = base.model_dump(exclude_none=True) if base is not None else {}
    given: set[str] = set()
    for part in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in part:
            raise TrainsimError(f"expected key=value, got {part!r}", field=field)
        k, v = (s.strip() for s in part.split("=", 1))
        if k == "mb":
            k = "micro_batch"
        if k not in PlanSpec.model_fields:
            raise unknown("plan field", k, PlanSpec.model_fields, field=field)
        if k in given:
            raise TrainsimError(f"{k} given twice in {text!r}; list allowed values as {k}=8|4", field=field)
        given.add(k)
        vals = [int(x) if x.isdigit() else x for x in v.split("|")]
        data[k] = vals if k in _LIST_FIELDS or len(vals) > 1 else vals[0]
    try:
        return PlanSpec.model_validate(data)
    except ValidationError as exc:       # the field, what it expected and the value: "tp: ...; got 'eight'"
        raise TrainsimError(str(from_validation(exc)), field=field) from None


# ---------------------------------------------------------------- the explorer's doors (plan, size, capacity,
# sensitivity): thin wrappers over the engine and the scenario modules, so `trainsim serve` asks exactly what
# the CLI asks. Each returns a typed result with ``to_dict()``.

from dataclasses import dataclass as _dataclass  # noqa: E402

# MAX_CHIPS (types_checked): bounded work per request, no plan search over more chips than this
MAX_SWEEP_POINTS = 200        # and no sweep (sensitivity) over more points than this


def _check_chips(chips: int, field: str = "chips") -> None:
    if chips > MAX_CHIPS:
        raise TrainsimError(too_many_chips(chips), field=field)


def cost_inputs(price: float | None = None, pue: float | None = None, electricity: float | None = None, *,
                names: Mapping[str, str] | None = None) -> dict:
    """Validated overrides for :func:`trainsim.cost.run_cost`: rental USD per chip-hour (>= 0), PUE (1 to
    :data:`PUE_MAX`) and electricity USD per kWh (>= 0), each finite; None keeps the sourced default."""
    for key, v in (("price", price), ("electricity", electricity)):
        if v is not None and not v >= 0.0:
            raise TrainsimError(f"expected a number >= 0, got {v:g}", field=_name(names, key))
        if v is not None and v == float("inf"):     # printed 'inf at inf/chip-hour'
            raise TrainsimError(f"expected a finite number >= 0, got {v:g}", field=_name(names, key))
    if pue is not None:     # the one PUE check (assumptions.yaml's bounds, NaN and infinity included): --pue 100
        check_pue(pue, _name(names, "pue"))    # was accepted (100x the facility energy); 0.5 got another wording
    out: dict[str, float] = {}
    if price is not None:
        out["price_per_chip_hour"] = price
    if pue is not None:
        out["pue"] = pue
    if electricity is not None:
        out["electricity_usd_per_kwh"] = electricity
    return out


def estimate_run(run: Run | str | Path | Mapping, *, cost: dict | None = None) -> Estimate:
    """``trainsim estimate``: the run's own plan (completed by the search where partial) with ``cost``
    overrides (:func:`cost_inputs`) applied to its cost. A plan that has no answer raises :class:`NoPlanError`
    whose ``result`` carries the nearest alternatives (:func:`trainsim.alternatives.alternatives`)."""
    r = as_run(run)
    try:
        est = _estimate(r)
    except NoPlanError as exc:
        exc.result.alternatives = alternatives(r, r.plan, least=exc.result.least_memory)
        raise
    except TrainsimError as exc:   # a stated plan that breaks a plan rule: name the spec ('error: plan.x: ...')
        raise located(exc, r.path) from None
    est.cost_inputs = dict(cost or {})
    return est


def search_plans(run: Run | str | Path | Mapping, *, fix: str = "", framework: str = "", emit: str = "",
                 top: int = 5, use_all: bool = False, cost: dict | None = None, progress=None) -> SearchResult:
    """``trainsim plan``: every valid plan searched with the fields of ``fix`` (``"tp=8,pp=16"``) pinned and,
    for ``framework`` (a profile id) or an ``emit`` target, only what that software stack has (``framework``: the
    plans timed under that stack too, as a run spec naming it; ``emit``: under the run's own); the best plans
    carry ``cost``. With no plan, ``result.alternatives`` holds the nearest changes that have one."""
    from dataclasses import replace

    r = as_run(run)
    fixed = parse_fix(fix, r.plan)
    check_shard_group(fixed, r.training, where=str(r.path) if r.path else None, field="--fix")
    check_expert_fields(fixed, r.arch, "--fix")
    check_plan_shape(fixed, r.arch, r.training.seq_len, field="--fix")
    check_plan_options(fixed, "--fix", arch=r.arch)
    stated = fixed
    if framework:
        fixed = restrict_stated(fixed, framework, "--fix", fix)
        check_precision(r.training.precision, framework, field="--framework")
        # the plans are timed under that stack too (its defaults, flags and calibration), as a run spec's
        # `framework:` and the explorer's stack time them: restricting the offer alone timed torchtitan-2024's
        # plans with Megatron-Core's kernels (Llama 3.1 8B on 64 H100: 7.24 s, where `framework: torchtitan-2024`
        # in the spec gives 8.96 s; qa23)
        r = replace(r, framework=framework)
    elif emit:
        fw = default_for_emit(emit)
        try:
            fixed = restrict_plan(fixed, fw)
            check_precision(r.training.precision, fw, field="--emit")
        except TrainsimError as exc:   # the run's own stack may have it: say whose flags --emit writes
            raise TrainsimError(f"{exc} (--emit {emit} writes the flags of {fw}; the run names "
                                f"{r.framework or 'no framework'})", field=None) from None
    elif fix:   # the run's own stack: a --fix value it lacks is named by --fix, as --against's is, not plan.KEY
        restrict_stated(fixed, _framework_of(r), "--fix", fix)
    if framework or emit:   # a sharding group beside a stack that offers zero 0 alone (megatron-lm-2021)
        check_shard_group(fixed, r.training, where=str(r.path) if r.path else None,
                          stack=framework or default_for_emit(emit))
    # after the stack's own refusals (a stack without context parallelism says so first)
    check_cp_attention(fixed, r.training, _framework_of(r), field="--framework" if framework else "--fix")
    # the run carries the merged plan: the engine reads the options that are not searched (recompute_modules,
    # recompute_method, stage sizes, offload) from the run's plan (plan_estimate.context), so --fix sets them too
    r = replace(r, plan=fixed)
    res = _search(r, fixed, top=top, progress=progress, use_all=use_all or None)
    for e in ([res.best] + res.runners_up if res.best else []):
        e.cost_inputs = dict(cost or {})
    if res.best is None:      # no answer: the nearest changes that have one, none freeing what the stack fixes
        imposed = frozenset(k for k in type(fixed).model_fields if getattr(fixed, k) != getattr(stated, k))
        res.alternatives = alternatives(replace(r, use_all=use_all or r.use_all), fixed, least=res.least_memory,
                                        keep=imposed)
    return res


def emit_stack_note(run: Run, emit: str, framework: str = "") -> str | None:
    """``plan --emit EMIT`` without ``--framework`` on a run of another stack: one line saying which stack the
    emitted plan was searched under (the emitter's default stack, :func:`search_plans`); with a ``--framework``
    whose flags another emitter (or none) writes, one line saying the flags are not that stack's; else None."""
    if not emit:
        return None
    if framework:
        own_emit = emitter_for(framework)
        if own_emit == emit:
            return None
        whose = (f"whose own flags --emit {own_emit} writes" if own_emit else "a stack trainsim has no emitter for")
        return (f"note: --emit {emit} writes {EMITTER_TARGETS[emit]}'s flags for a plan searched under {framework} "
                f"(--framework), {whose}")
    fw, own = default_for_emit(emit), _framework_of(run)
    if fw == own:
        return None
    named = f"the run's {own}" if run.framework else f"{own}, the default of a run that names no framework"
    return (f"note: --emit {emit}: the plan was searched under {fw} (the stack whose flags it writes), "
            f"within what {named} offers")


def emit_flags(est: Estimate, emitter: str) -> str:
    """The plan of ``est`` as ``emitter`` arguments: megatron / mindspeed (a bash array) or torchtitan (TOML)
    (:func:`trainsim.emit.emit_args`)."""
    return emit_args(est, emitter)


def emit_warnings(est: Estimate, emitter: str) -> list[str]:
    """Lines saying where the flags of ``emitter`` cannot carry out the plan as stated
    (:func:`trainsim.emit.emit_notes`: torchtitan and a stage split it cannot express)."""
    return emit_notes(est, emitter)


__all__ += ["MAX_CHIPS", "too_many_chips",
            "MAX_SWEEP_POINTS", "CLI_NAMES", "cost_inputs", "estimate_run", "search_plans", "emit_flags",
            "emit_stack_note", "emit_warnings", "run_warnings"]


# ---------------------------------------------------------------- the other commands' doors: serving, post-training,
# validation, scenarios, sweeps, reports, compare, check, model and catalog. Each returns a typed result with
# ``to_dict()`` (what ``--json`` prints).

@_dataclass
class Answer:
    """A result that is a JSON-like mapping (or list) already: ``data`` is what ``to_dict()`` returns."""

    data: Any

    def to_dict(self) -> Any:
        """The answer as plain JSON-ready data."""
        return self.data


class ErrorTable(Answer):
    """``infer --validate`` / ``posttrain --validate``: ``{"rows": [...], "summary": {...}}`` (serving adds
    ``latency_bound``)."""


class CheckResult(Answer):
    """``trainsim check``: ``{"file", "kind", "ok", "resolved": {label: text}}``."""


class ModelSummary(Answer):
    """``trainsim model``: exact parameter counts and FLOPs per token (:func:`trainsim.model.summary.model_summary`)."""


class CatalogAnswer(Answer):
    """``trainsim catalog``: rows of chips, systems or models, or one entry with every field and source."""


def check_output_path(path, *, force: bool = False, what: str = "output", suffixes: tuple[str, ...] = ()) -> Path:
    """Refuse an output path that exists (unless ``force``), is a folder or, given ``suffixes``, names another
    format, before any work is done (:func:`trainsim.io.check_output_path`)."""
    return _check_output_path(path, force=force, what=what, suffixes=suffixes)


def check_output_dir(path, *, field: str, what: str = "folder") -> Path:
    """An output folder, refused before the work when it exists as a file (:func:`trainsim.io.check_output_dir`)."""
    return _check_output_dir(path, field=field, what=what)


@_dataclass
class CompareResult:
    """``trainsim compare``: the runs' estimates side by side and the spec keys whose values differ."""

    files: list
    estimates: list
    differing_inputs: dict

    def to_dict(self) -> dict:
        """Each run's estimate tagged with its file, plus the inputs that differ between the runs."""
        return {"runs": [{"file": str(p), **e.to_dict()} for p, e in zip(self.files, self.estimates)],
                "differing_inputs": self.differing_inputs}

    def rows(self) -> list[tuple[str, str, list]]:
        """(label, key, [raw value per run]) rows of the side-by-side table."""
        ds = [e.to_dict() for e in self.estimates]
        rows = [("model", "model", [d["model"] for d in ds]), ("system", "system", [d["system"] for d in ds]),
                ("chips", "chips", [d["chips"] for d in ds]),
                # the chips the plan keeps busy: tokens/s per chip and MFU are per used chip, days and cost per chip
                # paid for (a plan that idles chips showed neither the count nor the idle chips)
                ("chips used", "chips_used", [f"{d['chips_used']:,}" + (f" ({d['idle_chips']:,} idle, paid for)"
                                                                      if d["idle_chips"] else "") for d in ds]),
                ("plan", "plan", [plan_text(d["plan"], empty="") for d in ds]),
                ("step time (s)", "step_time_s", [d["step_time_s"] for d in ds])]
        causes = list(dict.fromkeys(k for d in ds for k, v in d["breakdown"].items() if v > 0))
        rows += [(f"  {c} (s)", f"breakdown.{c}", [d["breakdown"].get(c, 0.0) for d in ds]) for c in causes]
        rows += [("tokens/s per chip", "tokens_per_s_per_chip", [d["tokens_per_s_per_chip"] for d in ds]),
                 ("MFU (vs BF16 peak)", "mfu", [d["mfu"] for d in ds]),
                 ("memory per chip (GiB)", "memory_per_chip_bytes", [d["memory_per_chip_bytes"] / GIB for d in ds]),
                 ("fits", "fits", [d["fits"] for d in ds]),
                 ("days", "days", [d.get("days") for d in ds])]
        cs = [d.get("cost") or {} for d in ds]
        rows += [("chip-hours", "cost.chip_hours", [c.get("chip_hours") for c in cs]),
                 ("energy (MWh)", "cost.energy_mwh", [c.get("energy_mwh") for c in cs]),
                 ("cost, rental (USD)", "cost.cost_rental_usd", [c.get("cost_rental_usd") for c in cs]),
                 ("cost, capex (USD)", "cost.cost_capex_usd", [c.get("cost_capex_usd") for c in cs])]
        return rows


def differing_inputs(paths: list) -> dict[str, list]:
    """Spec keys (dotted) whose values differ between the run-spec files, each with the value in every file as
    written. ``chips`` and the ``training`` and ``plan`` fields differ when the values the run reads differ
    (``seq_len: 4K`` is 4096, ``chips: "8 systems"`` of DGX H100 is 64, an unstated ``precision`` is bf16), not
    when only their spelling does."""
    docs, runs = [], []
    for p in paths:
        try:
            doc = load_spec_file(p, None, what="run spec")
        except TrainsimError:
            doc = {}
        docs.append(flatten(doc))
        try:
            runs.append(load_run(p))
        except TrainsimError:
            runs.append(None)

    def read(i: int, k: str):
        r = runs[i]
        head, _, f = k.partition(".")
        if r is not None and k == "chips":
            return r.chips
        if r is not None and head in ("training", "plan") and f in type(getattr(r, head)).model_fields:
            return getattr(getattr(r, head), f)
        return docs[i].get(k)

    keys = list(dict.fromkeys(k for d in docs for k in d))
    return {k: [d.get(k) for d in docs] for k in keys
            if k != "name" and len({repr(read(i, k)) for i in range(len(docs))}) > 1}


def compare(paths: list, *, cost: dict | None = None) -> CompareResult:
    """``trainsim compare``: each run spec estimated as ``trainsim estimate`` does (its plan, completed by the
    search where partial), with ``cost`` overrides, and the inputs that differ."""
    if len(paths) < 2:
        raise TrainsimError(f"expected two or more run specs, got {len(paths)}", field="RUNS")
    ests = []
    for p in paths:
        r = load_run(p)
        try:
            e = _estimate(r)
        except NoPlanError as exc:       # no answer: with the nearest alternatives, as `trainsim estimate` gives
            raise located(no_plan(exc.result, r) if exc.result is not None else exc, p) from None
        except TrainsimError as exc:     # name the spec without an answer ('error: plan: ...' said not which)
            raise located(exc, p) from None
        e.cost_inputs = dict(cost or {})
        ests.append(e)
    return CompareResult(list(paths), ests, differing_inputs(paths))


def model(value: str, *, seq_len: int | str | None = None, base_dir: Path | None = None,
          names: Mapping[str, str] | None = None) -> ModelSummary:
    """``trainsim model``: a catalog id or a config.json / model YAML path -> exact parameter counts and FLOPs
    per token at ``seq_len`` (with the official counts of a catalog model). ``seq_len`` as a run spec's
    ``training.seq_len`` takes it: 4096, ``"4,096"`` or ``"4K"`` (K = 1,024), 1 .. 10^8. Unset: the
    ``training.seq_len`` of a run spec given as ``value`` (:func:`trainsim.model.load.spec_seq_len`), else 4096."""
    field, where = _name(names, "seq_len"), None
    if seq_len is None:
        stated = spec_seq_len(value, base_dir or Path.cwd())
        seq_len, field, where = (4096, field, None) if stated is None else (stated[0], "training.seq_len",
                                                                           stated[1])
    n = parse_length(seq_len, field, where=where)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SEQ_LEN:
        raise TrainsimError(f"expected a length in tokens from 1 to {MAX_SEQ_LEN:,} such as 4096 or '4K', got "
                            f"{seq_len!r}", field=field, where=where)
    seq_len = n
    arch = resolve_model(value, base_dir or Path.cwd(), field="model")
    official = official_counts(value) if value in model_ids() else None
    return ModelSummary(model_summary(arch, seq_len, official))


def _framework_rows() -> list[dict]:
    """One row per software-stack profile (``framework_schedules.yaml``): what it offers the plan search."""
    default = default_framework()
    return [{"id": k, "default": k == default, "default_for_vendors": default_for_vendors(k),
             "emitter": emitter_for(k), "precisions": v["precisions"],
             "schedules": v["schedules"], "zero": v["zero"], "recompute": v["recompute"],
             "expert_parallel": v["expert_parallel"], "context_parallel": v["context_parallel"]}
            for k, v in frameworks().items()]


def catalog(kind: str) -> CatalogAnswer:
    """``trainsim catalog chips | systems | models | frameworks``: one row per entry (raw SI numbers)."""
    rows = {"chips": catalog_describe.chip_rows, "systems": catalog_describe.system_rows,
            "models": catalog_describe.model_rows, "frameworks": _framework_rows}
    if kind not in rows:
        raise unknown("catalog table", kind, rows, field="catalog")
    return CatalogAnswer(rows[kind]())


def describe(entry_id: str) -> CatalogAnswer:
    """``trainsim catalog show ID``: one chip, system or model with every field, its sources and ranges, or one
    framework profile (``catalog/data/framework_schedules.yaml``) with each statement's source; an unknown id is
    matched against all of them (``megatron-core`` suggests megatron-core-2024, not a system)."""
    fws = frameworks()
    if entry_id in fws:
        return CatalogAnswer(_describe_framework(entry_id))
    ids = catalog_describe.catalog_ids()
    if not any(entry_id in group for group in ids.values()):
        raise unknown("catalog id", entry_id, [*(i for group in ids.values() for i in group), *fws])
    return CatalogAnswer(catalog_describe.describe(entry_id))


def serve_settings(*, host: str = "127.0.0.1", port: int = 8765, workers: int = 2, quiet: bool = False,
                   names: Mapping[str, str] | None = None) -> dict:
    """``trainsim serve``'s checked settings (the explorer, :mod:`trainsim.serve`, is a front end beside the CLI
    and calls this API; the CLI starts it with these): one-line errors for a bad port or worker count, and for a
    host that does not resolve or an address that cannot be bound (a port in use): uvicorn itself logs those and
    exits with its STARTUP_FAILURE code 3, trainsim's code for a bug."""
    if not 0 < port < 65536:
        raise TrainsimError(f"expected a port between 1 and 65535, got {port}", field=_name(names, "port"))
    if workers < 1:
        raise TrainsimError(f"expected at least 1 worker, got {workers}", field=_name(names, "workers"))
    _check_listen(host, port, names)
    return {"host": host, "port": port, "workers": workers, "quiet": quiet}


def _check_listen(host: str, port: int, names: Mapping[str, str] | None) -> None:
    """Bind (and release) ``host:port`` as uvicorn will (SO_REUSEADDR), so that a bad address is one line."""
    import socket

    try:
        fam, typ, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise TrainsimError(f"expected a host name or address of this machine, got {host!r} "
                            f"({getattr(exc, 'strerror', None) or exc})", field=_name(names, "host")) from None
    with socket.socket(fam, typ, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            import errno
            key = "host" if exc.errno == errno.EADDRNOTAVAIL else "port"    # not this machine's address
            raise TrainsimError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); expected a free port "
                                f"on an address of this machine", field=_name(names, key)) from None


def framework_of(run: Run) -> str:
    """The software stack of ``run`` (its ``framework:``, else its chip vendor's default stack)."""
    return _framework_of(run)


def system(value, *, field: str = "system", where: str | None = None):
    """A catalog system by id (an unknown id: one line with close matches), or a System as is."""
    return get_system(value, field=field, where=where) if isinstance(value, str) else resolve_system(value)


def version() -> str:
    """The installed trainsim version."""
    return __version__


# ---------------------------------------------------------------- what a front end offers (the explorer's option
# lists): the catalog's systems with each value's source, its models, the software-stack profiles


def systems() -> dict:
    """The catalog's systems, id -> :class:`~trainsim.catalog.types.System`."""
    return _systems()


def describe_system(system_id: str) -> dict[str, Any]:
    """One catalog system's fields, each with its value, source and confidence
    (:func:`trainsim.catalog.describe.describe_system`)."""
    return catalog_describe.describe_system(system_id)


def describe_chip(chip_id: str) -> dict[str, Any]:
    """One catalog chip's fields with sources (:func:`trainsim.catalog.describe.describe_chip`)."""
    return catalog_describe.describe_chip(chip_id)


def models() -> list[dict[str, Any]]:
    """The catalog's models (:func:`trainsim.model.load.list_models`)."""
    return list_models()


def stacks() -> dict[str, dict]:
    """The software-stack profiles (``framework_schedules.yaml``), id -> what the stack offers, with sources."""
    return frameworks()


def stack(choice: str, field: str = "framework") -> str:
    """A profile id from a stack or emitter name (one-line error with close matches otherwise)."""
    return resolve_choice(choice, field=field)


def default_stack(system=None) -> str:
    """The profile a run without ``framework:`` on ``system`` gets: its chip vendor's stack, else the catalog's
    default (:func:`trainsim.frameworks.default_framework`)."""
    return default_framework(system)


def stack_emitter(stack_id: str) -> str | None:
    """The flag emitter of a software stack (megatron, mindspeed, torchtitan, primus), or None."""
    return emitter_for(stack_id)


__all__ += ["Answer", "ErrorTable", "CheckResult",
            "ModelSummary", "CatalogAnswer", "CompareResult", "check_output_path", "check_output_dir", "INPUT_LIMITS",
            "differing_inputs", "compare",
            "model", "catalog", "describe", "serve_settings", "framework_of",
            "system", "version", "systems", "describe_system", "describe_chip", "models", "stacks", "stack",
            "default_stack", "stack_emitter", "from_validation"]


def restrict_stated(plan: PlanSpec, fw: str, option: str, text: str) -> PlanSpec:
    """:func:`trainsim.frameworks.restrict_plan` of ``plan`` for stack ``fw``, a refusal of a field that option
    ``option`` (``--fix``, ``--against``) stated in ``text`` named by that option: ``--fix: zero: torchtitan-2024
    offers zero 0, 2, 3, not 1``, where it named ``plan.zero``, a key the run spec may not even hold."""
    keys = {"micro_batch" if k == "mb" else k for k in
            (part.split("=", 1)[0].strip() for part in text.split(",") if "=" in part)}
    try:
        return restrict_plan(plan, fw)
    except TrainsimError as exc:
        name = (exc.field or "").removeprefix("plan.")
        if exc.field and exc.field.startswith("plan.") and name in keys:
            head = (f"{exc.where}: " if exc.where else "") + f"{exc.field}: "
            raise TrainsimError(f"{name}: {str(exc)[len(head):]}", field=option, where=exc.where) from None
        raise


def parse_against(run: Run, reference: str, framework: str = ""):
    """``plan --against``'s reference plan (``"tp=8,pp=16,..."``) as a PlanSpec merged over ``run``'s own plan
    fields, as ``--fix`` is; a bad field or value is the one error line, before any search (a run with no plan
    left ``--against tp=abc`` unread, exit 1), a value the software stack (``framework``, else the run's) lacks
    included, named by ``--against`` (:func:`restrict_stated`)."""
    ref = parse_fix(reference, run.plan, field="--against")
    restrict_stated(ref, framework or _framework_of(run), "--against", reference)
    check_shard_group(ref, run.training, where=str(run.path) if run.path else None, field="--against")
    check_expert_fields(ref, run.arch, "--against")
    check_plan_shape(ref, run.arch, run.training.seq_len, field="--against")
    check_plan_options(ref, "--against", arch=run.arch)
    check_cp_attention(ref, run.training, _framework_of(run), field="--against")
    return ref


def plan_against(best, reference: str):
    """``plan --against``: the best plan (an Estimate) beside a reference plan given as ``"tp=8,pp=16,..."``
    (:func:`parse_against`), cause by cause (:mod:`trainsim.plan_diff`)."""
    diff = plan_diff(best, parse_against(best.run, reference), reference)
    diff.reference.cost_inputs = dict(getattr(best, "cost_inputs", None) or {})   # priced as the best plan is
    return diff


