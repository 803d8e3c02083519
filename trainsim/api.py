"""The public Python API: the one door to the engine. The CLI (:mod:`trainsim.cli`) and the explorer
(:mod:`trainsim.serve`) call only these functions (and render with :mod:`trainsim.report`); a test
(``tests/test_api_door.py``) keeps it so.

Every function takes specs as a :class:`Run`, a spec file path or a spec mapping, checks its arguments with the
one-line :class:`TrainsimError` (exit code 2 in the CLI; :class:`NoPlanError`, exit code 1, when the input is
valid but has no answer), and returns a typed result with ``to_dict()`` (the command's ``--json``).

Argument checks name the field as the caller spells it: ``names`` maps a field (``"days"``) to the caller's
name for it (the CLI passes :data:`CLI_NAMES`, so errors say ``--days``; the explorer's say ``days``).

Engine modules are imported inside the functions, so importing this module (and ``trainsim.cli``) stays cheap;
only the estimate, search and spec modules load at import.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .errors import NoPlanError, TrainsimError
from .estimate import Estimate
from .estimate import estimate as _estimate
from .sanity import InvariantViolation
from .search import SearchResult
from .search import search as _search
from .spec import PlanSpec, Run, load_run, parse_run
from .errors import unknown
from .emit import emit_args, EMITTERS
from .perf.calibration import validation_error
from .scenario.assumptions import Assumptions
from .scenario.common import best
from .scenario.economics import economics
from .scenario.goodput import goodput
from .frameworks import emitter_for, framework_of as _framework_of, profile, restrict_plan, default_for_emit
from .alternatives import alternatives
from .scenario.sizing import size as _size
from .catalog.load import get_system
from .catalog.resolve import resolve_system
from .scenario.capacity import capacity as _capacity
from .scenario.sensitivity import PARAMS, canonical, elasticity, sensitivity as _sens, threshold as _threshold
from .inference.spec import Serving, load_serving, parse_serving
from .inference.serve import infer as _infer
from .inference.validate import error_table as serving_error_table, latency_bound_table, summary as serving_summary
from .posttrain.spec import PostTrain, load_posttrain, parse_posttrain
from .posttrain.timeline import evaluate as posttrain_step
from .posttrain.validate import error_table as posttrain_error_table, summary as posttrain_summary
from .validate import validate as _validate
from .scenario.run import scenarios_dir, run_all, run_file
from .sweep import load_sweep as _load_sweep
from .sweep.executors import MAX_LOCAL_WORKERS
from .sweep.runner import run_sweep
from .sweep.writer import parts_dir
from .sweep.summary import summarize
from .report.build import build_report
from .report.run_report import build_run_report
from .io import check_output_path as _check_output_path, load_spec_file
from .report.tabular import flatten
from .estimate import PLAN_FIELDS
from .model.counts import count
from .numfmt import count as fmt_count
from .scenario.kinds import load_doc
from .scenario.registry import handler
from .model.load import model_ids, official_counts, resolve_model
from .model.summary import model_summary
from .catalog import describe as catalog_describe
from .scenario import common
from ._version import __version__
from .plan_diff import plan_diff
from .report.fmt import plan as plan_text

__all__ = ["TrainsimError", "NoPlanError", "InvariantViolation", "Estimate", "estimate", "SearchResult", "search",
           "PlanSpec", "Run", "load_run", "parse_run", "parse_fix", "as_run", "plan_against"]

#: the CLI's names for the fields the API checks (errors then name the option the user typed)
CLI_NAMES = {"days": "--days", "unit": "--unit", "units": "--units", "chips": "--chips", "family": "--family",
             "precision": "--precision", "system": "--system", "sparsity": "--sparsity", "factors": "--factors",
             "framework": "--framework", "workers": "--workers", "port": "--port", "price": "--price-per-chip-hour",
             "pue": "--pue", "electricity": "--electricity", "fix": "--fix"}


def _name(names: Mapping[str, str] | None, key: str) -> str:
    return (names or {}).get(key, key)


def as_run(spec: Run | str | Path | Mapping, *, base_dir: Path | None = None) -> Run:
    """A :class:`Run` from a Run, a run-spec YAML path (:func:`load_run`) or a run-spec mapping
    (:func:`parse_run`, files named in it relative to ``base_dir``)."""
    if isinstance(spec, Run):
        return spec
    if isinstance(spec, Mapping):
        return parse_run(dict(spec), base_dir=base_dir)
    return load_run(spec)


def estimate(run: Run | str | Path | Mapping, plan: PlanSpec | None = None, **kw: Any) -> Estimate:
    """One training step of ``run`` (a Run or a run spec) under ``plan`` (default: the run's own plan,
    completed by the plan search where partial): :func:`trainsim.estimate.estimate`."""
    return _estimate(as_run(run), plan, **kw)


def search(run: Run | str | Path | Mapping, fixed: PlanSpec | None = None, **kw: Any) -> SearchResult:
    """The fastest plans of ``run`` (a Run or a run spec) that fit in memory, ``fixed`` pinning the fields it
    names: :func:`trainsim.search.search`."""
    return _search(as_run(run), fixed, **kw)


def parse_fix(text: str, base: PlanSpec | None = None, field: str = "--fix") -> PlanSpec:
    """``"tp=8,pp=16,schedule=1f1b|interleaved"`` -> a PlanSpec merged over ``base`` (the run's own plan);
    errors name ``field`` (``--fix``, or ``--against`` for a reference plan)."""
    data = base.model_dump(exclude_none=True) if base is not None else {}
    for part in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in part:
            raise TrainsimError(f"expected key=value, got {part!r}", field=field)
        k, v = (s.strip() for s in part.split("=", 1))
        if k == "mb":
            k = "micro_batch"
        if k not in PlanSpec.model_fields:
            raise unknown("plan field", k, PlanSpec.model_fields, field=field)
        vals = [int(x) if x.isdigit() else x for x in v.split("|")]
        data[k] = vals[0] if len(vals) == 1 else vals
    try:
        return PlanSpec.model_validate(data)
    except Exception as exc:  # pydantic ValidationError
        raise TrainsimError(str(exc).splitlines()[-1].strip(), field=field) from None


# ---------------------------------------------------------------- the explorer's doors (plan, size, capacity,
# sensitivity): thin wrappers over the engine and the scenario modules, so `trainsim serve` asks exactly what
# the CLI asks. Each returns a typed result with ``to_dict()``.

from dataclasses import dataclass as _dataclass, field as _field  # noqa: E402

MAX_CHIPS = 10_000_000        # bounded work per request: no plan search over more chips than this
MAX_SWEEP_POINTS = 200        # and no sweep (sensitivity) over more points than this


def _check_chips(chips: int, field: str = "chips") -> None:
    if chips > MAX_CHIPS:
        raise TrainsimError(f"expected at most {MAX_CHIPS:,} chips, got {chips:,}", field=field)


@_dataclass
class PlanAnswer:
    """The best plan of a run (``search``, exactly ``trainsim plan --json``) with what the explorer adds: the
    whole run's goodput (failures and restarts), energy and cost, the validation error that applies and the
    framework flags of the best plan."""

    search: SearchResult
    framework: str = "megatron"
    goodput: dict | None = None
    economics: dict | None = None
    validation_error: dict | None = None
    flags: str | None = None
    assumptions: list = _field(default_factory=list)
    emitter: str | None = None          # megatron | mindspeed | torchtitan: whose arguments ``flags`` holds
    flags_note: str | None = None       # why there are no flags

    @property
    def best(self):
        """The search's best plan (``search.best``)."""
        return self.search.best

    def to_dict(self) -> dict:
        """``plan --json`` (``best`` nested) with the best plan's fields also at the top level, for the page."""
        out = self.search.to_dict()
        if out.get("best"):
            out = {**out["best"], **out}
        out.update(framework=self.framework, goodput=self.goodput, economics=self.economics,
                   validation_error=self.validation_error, flags=self.flags, assumptions=self.assumptions,
                   emitter=self.emitter, flags_note=self.flags_note)
        if self.search.best is None:
            out["message"] = self.search.no_plan_message()
        return out


def plan(run: Run | str | Path | Mapping, fixed: PlanSpec | None = None, *, top: int = 5,
         framework: str = "megatron", assumptions=None) -> PlanAnswer:
    """``trainsim plan`` plus the run's economics: the search (memoised on the run's content, so a repeated
    question is free), goodput with the scenario assumptions (failure rate, checkpoint, restart), energy and
    cost (:func:`trainsim.scenario.economics.economics`), the held-out validation error of the chip family and
    the best plan as ``framework`` arguments."""
    run = as_run(run)
    _check_chips(run.chips)
    if framework in EMITTERS:       # an emitter name: its flags, the run's own software stack
        emitter = framework
    else:                           # a profile id: the search offers what it has, flags of its emitter

        profile(framework, field="framework")
        if run.framework is not None and run.framework != framework:
            raise TrainsimError(f"the run spec says framework {run.framework}, the request {framework}",
                                field="framework")
        if run.framework is None:
            from dataclasses import replace as _replace

            run = _replace(run, framework=framework)
        emitter = emitter_for(framework)
    a = assumptions if assumptions is not None else Assumptions()
    res = best(run, fixed, top=top, adjust_batch=False)
    ans = PlanAnswer(search=res, framework=_framework_of(run),
                     validation_error=validation_error(run.system.chip.family))
    ans.emitter = emitter
    est = res.best
    if est is not None:
        if emitter is None:
            ans.flags_note = (f"no flag emitter for {_framework_of(run)} "
                              "(trainsim emits megatron, mindspeed, torchtitan)")
        else:
            try:
                ans.flags = emit_args(est, emitter)
            except TrainsimError as exc:   # e.g. a DualPipe plan of a stack whose emitter has no such schedule
                ans.flags_note = str(exc)
        if est.days is not None:
            gp = goodput(run.arch, run.chips, est.days, a)
            ans.goodput = gp.to_dict()
            ans.economics = economics(est, a, goodput=gp)
        ans.assumptions = a.report()
    return ans


def _where(run: Run) -> str | None:
    return str(run.path) if run.path is not None else None


def _check_days(days: float, names: Mapping[str, str] | None) -> None:
    if not (0 < days < 1e6):  # also refuses nan and inf
        raise TrainsimError(f"expected a positive number of days below 10^6, got {days:g}", field=_name(names, "days"))


def cost_inputs(price: float | None = None, pue: float | None = None, electricity: float | None = None, *,
                names: Mapping[str, str] | None = None) -> dict:
    """Validated overrides for :func:`trainsim.cost.run_cost`: rental USD per chip-hour (>= 0), PUE (>= 1) and
    electricity USD per kWh (>= 0); None keeps the sourced default."""
    for key, v, lo in (("price", price, 0.0), ("pue", pue, 1.0), ("electricity", electricity, 0.0)):
        if v is not None and not v >= lo:
            raise TrainsimError(f"expected a number >= {lo:g}, got {v:g}", field=_name(names, key))
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
        exc.result.alternatives = alternatives(r, r.plan)
        raise
    est.cost_inputs = dict(cost or {})
    return est


def search_plans(run: Run | str | Path | Mapping, *, fix: str = "", framework: str = "", emit: str = "",
                 top: int = 5, use_all: bool = False, cost: dict | None = None, progress=None) -> SearchResult:
    """``trainsim plan``: every valid plan searched with the fields of ``fix`` (``"tp=8,pp=16"``) pinned and,
    for ``framework`` (a profile id) or an ``emit`` target, only what that software stack has; the best plans
    carry ``cost``. With no plan, ``result.alternatives`` holds the nearest changes that have one."""
    from dataclasses import replace

    r = as_run(run)
    fixed = parse_fix(fix, r.plan)
    if framework:
        fixed = restrict_plan(fixed, framework)
    elif emit:
        fixed = restrict_plan(fixed, default_for_emit(emit))
    res = _search(r, fixed, top=top, progress=progress, use_all=use_all or None)
    for e in ([res.best] + res.runners_up if res.best else []):
        e.cost_inputs = dict(cost or {})
    if res.best is None:      # no answer: the nearest changes that have one

        res.alternatives = alternatives(replace(r, use_all=use_all or r.use_all), fixed)
    return res


def emit_flags(est: Estimate, emitter: str) -> str:
    """The plan of ``est`` as ``emitter`` arguments: megatron / mindspeed (a bash array) or torchtitan (TOML)
    (:func:`trainsim.emit.emit_args`)."""
    return emit_args(est, emitter)


def size(run: Run | str | Path | Mapping, days: float, *, unit: str = "system", failures: bool = True,
         assumptions=None, cost: dict | None = None, max_chips: int | None = MAX_CHIPS,
         names: Mapping[str, str] | None = None):
    """``trainsim size``: the fewest units (scale-up domains or chips) whose best plan finishes ``run`` in
    ``days`` (:func:`trainsim.scenario.sizing.size`), failures and restarts counted unless ``failures`` is
    False; a :class:`~trainsim.scenario.sizing.SizingResult` whose ``cost`` (with ``cost`` overrides) is that
    of its best estimate (None without one). ``max_chips`` None: the sizing module's own limit."""
    _check_days(days, names)
    if unit not in ("system", "chip"):
        raise TrainsimError(f"expected system or chip, got {unit!r}", field=_name(names, "unit"))
    r = as_run(run)
    if r.training.tokens is None:
        raise TrainsimError("the run needs training.tokens to be sized", field="training.tokens", where=_where(r))
    a = (assumptions if assumptions is not None else Assumptions()) if failures else None
    kw = {} if max_chips is None else {"max_chips": max_chips}
    res = _size(r, days, unit=unit, assumptions=a, **kw)
    res.cost = None
    if res.estimate is not None:
        res.cost = res.estimate.cost(**(cost or {}), **({"goodput": res.goodput} if failures and res.goodput else {}))
    return res


def capacity(system, chips: int = 0, days: float = 90.0, *, units: int = 0, family: str = "deepseek-v3",
             precision: str = "bf16", sparsity: float = 0.0, failures: bool = True, assumptions=None,
             names: Mapping[str, str] | None = None):
    """``trainsim capacity``: the largest run ``chips`` chips (or ``units`` scale-up domains) of ``system``
    (catalog id, inline mapping or System) train in ``days`` (:func:`trainsim.scenario.capacity.capacity`);
    a ``CapacityResult``. ``sparsity``: MoE total / active parameters (default: the sourced assumption)."""
    if (units > 0) == (chips > 0):
        raise TrainsimError(f"give exactly one of {_name(names, 'units')} or {_name(names, 'chips')}",
                            field=_name(names, "units"))
    _check_days(days, names)
    if family not in ("dense", "deepseek-v3"):
        raise TrainsimError(f"expected dense or deepseek-v3, got {family!r}", field=_name(names, "family"))
    if precision not in ("bf16", "fp8"):
        raise TrainsimError(f"expected bf16 or fp8, got {precision!r}", field=_name(names, "precision"))
    s = get_system(system, field=_name(names, "system")) if isinstance(system, str) else resolve_system(system)
    n = chips or units * s.scale_up_size
    _check_chips(n, _name(names, "chips"))
    a = assumptions if assumptions is not None else Assumptions()
    if sparsity:
        a = a.with_overrides({"moe_sparsity": sparsity}, source=_name(names, "sparsity"))
    return _capacity(s, n, days, a, family=family, precision=precision, use_goodput=failures)


@_dataclass
class SensitivityResult:
    """Days of the best plan as each parameter moves (``trainsim sensitivity --json``): ``nominal_days``,
    ``params`` (rows per factor), ``elasticity`` and, with a threshold, ``thresholds``."""

    data: dict

    def to_dict(self) -> dict:
        """The sensitivity table as plain JSON-ready data."""
        return self.data


def sensitivity(run: Run | str | Path | Mapping, params=None, factors=(0.25, 0.5, 1.5, 2.0), *,
                threshold: float | None = None, progress=None, max_points: int | None = MAX_SWEEP_POINTS,
                names: Mapping[str, str] | None = None) -> SensitivityResult:
    """``trainsim sensitivity``: :func:`trainsim.scenario.sensitivity.sensitivity` plus the elasticities and,
    with ``threshold`` (a fraction, 0.1 = 10% slower), the value of each parameter below which the run slows by
    more than that. At most ``max_points`` plan searches (None: no limit). With ``progress`` (a tick of
    :mod:`trainsim.report.progress`) the parameters run one at a time so the bar moves (searches are memoised,
    the numbers are the same)."""
    r = as_run(run)
    _check_chips(r.chips)
    if r.training.tokens is None:
        raise TrainsimError("the run needs training.tokens", field="training.tokens", where=_where(r))
    ps = [canonical(p) for p in (params or PARAMS)]
    fs = tuple(float(f) for f in factors)
    if max_points is not None and len(ps) * len(fs) > max_points:
        raise TrainsimError(f"expected at most {max_points} points, got {len(ps) * len(fs)} "
                            f"({len(ps)} parameters x {len(fs)} factors)", field=_name(names, "factors"))
    if any(not f > 0 for f in fs):
        raise TrainsimError(f"expected positive factors, got {list(fs)}", field=_name(names, "factors"))
    if progress is None:
        out = _sens(r, ps, fs)
    else:
        progress.set_total(len(ps) * (2 if threshold else 1))
        out = None
        for p in ps:
            progress.advance(p, 0)
            one = _sens(r, [p], fs)
            out = one if out is None else {**out, "params": {**out["params"], **one["params"]}}
            progress.advance()
    out["elasticity"] = {p: elasticity(out, p) for p in out["params"]}
    if threshold:
        out["thresholds"] = {}
        for p in ps:
            if progress is not None:
                progress.advance(f"threshold {p}", 0)
            out["thresholds"][p] = _threshold(r, p, threshold)
            if progress is not None:
                progress.advance()
    return SensitivityResult(out)


__all__ += ["PlanAnswer", "plan", "size", "capacity", "SensitivityResult", "sensitivity", "MAX_CHIPS",
            "MAX_SWEEP_POINTS", "CLI_NAMES", "cost_inputs", "estimate_run", "search_plans", "emit_flags"]


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


class InferResult(Answer):
    """``trainsim infer``: prefill / decode throughput, latency, KV cache and the best serving plan."""


class PostTrainResult(Answer):
    """``trainsim posttrain``: one RL / on-policy-distillation step across clusters (phases, traffic, totals)."""


class ErrorTable(Answer):
    """``infer --validate`` / ``posttrain --validate``: ``{"rows": [...], "summary": {...}}`` (serving adds
    ``latency_bound``)."""


class ScenarioResults(Answer):
    """``trainsim scenario``: one result mapping per scenario file (claim, verdict, numbers, assumptions)."""

    @property
    def failed(self) -> bool:
        """True when a scenario ended in an error (the CLI then exits 1)."""
        return any(r.get("verdict_class") == "error" for r in self.data)


class CheckResult(Answer):
    """``trainsim check``: ``{"file", "kind", "ok", "resolved": {label: text}}``."""


class ModelSummary(Answer):
    """``trainsim model``: exact parameter counts and FLOPs per token (:func:`trainsim.model.summary.model_summary`)."""


class CatalogAnswer(Answer):
    """``trainsim catalog``: rows of chips, systems or models, or one entry with every field and source."""


def _serving(spec):
    if isinstance(spec, Serving):
        return spec
    return parse_serving(dict(spec)) if isinstance(spec, Mapping) else load_serving(spec)


def infer(spec) -> InferResult:
    """``trainsim infer``: a serving spec (Serving, path or mapping) -> :func:`trainsim.inference.serve.infer`."""
    return InferResult(_infer(_serving(spec)))


def infer_validate(paths=None) -> ErrorTable:
    """``trainsim infer --validate``: predictions against the published serving points (``paths``: serving specs;
    None: ``validation/inference``, plus the latency-bound table)."""
    rows = serving_error_table(list(paths) if paths else None, ranges=True)
    lat = [] if paths else latency_bound_table()
    return ErrorTable({"rows": rows, "summary": serving_summary(rows), "latency_bound": lat})


def _posttrain_spec(spec):
    if isinstance(spec, PostTrain):
        return spec
    return parse_posttrain(dict(spec)) if isinstance(spec, Mapping) else load_posttrain(spec)


def posttrain(spec) -> PostTrainResult:
    """``trainsim posttrain``: a post-training spec (PostTrain, path or mapping) ->
    :func:`trainsim.posttrain.timeline.evaluate`."""
    return PostTrainResult(posttrain_step(_posttrain_spec(spec)))


def posttrain_validate(paths=None) -> ErrorTable:
    """``trainsim posttrain --validate``: predicted RL step times against ``validation/rl`` (or ``paths``)."""
    rows = posttrain_error_table(list(paths) if paths else None, ranges=True)
    return ErrorTable({"rows": rows, "summary": posttrain_summary(rows)})


def validate(paths=None, *, calibration=None):
    """``trainsim validate``: every published run of ``paths`` (files or folders; default ``validation/runs``)
    predicted and compared; a :class:`~trainsim.validate.runner.ValidationResult` (``to_dict``, ``to_markdown``,
    ``steady``, ``whole_run``, ``errors``, ``by_family``, ``summary``). ``calibration``: a calibration YAML."""
    return _validate(list(paths) if paths else None, calib=calibration)


def scenario_files(folder=None) -> list[Path]:
    """The seed scenario files (``scenarios/*.yaml``, or those of ``folder``), sorted."""
    return sorted((Path(folder) if folder else scenarios_dir()).glob("*.yaml"))


def scenario(file=None, *, all_: bool = False, jobs: int | None = None) -> ScenarioResults:
    """``trainsim scenario``: one scenario FILE, or every seed scenario with ``all_`` (``jobs`` processes;
    None: one per CPU), through the scenario package's public entry (:mod:`trainsim.scenario.run`)."""
    if all_ == (file is not None):
        raise TrainsimError("give a scenario FILE or --all (not both)", field="scenario")
    return ScenarioResults(run_all(scenarios_dir(), jobs=jobs or None) if all_ else [run_file(file)])


def load_sweep(path, *, cost: dict | None = None):
    """A sweep spec (:func:`trainsim.sweep.load_sweep`) with ``cost`` overrides (:func:`cost_inputs`)."""
    return _load_sweep(path).with_cost_overrides(dict(cost or {}))


def check_workers(workers: int, names: Mapping[str, str] | None = None) -> None:
    """A local Dask cluster has 0 (in-process) to :data:`trainsim.sweep.executors.MAX_LOCAL_WORKERS` workers."""
    if not 0 <= workers <= MAX_LOCAL_WORKERS:
        raise TrainsimError(f"expected 0 to {MAX_LOCAL_WORKERS} local worker processes, got {workers}",
                            field=_name(names, "workers"))


def sweep(spec, output, **kw):
    """``trainsim sweep``: every point of ``spec`` (a SweepSpec from :func:`load_sweep`, or a path) evaluated
    into the Parquet file ``output`` (:func:`trainsim.sweep.runner.run_sweep`; keywords ``workers``,
    ``scheduler``, ``resume``, ``overwrite``, ``batch``, ``quiet``); a ``SweepRun``."""
    if isinstance(spec, (str, Path)):
        spec = load_sweep(spec)
    return run_sweep(spec, output, **kw)


def sweep_parts_dir(output) -> Path:
    """Where an unfinished sweep into ``output`` keeps its finished points (``--resume`` reads them)."""
    return parts_dir(output)


def sweep_summary(path, *, deadline_days: float | None = None, metric: str = "days", plots=None) -> Answer:
    """``trainsim sweep --summary``: frontier, Pareto front and per-axis bests of a results file
    (:func:`trainsim.sweep.summary.summarize`); ``plots``: a folder for PNG plots."""
    return Answer(summarize(path, deadline_days=deadline_days, metric=metric, plots_dir=plots))


def report(spec, *, progress=None, **kw):
    """``trainsim report``: the HTML report of a run spec or a scenario file (a path), or of a :class:`Run`
    (:func:`trainsim.report.build_report`); a :class:`~trainsim.report.page.Report` (``html``, ``charts``,
    ``data``, ``write``, ``to_json``). Keywords: ``top``, ``with_scaling``, ``with_sensitivity``,
    ``cost_inputs``, ``spec_source``."""
    if isinstance(spec, Run) or isinstance(spec, Mapping):
        return build_run_report(as_run(spec), progress=progress, **kw)

    return build_report(spec, progress=progress, **kw)


def check_output_path(path, *, force: bool = False, what: str = "output") -> Path:
    """Refuse an output path that exists (unless ``force``) or is a folder, before any work is done
    (:func:`trainsim.io.check_output_path`)."""
    return _check_output_path(path, force=force, what=what)


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
                ("plan", "plan", [plan_text(d["plan"], empty="") for d in ds]),
                ("step time (s)", "step_time_s", [d["step_time_s"] for d in ds])]
        causes = list(dict.fromkeys(k for d in ds for k, v in d["breakdown"].items() if v > 0))
        rows += [(f"  {c} (s)", f"breakdown.{c}", [d["breakdown"].get(c, 0.0) for d in ds]) for c in causes]
        rows += [("tokens/s per chip", "tokens_per_s_per_chip", [d["tokens_per_s_per_chip"] for d in ds]),
                 ("MFU (vs BF16 peak)", "mfu", [d["mfu"] for d in ds]),
                 ("memory per chip (GiB)", "memory_per_chip_bytes", [d["memory_per_chip_bytes"] / 2**30 for d in ds]),
                 ("fits", "fits", [d["fits"] for d in ds]),
                 ("days", "days", [d.get("days") for d in ds])]
        cs = [d.get("cost") or {} for d in ds]
        rows += [("chip-hours", "cost.chip_hours", [c.get("chip_hours") for c in cs]),
                 ("energy (MWh)", "cost.energy_mwh", [c.get("energy_mwh") for c in cs]),
                 ("cost, rental (USD)", "cost.cost_rental_usd", [c.get("cost_rental_usd") for c in cs]),
                 ("cost, capex (USD)", "cost.cost_capex_usd", [c.get("cost_capex_usd") for c in cs])]
        return rows


