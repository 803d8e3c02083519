"""The post-training door: ``trainsim posttrain`` and ``trainsim posttrain --validate``."""
from __future__ import annotations

from ..posttrain.spec import PostTrain, load_posttrain, parse_posttrain
from ..posttrain.timeline import evaluate as posttrain_step
from ..posttrain.validate import error_table as posttrain_error_table, summary as posttrain_summary
from . import Answer, ErrorTable, answer_located, spec_of


def _posttrain_spec(spec) -> PostTrain:
    return spec_of(spec, PostTrain, parse_posttrain, load_posttrain)


class PostTrainResult(Answer):
    """``trainsim posttrain``: one RL / on-policy-distillation step across clusters (phases, traffic, totals)."""


def posttrain(spec) -> PostTrainResult:
    """``trainsim posttrain``: a post-training spec (PostTrain, path or mapping) ->
    :func:`trainsim.posttrain.timeline.evaluate`."""
    return PostTrainResult(answer_located(posttrain_step, _posttrain_spec(spec), spec))


def posttrain_validate(paths=None) -> ErrorTable:
    """``trainsim posttrain --validate``: predicted RL step times against ``validation/rl`` (or ``paths``)."""
    rows = posttrain_error_table(list(paths) if paths else None, ranges=True)
    return ErrorTable({"rows": rows, "summary": posttrain_summary(rows)})
