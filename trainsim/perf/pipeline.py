"""Pipeline schedules' costs for the step model: bubble time, micro-batches in flight, parameter copies
and stage placement.

The formulas, with their sources, live in the schedule registry :mod:`trainsim.parallel.schedules` (one place
per schedule); this module re-exports them for the perf package.
"""
from __future__ import annotations

from ..parallel.schedules import (bubble_time, dp_sync_window, microbatches_in_flight, mirrored_stages,
                                  overlaps_ep_comm, param_copies, pipeline_calls, virtual_stages)

__all__ = ["bubble_time", "dp_sync_window", "microbatches_in_flight", "mirrored_stages", "overlaps_ep_comm",
           "param_copies", "pipeline_calls", "virtual_stages"]
