"""The scenario doors: the explorer's plan question (best plan, goodput, energy, cost), size, capacity,
sensitivity and the seed scenarios (``trainsim plan``'s search is :func:`trainsim.api.search_plans`)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping
from ..errors import TrainsimError, readable_count
from ..search import SearchResult
from ..spec import PlanSpec, Run
from ..emit import emit_args, EMITTERS
from ..perf.calibration import validation_error
from ..assumptions import Assumptions, check_entry
from ..types_checked import MAX_SCALE_FACTOR, check_scale_factor
from ..scenario.common import best
from ..scenario.economics import economics
from ..scenario.goodput import goodput
from ..frameworks import emitter_for, framework_of as _framework_of, profile
from ..scenario.sizing import size as _size
from ..catalog.load import get_system
from ..catalog.resolve import resolve_system
from ..scenario.capacity import SparsityError, capacity as _capacity
from ..scenario.sensitivity import PARAMS, canonical, elasticity, sensitivity as _sens, threshold as _threshold
from ..scenario.run import scenarios_dir, run_all, run_file
from ..scenario import common
from dataclasses import dataclass as _dataclass, field as _field
from . import Answer, MAX_CHIPS, MAX_SWEEP_POINTS, _check_chips, _check_days, _name, as_run


@_dataclass
class PlanAnswer:
    """The best plan of a run (``search``, exactly ``trainsim plan --json``) with what the explorer adds: the
    whole run's goodput (failures and restarts), energy and cost, the validation error that applies and the
    framework flags of the best plan."""

    search: SearchResult
    framework: str | None = None        # the profile id the plans were searched and timed under
    goodput: dict | None = None
    economics: dict | None = None
    validation_error: dict | None = None
    flags: str | None = None
    assumptions: list = _field(default_factory=list)
    emitter: str | None = None          # an emitter of trainsim.emit.EMITTERS: whose arguments ``flags`` holds
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
         framework: str | None = None, assumptions=None) -> PlanAnswer:
    """``trainsim plan`` plus the run's economics: the search (memoised on the run's content, so a repeated
    question is free), goodput with the scenario assumptions (failure rate, checkpoint, restart), energy and
    cost (:func:`trainsim.scenario.economics.economics`), the held-out validation error of the chip family and
    the best plan as flags. ``framework``: None, the run's own stack (its ``framework:``, else its chip vendor's,
    :func:`trainsim.frameworks.framework_of`) and that stack's emitter (:func:`trainsim.frameworks.emitter_for`:
    an Ascend run that names no stack gets MindSpeed-LLM's flags, an AMD one Primus's); an emitter name
    (:data:`trainsim.emit.EMITTERS`), that emitter's flags for the run's own stack; a profile id, the search
    restricted to and timed under that stack, with its emitter's flags."""
    run = as_run(run)
    _check_chips(run.chips)
    if framework is None:           # the run's own stack, and the flags of that stack's emitter
        emitter = emitter_for(_framework_of(run))
    elif framework in EMITTERS:     # an emitter name: its flags, the run's own software stack
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
                              f"(trainsim emits {', '.join(EMITTERS)})")
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


def check_size_args(days: float, unit: str, names: Mapping[str, str] | None = None) -> None:
    """Refuse a deadline that is not a positive number of days or a unit other than system / chip (the checks
    :func:`size` makes before reading the run; ``trainsim size`` makes them before it prints the run's warnings,
    so that bad input stays one line)."""
    _check_days(days, names)
    if unit not in ("system", "chip"):
        raise TrainsimError(f"expected system or chip, got {unit!r}", field=_name(names, "unit"))


def size(run: Run | str | Path | Mapping, days: float, *, unit: str = "system", failures: bool = True,
         assumptions=None, cost: dict | None = None, max_chips: int | None = MAX_CHIPS,
         names: Mapping[str, str] | None = None):
    """``trainsim size``: the fewest units (scale-up domains or chips) whose best plan finishes ``run`` in
    ``days`` (:func:`trainsim.scenario.sizing.size`), failures and restarts counted unless ``failures`` is
    False; a :class:`~trainsim.scenario.sizing.SizingResult` whose ``cost`` (with ``cost`` overrides) is that
    of its best estimate (None without one). ``max_chips`` None: the sizing module's own limit."""
    check_size_args(days, unit, names)
    r = as_run(run)
    if r.training.tokens is None:
        raise TrainsimError("the run needs training.tokens to be sized", field="training.tokens", where=_where(r))
    a = (assumptions if assumptions is not None else Assumptions()) if failures else None
    kw = {} if max_chips is None else {"max_chips": max_chips}
    res = _size(r, days, unit=unit, assumptions=a, **kw)
    res.cost = None
    if res.estimate is not None:
        gp = res.goodput
        if gp is None:      # no count meets the deadline: the estimate is the fastest probe's, costed at its goodput
            gp = next((p["goodput"] for p in res.probes if p["chips"] == res.estimate.run.chips), None)
        res.cost = res.estimate.cost(**(cost or {}), **({"goodput": gp} if failures and gp else {}))
    return res


