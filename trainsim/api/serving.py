"""The serving door: ``trainsim infer`` and ``trainsim infer --validate``."""
from __future__ import annotations

from typing import Mapping
from ..inference.spec import Serving, load_serving, parse_serving
from ..inference.serve import infer as _infer
from ..inference.validate import error_table as serving_error_table, latency_bound_table, summary as serving_summary
from ..errors import TrainsimError
from ..io.specfile import located
from . import Answer, ErrorTable


def _serving(spec):
    if isinstance(spec, Serving):
        return spec
    return parse_serving(dict(spec)) if isinstance(spec, Mapping) else load_serving(spec)


class InferResult(Answer):
    """``trainsim infer``: prefill / decode throughput, latency, KV cache and the best serving plan."""


def infer(spec) -> InferResult:
    """``trainsim infer``: a serving spec (Serving, path or mapping) -> :func:`trainsim.inference.serve.infer`."""
    sv = _serving(spec)
    try:
        return InferResult(_infer(sv))
    except TrainsimError as exc:   # raised by the engine on a stated field: name the spec file too
        raise located(exc, spec) from None


def infer_validate(paths=None) -> ErrorTable:
    """``trainsim infer --validate``: predictions against the published serving points (``paths``: serving specs;
    None: ``validation/inference``, plus the latency-bound table)."""
    rows = serving_error_table(list(paths) if paths else None, ranges=True)
    lat = [] if paths else latency_bound_table()
    return ErrorTable({"rows": rows, "summary": serving_summary(rows), "latency_bound": lat})
