"""The serving door: ``trainsim infer`` and ``trainsim infer --validate``."""
from __future__ import annotations

from ..inference.spec import Serving, load_serving, parse_serving
from ..inference.serve import infer as _infer
from ..inference.validate import error_table as serving_error_table, latency_bound_table, summary as serving_summary
from . import Answer, ErrorTable, answer_located, spec_of


def _serving(spec) -> Serving:
    return spec_of(spec, Serving, parse_serving, load_serving)


class InferResult(Answer):
    """``trainsim infer``: prefill / decode throughput, latency, KV cache and the best serving plan."""


def infer(spec) -> InferResult:
    """``trainsim infer``: a serving spec (Serving, path or mapping) -> :func:`trainsim.inference.serve.infer`."""
    return InferResult(answer_located(_infer, _serving(spec), spec))


def infer_validate(paths=None) -> ErrorTable:
    """``trainsim infer --validate``: predictions against the published serving points (``paths``: serving specs;
    None: ``validation/inference``, plus the latency-bound table)."""
    rows = serving_error_table(list(paths) if paths else None, ranges=True)
    lat = [] if paths else latency_bound_table()
    return ErrorTable({"rows": rows, "summary": serving_summary(rows), "latency_bound": lat})