def _fleet_count(units: int | None, chips: int | None, names: Mapping[str, str] | None) -> tuple[int, int]:
    """The one fleet count of ``capacity``: exactly one of ``units`` and ``chips`` given (not ``None``), and positive;
    ``(units, chips)`` with 0 for the one not given. Each error says what was given and what was expected."""
    u, c = _name(names, "units"), _name(names, "chips")
    if units is None and chips is None:
        raise TrainsimError(f"expected a fleet size: {u} N (scale-up domains) or {c} N (chips), a positive count; "
                            "got neither", field=u)
    if units is not None and chips is not None:
        raise TrainsimError(f"expected one fleet size, {u} or {c}, not both; got {u} {units} and {c} {chips}",
                            field=u)
    field, value = (u, units) if units is not None else (c, chips)
    if value is None or value <= 0:
        raise TrainsimError(f"expected a positive count, got {value}", field=field)
    return units or 0, chips or 0


def capacity(system, chips: int | None = None, days: float = 90.0, *, units: int | None = None,
             family: str = "deepseek-v3",
             precision: str = "bf16", sparsity: float = 0.0, failures: bool = True, assumptions=None,
             names: Mapping[str, str] | None = None, at_least=None):
    """``trainsim capacity``: the largest run ``chips`` chips (or ``units`` scale-up domains) of ``system``
    (catalog id, inline mapping or System) train in ``days`` (:func:`trainsim.scenario.capacity.capacity`);
    a ``CapacityResult``. ``sparsity``: MoE total / active parameters (default: the sourced assumption).
    ``at_least``: the ``CapacityResult`` of a smaller fleet of the same system, family and days, asked with the same
    options: this answer then trains at least its FLOP (more chips never give less). ``None``: not given."""
    units, chips = _fleet_count(units, chips, names)
    _check_days(days, names)
    if family not in ("dense", "deepseek-v3"):
        raise TrainsimError(f"expected dense or deepseek-v3, got {family!r}", field=_name(names, "family"))
    if precision not in ("bf16", "fp8"):
        raise TrainsimError(f"expected bf16 or fp8, got {precision!r}", field=_name(names, "precision"))
    s = get_system(system, field=_name(names, "system")) if isinstance(system, str) else resolve_system(system)
    n = chips or units * s.scale_up_size
    if chips:
        _check_chips(n, _name(names, "chips"))
    elif n > MAX_CHIPS:     # name the option given: --units 2000 of 8,192-chip SuperPoDs, not --chips
        raise TrainsimError(f"expected at most {MAX_CHIPS // s.scale_up_size:,} units of {s.id} ({MAX_CHIPS:,} "
                            f"chips), got {readable_count(units)} ({readable_count(n)} chips)",
                            field=_name(names, "units"))
    a = assumptions if assumptions is not None else Assumptions()
    if sparsity:
        check_entry("moe_sparsity", sparsity, _name(names, "sparsity"))   # 1 to the shape rule's most experts
        if family != "deepseek-v3":
            raise TrainsimError(f"a MoE total/active ratio applies to the deepseek-v3 family only, not to "
                                f"{family!r}, got {sparsity:g}", field=_name(names, "sparsity"))
        a = a.with_overrides({"moe_sparsity": sparsity}, source=_name(names, "sparsity"))
    if at_least is not None and (getattr(at_least, "system", None) != s.id or at_least.family != family
                                 or at_least.days != days or (at_least.chips_used or 0) > n):
        raise TrainsimError(f"expected the answer for at most {n:,} chips of {s.id}, {family}, {days:g} days; got "
                            f"{getattr(at_least, 'chips_used', None)} chips of {getattr(at_least, 'system', None)}, "
                            f"{getattr(at_least, 'family', None)}, {getattr(at_least, 'days', None)} days",
                            field="at_least")
    try:
        return _capacity(s, n, days, a, family=family, precision=precision, use_goodput=failures, at_least=at_least)
    except SparsityError as exc:     # the shape of a probed size needs too many experts: name the option given
        raise SparsityError(exc.detail, field=_name(names, "sparsity") if sparsity else exc.field) from None


