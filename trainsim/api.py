"""The public Python API; the CLI calls only these."""
from __future__ import annotations

from .errors import TrainsimError
from .estimate import Estimate, estimate
from .search import SearchResult, search
from .spec import PlanSpec, Run, load_run, parse_run

__all__ = ["TrainsimError", "Estimate", "estimate", "SearchResult", "search", "PlanSpec", "Run", "load_run",
           "parse_run", "parse_fix"]


def parse_fix(text: str, base: PlanSpec | None = None) -> PlanSpec:
    """``"tp=8,pp=16,schedule=1f1b|interleaved"`` -> a PlanSpec merged over ``base`` (the run's own plan)."""
    data = base.model_dump(exclude_none=True) if base is not None else {}
    for part in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in part:
            raise TrainsimError(f"expected key=value, got {part!r}", field="--fix")
        k, v = (s.strip() for s in part.split("=", 1))
        if k == "mb":
            k = "micro_batch"
        if k not in PlanSpec.model_fields:
            from .errors import unknown

            raise unknown("plan field", k, PlanSpec.model_fields, field="--fix")
        vals = [int(x) if x.isdigit() else x for x in v.split("|")]
        data[k] = vals[0] if len(vals) == 1 else vals
    try:
        return PlanSpec.model_validate(data)
    except Exception as exc:  # pydantic ValidationError
        raise TrainsimError(str(exc).splitlines()[-1].strip(), field="--fix") from None
