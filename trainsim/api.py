"""The public Python API; the CLI calls only these."""
from __future__ import annotations

from .errors import TrainsimError
from .estimate import Estimate, estimate
from .search import SearchResult, search
from .spec import PlanSpec, Run, load_run, parse_run

__all__ = ["TrainsimError", "Estimate", "estimate", "SearchResult", "search", "PlanSpec", "Run", "load_run",
           "parse_run", "parse_fix", "plan_against"]


def parse_fix(text: str, base: PlanSpec | None = None, field: str = "--fix") -> PlanSpec:
    """``"tp=8,pp=16,schedule=1f1b|interleaved"`` -> a PlanSpec merged over ``base`` (the run's own plan)."""
    data = base.model_dump(exclude_none=True) if base is not None else {}
    for part in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in part:
            raise TrainsimError(f"expected key=value, got {part!r}", field=field)
        k, v = (s.strip() for s in part.split("=", 1))
        if k == "mb":
            k = "micro_batch"
        if k not in PlanSpec.model_fields:
            from .errors import unknown

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


def plan(run: Run, fixed: PlanSpec | None = None, *, top: int = 5, framework: str = "megatron",
         assumptions=None) -> PlanAnswer:
    """``trainsim plan`` plus the run's economics: the search (memoised on the run's content, so a repeated
    question is free), goodput with the scenario assumptions (failure rate, checkpoint, restart), energy and
    cost (:func:`trainsim.scenario.economics.economics`), the held-out validation error of the chip family and
    the best plan as ``framework`` arguments."""
    from .emit import emit_args
    from .perf.calibration import validation_error
    from .scenario.assumptions import Assumptions
    from .scenario.common import best
    from .scenario.economics import economics
    from .scenario.goodput import goodput

    from .emit import EMITTERS
    from .frameworks import emitter_for, framework_of

    _check_chips(run.chips)
    if framework in EMITTERS:       # an emitter name: its flags, the run's own software stack
        emitter = framework
    else:                           # a profile id: the search offers what it has, flags of its emitter
        from .frameworks import profile

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
    ans = PlanAnswer(search=res, framework=framework_of(run), validation_error=validation_error(run.system.chip.family))
    ans.emitter = emitter
    est = res.best
    if est is not None:
        if emitter is None:
            ans.flags_note = f"no flag emitter for {framework_of(run)} (trainsim emits megatron, mindspeed, torchtitan)"
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


def size(run: Run, days: float, *, unit: str = "system", failures: bool = True, assumptions=None):
    """``trainsim size``: the fewest units (scale-up domains or chips) whose best plan finishes ``run`` in
    ``days`` (:func:`trainsim.scenario.sizing.size`); a :class:`~trainsim.scenario.sizing.SizingResult`."""
    from .scenario.assumptions import Assumptions
    from .scenario.sizing import size as _size

    if not days > 0:
        raise TrainsimError(f"expected a positive number of days, got {days:g}", field="days")
    if run.training.tokens is None:
        raise TrainsimError("the run needs training.tokens to be sized", field="training.tokens")
    a = (assumptions if assumptions is not None else Assumptions()) if failures else None
    return _size(run, days, unit=unit, assumptions=a, max_chips=MAX_CHIPS)


def capacity(system, chips: int, days: float, *, family: str = "deepseek-v3", precision: str = "bf16",
             sparsity: float = 0.0, failures: bool = True, assumptions=None):
    """``trainsim capacity``: the largest run ``chips`` chips of ``system`` (catalog id, inline mapping or
    System) train in ``days`` (:func:`trainsim.scenario.capacity.capacity`); a ``CapacityResult``."""
    from .catalog.resolve import resolve_system
    from .scenario.assumptions import Assumptions
    from .scenario.capacity import capacity as _capacity

    if not days > 0:
        raise TrainsimError(f"expected a positive number of days, got {days:g}", field="days")
    if chips < 1:
        raise TrainsimError(f"expected a positive number of chips, got {chips}", field="chips")
    _check_chips(chips)
    if family not in ("dense", "deepseek-v3"):
        raise TrainsimError(f"expected dense or deepseek-v3, got {family!r}", field="family")
    if precision not in ("bf16", "fp8"):
        raise TrainsimError(f"expected bf16 or fp8, got {precision!r}", field="precision")
    s = resolve_system(system)
    a = assumptions if assumptions is not None else Assumptions()
    if sparsity:
        a = a.with_overrides({"moe_sparsity": sparsity}, source="sparsity")
    return _capacity(s, chips, days, a, family=family, precision=precision, use_goodput=failures)


@_dataclass
class SensitivityResult:
    """Days of the best plan as each parameter moves (``trainsim sensitivity --json``)."""

    data: dict

    def to_dict(self) -> dict:
        return self.data


def sensitivity(run: Run, params=None, factors=(0.25, 0.5, 1.5, 2.0)) -> SensitivityResult:
    """``trainsim sensitivity``: :func:`trainsim.scenario.sensitivity.sensitivity` plus the elasticities; at
    most :data:`MAX_SWEEP_POINTS` plan searches."""
    from .scenario.sensitivity import PARAMS, canonical, elasticity
    from .scenario.sensitivity import sensitivity as _sens

    _check_chips(run.chips)
    if run.training.tokens is None:
        raise TrainsimError("the run needs training.tokens", field="training.tokens")
    ps = [canonical(p) for p in (params or PARAMS)]
    fs = tuple(float(f) for f in factors)
    if len(ps) * len(fs) > MAX_SWEEP_POINTS:
        raise TrainsimError(f"expected at most {MAX_SWEEP_POINTS} points, got {len(ps) * len(fs)} "
                            f"({len(ps)} parameters x {len(fs)} factors)", field="factors")
    if any(not f > 0 for f in fs):
        raise TrainsimError(f"expected positive factors, got {list(fs)}", field="factors")
    out = _sens(run, ps, fs)
    out["elasticity"] = {p: elasticity(out, p) for p in out["params"]}
    return SensitivityResult(out)


__all__ += ["PlanAnswer", "plan", "size", "capacity", "SensitivityResult", "sensitivity", "MAX_CHIPS",
            "MAX_SWEEP_POINTS"]


def plan_against(best, reference: str):
    """``plan --against``: the best plan (an Estimate) beside a reference plan given as ``"tp=8,pp=16,..."``
    (merged over the run's own plan fields, as ``--fix`` is), cause by cause (:mod:`trainsim.plan_diff`)."""
    from .plan_diff import plan_diff

    return plan_diff(best, parse_fix(reference, best.run.plan, field="--against"))
