"""Failures at scale: checkpoint interval, restart time and the resulting goodput (useful fraction of wall time).

Model (every input in ``assumptions.yaml``):

* interruptions arrive as a Poisson process with rate ``lambda x chips`` per hour, lambda per chip-hour from
  Llama 3 (arXiv 2407.21783 sec. 3.3.4: 419 unexpected interruptions in 54 days on 16,384 H100 GPUs), so the
  job's mean time between failures is ``M = 1 / (lambda x chips)``;
* a checkpoint stalls training for ``C = checkpoint bytes / storage write bandwidth`` (bytes = total parameters
  incl. MTP x 14 B: bf16 weights + fp32 master, momentum, variance);
* the checkpoint interval is Young's optimum ``tau = sqrt(2 C M)`` (Young 1974, CACM 17(9); Daly 2006, FGCS 22(3)
  shows it is the first-order optimum);
* a failure costs the restart time ``R`` plus the work since the last checkpoint.

Goodput: with exponential failures, the expected wall time to complete one segment of ``tau`` useful seconds
followed by a checkpoint is ``M e^(R/M) (e^((tau + C)/M) - 1)`` (Daly 2006, "A higher order estimate of the
optimum checkpoint interval for restart dumps"; failures may also strike during a restart), so
``goodput = tau / (M e^(R/M) (e^((tau + C)/M) - 1))``. For ``tau, C, R << M`` this is the familiar
``1 - C/tau - (tau/2 + R)/M``. Effective days = ideal days / goodput.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..assumptions import Assumptions
from ..model.counts import count


def mtbf_s(chips: int, rate_per_chip_hour: float) -> float:
    """Mean time between job interruptions in seconds for ``chips`` chips."""
    return 3600.0 / (rate_per_chip_hour * chips)


def young_daly_interval(checkpoint_s: float, mtbf: float) -> float:
    """Young's optimum checkpoint interval sqrt(2 C M) (seconds of work between checkpoints)."""
    return math.sqrt(2.0 * checkpoint_s * mtbf)


def goodput_fraction(checkpoint_s: float, restart_s: float, mtbf: float, interval_s: float | None = None) -> float:
    """Useful fraction of wall-clock time (Daly 2006 exponential model; see the module docstring)."""
    tau = young_daly_interval(checkpoint_s, mtbf) if interval_s is None else interval_s
    if tau <= 0:
        return 0.0
    x = (tau + checkpoint_s) / mtbf
    expected = mtbf * math.exp(restart_s / mtbf) * math.expm1(x)
    return tau / expected if expected > 0 else 0.0


def checkpoint_bytes(params: float, bytes_per_param: float) -> float:
    """Checkpoint size in bytes: parameters x bytes per parameter."""
    return params * bytes_per_param


@dataclass
class Goodput:
    """The fraction of time a job makes progress under failures, with its inputs (interruption rate, MTBF,
    checkpoint size and time, interval, restart time) and the resulting days and expected interruptions."""

    chips: int
    interruptions_per_chip_hour: float
    mtbf_hours: float
    checkpoint_bytes: float
    checkpoint_s: float
    interval_s: float
    restart_s: float
    fraction: float
    ideal_days: float | None = None
    effective_days: float | None = None
    expected_interruptions: float | None = None

    def to_dict(self) -> dict:
        """The goodput as a JSON-able dict of its fields."""
        return asdict(self)


def _params_with_mtp(arch) -> float:
    c = count(arch)
    return float(c.total_params + c.mtp_params)


def goodput(arch, chips: int, ideal_days: float | None, a: Assumptions, *, which: str = "nominal") -> Goodput:
    """Goodput of a run of ``arch`` on ``chips`` chips that would take ``ideal_days`` without failures.

    ``which``: ``nominal``, ``low`` (pessimistic: high failure rate, slow storage, slow restart, larger state) or
    ``high`` (optimistic ends of the same inputs).
    """
    idx = {"low": 0, "nominal": 1, "high": 2}[which]
    # pessimistic = high rate, high bytes/param, low write bandwidth, high restart
    rate = a.bounds("interruptions_per_chip_hour")[2 - idx]
    bpp = a.bounds("checkpoint_bytes_per_param")[2 - idx]
    wbw = a.bounds("checkpoint_write_bw")[idx]
    restart = a.bounds("restart_s")[2 - idx]
    nbytes = checkpoint_bytes(_params_with_mtp(arch), bpp)
    ckpt = nbytes / wbw
    m = mtbf_s(chips, rate)
    tau = young_daly_interval(ckpt, m)
    frac = goodput_fraction(ckpt, restart, m, tau)
    eff = None if ideal_days is None or frac <= 0 else ideal_days / frac
    n_int = None if eff is None else eff * 24.0 * chips * rate
    return Goodput(chips=chips, interruptions_per_chip_hour=rate, mtbf_hours=m / 3600.0, checkpoint_bytes=nbytes,
                   checkpoint_s=ckpt, interval_s=tau, restart_s=restart, fraction=frac, ideal_days=ideal_days,
                   effective_days=eff, expected_interruptions=n_int)


def goodput_range(arch, chips: int, ideal_days: float | None, a: Assumptions) -> dict:
    """Nominal goodput with its pessimistic (low) and optimistic (high) ends."""
    out = {w: goodput(arch, chips, ideal_days, a, which=w) for w in ("low", "nominal", "high")}
    return {
        "fraction": {w: g.fraction for w, g in out.items()},
        "effective_days": {"low": out["high"].effective_days, "nominal": out["nominal"].effective_days,
                           "high": out["low"].effective_days},
        "nominal": out["nominal"].to_dict(),
    }


def restart_for_goodput(arch, chips: int, a: Assumptions, target: float, max_restart_s: float = 7200.0) -> float | None:
    """The longest restart time (s) at which the goodput of ``chips`` chips still reaches ``target`` (other
    failure inputs nominal): where a verdict that hinges on failures flips. None if even an instant restart
    misses the target; ``max_restart_s`` if the target holds at any restart time up to it."""
    if target > 1.0:
        return None
    rate = a["interruptions_per_chip_hour"]
    nbytes = checkpoint_bytes(_params_with_mtp(arch), a["checkpoint_bytes_per_param"])
    ckpt = nbytes / a["checkpoint_write_bw"]
    m = mtbf_s(chips, rate)
    tau = young_daly_interval(ckpt, m)
    f = lambda r: goodput_fraction(ckpt, r, m, tau)  # noqa: E731
    if f(0.0) < target:
        return None
    if f(max_restart_s) >= target:
        return max_restart_s
    lo, hi = 0.0, max_restart_s
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if f(mid) >= target:
            lo = mid
        else:
            hi = mid
    return lo