def differing_inputs(paths: list) -> dict[str, list]:
    """Spec keys (dotted) whose values differ between the run-spec files, each with the value in every file."""
    docs = []
    for p in paths:
        try:
            doc = load_spec_file(p, None, what="run spec")
        except TrainsimError:
            doc = {}
        docs.append(flatten(doc))
    keys = list(dict.fromkeys(k for d in docs for k in d))
    return {k: [d.get(k) for d in docs] for k in keys if k != "name" and len({repr(d.get(k)) for d in docs}) > 1}


def compare(paths: list, *, cost: dict | None = None) -> CompareResult:
    """``trainsim compare``: each run spec estimated as ``trainsim estimate`` does (its plan, completed by the
    search where partial), with ``cost`` overrides, and the inputs that differ."""
    if len(paths) < 2:
        raise TrainsimError(f"expected two or more run specs, got {len(paths)}", field="RUNS")
    ests = []
    for p in paths:
        e = _estimate(load_run(p))
        e.cost_inputs = dict(cost or {})
        ests.append(e)
    return CompareResult(list(paths), ests, differing_inputs(paths))


def spec_kind(doc: Mapping) -> str:
    """run | serving | posttrain | sweep | scenario, from the keys a spec has."""
    if "axes" in doc:
        return "sweep"
    if "clusters" in doc:
        return "posttrain"
    if "serving" in doc:
        return "serving"
    if "kind" in doc:
        return "scenario"
    return "run"


