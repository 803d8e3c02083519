"""Which plans a training framework can run (``catalog/data/framework_schedules.yaml``, data with sources):
``--framework ID`` and ``--emit`` restrict the plan search to the schedules, ZeRO stages, recompute modes and
parallelisms that framework has."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

from .errors import TrainsimError


@lru_cache(maxsize=1)
def _doc() -> dict:
    text = resources.files("trainsim.catalog").joinpath("data/framework_schedules.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def frameworks() -> dict[str, dict]:
    return dict(_doc()["frameworks"])


def profile(fw: str, field: str = "--framework") -> dict:
    fws = frameworks()
    if fw not in fws:
        from .errors import unknown

        raise unknown("framework", fw, fws, field=field)
    return fws[fw]


def framework_of(run) -> str:
    """The profile id of a run: its ``framework:`` key, else the default (today's Megatron-Core)."""
    return run.framework or _doc()["default_framework"]


def default_for_emit(emit: str) -> str:
    d = _doc()["emit_default"]
    if emit not in d:
        raise TrainsimError(f"expected one of {', '.join(d)}, got {emit!r}", field="--emit")
    return d[emit]


def restrict_plan(plan, fw: str):
    """``plan`` (a PlanSpec) with its schedule / zero / recompute limited to what ``fw`` offers, and ep = etp = 1
    or cp = 1 where the framework has no expert or context parallelism. A field the plan fixes to a value the
    framework lacks is an error naming both."""
    p = profile(fw)
    data = plan.model_dump(exclude_none=True)
    for field, allowed in (("schedule", p["schedules"]), ("zero", p["zero"]), ("recompute", p["recompute"])):
        want = plan.values(field)
        keep = list(allowed) if want is None else [v for v in want if v in allowed]
        if not keep:
            raise TrainsimError(f"{fw} offers {field} {', '.join(map(str, allowed))}, not {', '.join(map(str, want))}",
                                field=f"plan.{field}")
        data[field] = keep[0] if len(keep) == 1 else keep
    for flag, fields in (("expert_parallel", ("ep", "etp")), ("context_parallel", ("cp",))):
        if not p[flag]:
            for f in fields:
                want = plan.values(f)
                if want is not None and 1 not in want:
                    raise TrainsimError(f"{fw} has no {flag.replace('_', ' ')}, so {f} must be 1, got {want}",
                                        field=f"plan.{f}")
                data[f] = 1
    return type(plan).model_validate(data)
