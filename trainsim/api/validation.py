"""The validation door: ``trainsim validate``."""
from __future__ import annotations

from ..validate import validate as _validate


def validate(paths=None, *, calibration=None):
    """``trainsim validate``: every published run of ``paths`` (files or folders; default ``validation/runs``)
    predicted and compared; a :class:`~trainsim.validate.runner.ValidationResult` (``to_dict``, ``to_markdown``,
    ``steady``, ``whole_run``, ``errors``, ``by_family``, ``summary``). ``calibration``: a calibration YAML."""
    return _validate(list(paths) if paths else None, calib=calibration)
