"""Pipeline schedules: bubble time and micro-batches in flight.

With m micro-batches per step, p stages and t = forward + backward time of one micro-batch on the slowest stage:

* 1F1B (PipeDream-Flush; Narayanan et al. 2021, sec. 2.2.1): bubble (p - 1) t, i.e. a fraction
  (p - 1) / (m + p - 1) of the step; the first stage holds p micro-batches of activations.
* Interleaved 1F1B with v virtual stages (same paper, sec. 2.2.2): bubble (p - 1) t / v, fraction
  (p - 1) / (v m + p - 1); activations of rank 0 x (1 + (p - 1) / (p v)) (Korthikanti et al. 2022, sec. 4.2.3).
* Zero-bubble ZB-H1 (Qi et al. 2023, sec. 3): splitting backward into input and weight gradients
  (F = B = W) leaves (p - 1)(F + B - 2W) = (p - 1) t / 3; memory as 1F1B.
* DualPipe (DeepSeek-V3 report, sec. 3.2.1, Table 2): bubble (p/2 - 1)(F&B + B - 3W). Table 2 uses one B for
  every schedule, the full backward (1F1B's bubble there is (p - 1)(F + B)), so with F = W = t/3, B = 2t/3 and
  an overlapped forward-and-backward chunk F&B = F + B = t: (p/2 - 1)(t + 2t/3 - t) = (p/2 - 1) 2t/3; the same
  reading gives ZB-H1's (p - 1)(F + B - 2W) = (p - 1) t/3 above. Two copies of the parameters; p + 1
  micro-batches of activations.
"""
from __future__ import annotations

import numpy as np

SCHED_1F1B, SCHED_INTERLEAVED, SCHED_ZB, SCHED_DUALPIPE = 0, 1, 2, 3


def bubble_time(schedule, pp, vpp, t_mb):
    """Idle time per step of the slowest stage, given t_mb = forward + backward of one micro-batch."""
    p = pp.astype(np.float64)
    v = np.maximum(vpp, 1).astype(np.float64)
    b = np.where(schedule == SCHED_1F1B, (p - 1.0) * t_mb, 0.0)
    b = np.where(schedule == SCHED_INTERLEAVED, (p - 1.0) * t_mb / v, b)
    b = np.where(schedule == SCHED_ZB, (p - 1.0) * t_mb / 3.0, b)
    b = np.where(schedule == SCHED_DUALPIPE, np.maximum(p / 2.0 - 1.0, 0.0) * 2.0 * t_mb / 3.0, b)
    return np.where(pp > 1, b, 0.0)


def microbatches_in_flight(schedule, pp, vpp, m, rank=0):
    """Micro-batches of activations pipeline rank ``rank`` holds at its peak, in units of that rank's layers.

    Megatron-Core ``pipeline_parallel/schedules.py``: 1F1B (and ZB-H1, Qi et al. 2023: same memory) runs
    p - r - 1 warm-up forwards before its first backward, so rank r holds min(m, p - r); the interleaved
    schedule runs 2 (p - r - 1) + (v - 1) p warm-up chunks (each 1/v of the rank's layers), so rank r holds
    min(m v, 2 (p - r - 1) + (v - 1) p + 1) / v (for rank 0 and m >= p: p + (p - 1) / v, Korthikanti et al. 2022
    sec. 4.2.3); DualPipe holds p + 1 (DeepSeek-V3 report, Table 2) on every rank.
    """
    p = pp.astype(np.float64)
    v = np.maximum(vpp, 1).astype(np.float64)
    r = np.asarray(rank, dtype=np.float64)
    one_f = np.minimum(m, np.maximum(p - r, 1.0))
    inter = np.minimum(m * v, 2.0 * np.maximum(p - r - 1.0, 0.0) + (v - 1.0) * p + 1.0) / v
    f = np.where(schedule == SCHED_INTERLEAVED, inter, one_f)
    f = np.where(schedule == SCHED_DUALPIPE, np.minimum(m, p) * (p + 1.0) / p, f)
    return np.where(pp > 1, f, 1.0)


def param_copies(schedule):
    """DualPipe keeps two copies of the stage's parameters (DeepSeek-V3 report, Table 2)."""
    return np.where(schedule == SCHED_DUALPIPE, 2.0, 1.0)
