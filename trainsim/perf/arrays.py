"""Type names of the engine's vectorised formulas (``mypy --strict`` on ``perf/``): a value per plan is a numpy
array over the candidate plans, and most formulas take either that or one number for every plan (numpy broadcasts
both the same way)."""
from __future__ import annotations

from typing import Any, Union

from numpy.typing import NDArray

#: one value per candidate plan
Array = NDArray[Any]
#: a number for every plan, or one per plan
Num = Union[float, Array]