def check(path) -> CheckResult:
    """``trainsim check``: what a spec of any kind (run, serving, post-training, sweep, scenario) resolves to --
    model counts, system, plan fields fixed vs searched -- without running it (one-line error on a problem)."""
    path = Path(path)
    if not path.is_file():
        raise TrainsimError(f"no such file: {path}")
    doc = load_spec_file(path, None, what="spec")
    kind = spec_kind(doc)

    def model_lines(arch, seq_len: int = 4096) -> list[tuple[str, str]]:
        c = count(arch, seq_len)
        return [("model", f"{arch.name}: {fmt_count(c.total_params)} parameters, {fmt_count(c.active_params)} active, "
                          f"{arch.n_layers} layers{', MoE' if arch.is_moe else ''}")]

    def system_lines(system, chips: int | None = None) -> list[tuple[str, str]]:
        return [("system", f"{system.id}: {system.chip.id}, scale-up domain {system.scale_up_size}"
                           + (f", {chips:,} chips" if chips else ""))]

    lines: list[tuple[str, str]] = [("kind", kind)]
    if kind == "run":
        r = load_run(path)
        lines += model_lines(r.arch, r.training.seq_len) + system_lines(r.system, r.chips)
        t = r.training
        lines.append(("training", f"seq_len {t.seq_len}, batch {t.batch_seqs:,} sequences, {t.precision}"
                      + (f", {fmt_count(t.tokens)} tokens" if t.tokens else ", no token count (step time only)")))
        fixed = {f: r.plan.values(f) for f in PLAN_FIELDS if r.plan.values(f) is not None}
        lines.append(("plan fixed", ", ".join(f"{k}={'|'.join(map(str, v))}" for k, v in fixed.items()) or "none"))
        lines.append(("plan searched", ", ".join(f for f in PLAN_FIELDS if f not in fixed) or "none"))
    elif kind == "serving":
        sv = _serving(path)
        lines += model_lines(sv.arch) + system_lines(sv.system)
    elif kind == "posttrain":
        pt = _posttrain_spec(path)
        lines.append(("post-training", f"{getattr(pt, 'kind', '')} job, clusters: {', '.join(doc['clusters'])}"))
    elif kind == "sweep":
        sw = _load_sweep(path)
        lines.append(("sweep", f"axes: {', '.join(doc['axes'])}; {getattr(sw, 'n_points', '?')} points"))
    else:
        d = load_doc(path)
        handler(d["kind"])
        lines.append(("scenario", f"{d.get('id', path.stem)}: kind {d['kind']}"))
    return CheckResult({"file": str(path), "kind": kind, "ok": True, "resolved": dict(lines)})