@_dataclass
class SensitivityResult:
    """Days of the best plan as each parameter moves (``trainsim sensitivity --json``): ``nominal_days`` (None
    without ``training.tokens``), the nominal tokens/s per chip, step time and MFU, ``params`` (rows per factor),
    ``elasticity`` and, with a threshold, ``thresholds``."""

    data: dict

    def to_dict(self) -> dict:
        """The sensitivity table as plain JSON-ready data."""
        return self.data


def check_sensitivity_args(params=None, factors=(0.25, 0.5, 1.5, 2.0), max_points: int | None = MAX_SWEEP_POINTS,
                           names: Mapping[str, str] | None = None) -> tuple[list[str], tuple[float, ...]]:
    """The parameters (canonical names; None: all) and factors (each once, in order) :func:`sensitivity` varies,
    refused unless known, at least one factor, each from 1/MAX_SCALE_FACTOR to MAX_SCALE_FACTOR, and at most
    ``max_points`` in all; ``trainsim sensitivity`` checks them before it prints the run's warnings, so that bad
    input stays one line (qa30c)."""
    ps = [canonical(p, _name(names, "params")) for p in (params or PARAMS)]
    fs = tuple(dict.fromkeys(float(f) for f in factors))   # a factor given twice ("2,2") is one column
    if not fs:
        raise TrainsimError("expected at least one factor such as 0.5,2, got none", field=_name(names, "factors"))
    if max_points is not None and len(ps) * len(fs) > max_points:
        raise TrainsimError(f"expected at most {max_points} points, got {len(ps) * len(fs)} "
                            f"({len(ps)} parameters x {len(fs)} factors)", field=_name(names, "factors"))
    if any(not check_scale_factor(f) for f in fs):
        raise TrainsimError(f"expected positive factors from {1 / MAX_SCALE_FACTOR:g} to {MAX_SCALE_FACTOR:g}, got "
                            f"{list(fs)}", field=_name(names, "factors"))
    return ps, fs


def sensitivity(run: Run | str | Path | Mapping, params=None, factors=(0.25, 0.5, 1.5, 2.0), *,
                threshold: float | None = None, progress=None, max_points: int | None = MAX_SWEEP_POINTS,
                names: Mapping[str, str] | None = None) -> SensitivityResult:
    """``trainsim sensitivity``: :func:`trainsim.scenario.sensitivity.sensitivity` plus the elasticities and,
    with ``threshold`` (a fraction, 0.1 = 10% slower), the value of each parameter below which the run slows by
    more than that. At most ``max_points`` plan searches (None: no limit). With ``progress`` (a tick of
    :mod:`trainsim.report.progress`) the parameters run one at a time so the bar moves (searches are memoised,
    the numbers are the same)."""
    ps, fs = check_sensitivity_args(params, factors, max_points, names)
    r = as_run(run)
    _check_chips(r.chips)
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


def scenario_files(folder=None) -> list[Path]:
    """The seed scenario files (``scenarios/*.yaml``, or those of ``folder``), sorted."""
    return sorted((Path(folder) if folder else scenarios_dir()).glob("*.yaml"))


class ScenarioResults(Answer):
    """``trainsim scenario``: one result mapping per scenario file (claim, verdict, numbers, assumptions)."""

    @property
    def failed(self) -> bool:
        """True when a scenario ended in an error (the CLI then exits 1)."""
        return any(r.get("verdict_class") == "error" for r in self.data)


def scenario(file=None, *, all_: bool = False, jobs: int | None = None) -> ScenarioResults:
    """``trainsim scenario``: one scenario FILE, or every seed scenario with ``all_`` (``jobs`` processes;
    None: one per CPU), through the scenario package's public entry (:mod:`trainsim.scenario.run`)."""
    if all_ == (file is not None):
        raise TrainsimError("give a scenario FILE or --all (not both)", field="scenario")
    if jobs is not None and jobs < 0:
        raise TrainsimError(f"expected a number of processes >= 0 (0: one per CPU), got {jobs}", field="--jobs")
    return ScenarioResults(run_all(scenarios_dir(), jobs=jobs or None) if all_ else [run_file(file)])


def trim_cache(limit: int) -> None:
    """Clear the memo of plan searches (:mod:`trainsim.scenario.common`) once it holds more than ``limit``
    entries (bounded memory for a long-running explorer)."""
    if len(common._CACHE) > limit:
        common.clear_cache()


def assumptions(failure_rate: float | None = None) -> Assumptions:
    """The scenario assumptions (failure rate, checkpointing, prices), with ``interruptions_per_chip_hour`` set to
    ``failure_rate`` when given (the explorer's failure-rate slider)."""
    a = Assumptions()
    if failure_rate is not None:
        a = a.with_overrides({"interruptions_per_chip_hour": failure_rate}, source="edited in the explorer")
    return a
