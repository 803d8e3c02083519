"""The post-training door: ``trainsim posttrain`` and ``trainsim posttrain --validate``."""
from __future__ import annotations

from typing import Mapping
from ..posttrain.spec import PostTrain, load_posttrain, parse_posttrain
from ..posttrain.timeline import evaluate as posttrain_step
from ..posttrain.validate import error_table as posttrain_error_table, summary as posttrain_summary
from ..errors import TrainsimError
from ..io.specfile import located
from . import Answer, ErrorTable


def _posttrain_spec(spec):
    if isinstance(spec, PostTrain):
        return spec
    return parse_posttrain(dict(spec)) if isinstance(spec, Mapping) else load_posttrain(spec)


class PostTrainResult(Answer):
    """``trainsim posttrain``: one RL / on-policy-distillation step across clusters (phases, traffic, totals)."""


def posttrain(spec) -> PostTrainResult:
    """``trainsim posttrain``: a post-training spec (PostTrain, path or mapping) ->
    :func:`trainsim.posttrain.timeline.evaluate`."""
    pt = _posttrain_spec(spec)
    try:
        return PostTrainResult(posttrain_step(pt))
    except TrainsimError as exc:   # raised by the engine on a stated field: name the spec file too
        raise located(exc, spec) from None


def posttrain_validate(paths=None) -> ErrorTable:
    """``trainsim posttrain --validate``: predicted RL step times against ``validation/rl`` (or ``paths``)."""
    rows = posttrain_error_table(list(paths) if paths else None, ranges=True)
    return ErrorTable({"rows": rows, "summary": posttrain_summary(rows)})