def model(value: str, *, seq_len: int = 4096, base_dir: Path | None = None) -> ModelSummary:
    """``trainsim model``: a catalog id or a config.json / model YAML path -> exact parameter counts and FLOPs
    per token at ``seq_len`` (with the official counts of a catalog model)."""
    arch = resolve_model(value, base_dir or Path.cwd(), field="model")
    official = official_counts(value) if value in model_ids() else None
    return ModelSummary(model_summary(arch, seq_len, official))


def catalog(kind: str) -> CatalogAnswer:
    """``trainsim catalog chips | systems | models``: one row per entry (raw SI numbers)."""
    rows = {"chips": catalog_describe.chip_rows, "systems": catalog_describe.system_rows,
            "models": catalog_describe.model_rows}
    if kind not in rows:
        raise unknown("catalog table", kind, rows, field="catalog")
    return CatalogAnswer(rows[kind]())


def describe(entry_id: str) -> CatalogAnswer:
    """``trainsim catalog show ID``: one chip, system or model with every field, its sources and ranges."""
    return CatalogAnswer(catalog_describe.describe(entry_id))


def serve_settings(*, host: str = "127.0.0.1", port: int = 8765, workers: int = 2, quiet: bool = False,
                   names: Mapping[str, str] | None = None) -> dict:
    """``trainsim serve``'s checked settings (the explorer, :mod:`trainsim.serve`, is a front end beside the CLI
    and calls this API; the CLI starts it with these): one-line errors for a bad port or worker count."""
    if not 0 < port < 65536:
        raise TrainsimError(f"expected a port between 1 and 65535, got {port}", field=_name(names, "port"))
    if workers < 1:
        raise TrainsimError(f"expected at least 1 worker, got {workers}", field=_name(names, "workers"))
    return {"host": host, "port": port, "workers": workers, "quiet": quiet}


def trim_cache(limit: int) -> None:
    """Clear the memo of plan searches (:mod:`trainsim.scenario.common`) once it holds more than ``limit``
    entries (bounded memory for a long-running explorer)."""
    if len(common._CACHE) > limit:
        common.clear_cache()


def framework_of(run: Run) -> str:
    """The software stack of ``run`` (its ``framework:``, else the default stack)."""
    return _framework_of(run)


def system(value, *, field: str = "system", where: str | None = None):
    """A catalog system by id (an unknown id: one line with close matches), or a System as is."""
    return get_system(value, field=field, where=where) if isinstance(value, str) else resolve_system(value)


def version() -> str:
    """The installed trainsim version."""
    return __version__


__all__ += ["Answer", "InferResult", "PostTrainResult", "ErrorTable", "ScenarioResults", "CheckResult",
            "ModelSummary", "CatalogAnswer", "CompareResult", "infer", "infer_validate", "posttrain",
            "posttrain_validate", "validate", "scenario_files", "scenario", "load_sweep", "check_workers", "sweep",
            "sweep_parts_dir", "sweep_summary", "report", "check_output_path", "differing_inputs", "compare",
            "spec_kind", "check", "model", "catalog", "describe", "serve_settings", "trim_cache", "framework_of",
            "system", "version"]


def plan_against(best, reference: str):
    """``plan --against``: the best plan (an Estimate) beside a reference plan given as ``"tp=8,pp=16,..."``
    (merged over the run's own plan fields, as ``--fix`` is), cause by cause (:mod:`trainsim.plan_diff`)."""
    return plan_diff(best, parse_fix(reference, best.run.plan, field="--against"))


