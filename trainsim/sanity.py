"""The engine's result invariants, checked once where a result leaves the engine (:func:`check_estimate`).

A prediction that breaks one of these is a bug, not an answer: the CLI prints one line asking for a bug report
and exits 3 instead of printing a plausible-looking number.

* step time, tokens/s per chip and every breakdown term are finite; step time and throughput are > 0;
* memory per chip is finite and > 0, and each memory term is finite and >= 0;
* ``mfu_at_precision`` and ``hfu_at_precision`` lie in (0, 1]: model (hardware) FLOPs per second per chip over
  the dense peak of the precision the run uses -- no chip does more than its peak;
* ``mfu`` (against the BF16 dense peak, the convention of PaLM / Megatron papers) then lies in
  (0, peak(precision) / peak(BF16)]: above 1 only for FP8/FP4 runs, and never above that ratio.
"""
from __future__ import annotations

import math


class InvariantViolation(Exception):
    """A result broke an invariant of the engine (a bug); the CLI exits 3 and prints no result."""


#: a small tolerance for rounding in the ratios (1e-9 relative)
_TOL = 1e-9


def _finite(x, what: str, *, positive: bool = False, nonneg: bool = False) -> None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InvariantViolation(f"{what} is {x!r}, not a number") from None
    if not math.isfinite(v):
        raise InvariantViolation(f"{what} is {v}, expected a finite number")
    if positive and not v > 0:
        raise InvariantViolation(f"{what} is {v:g}, expected > 0")
    if nonneg and v < 0:
        raise InvariantViolation(f"{what} is {v:g}, expected >= 0")


def check_estimate(est) -> None:
    """Raise :class:`InvariantViolation` unless ``est`` (an :class:`~trainsim.estimate.Estimate`) is sane."""
    ctx = f"{est.run.name}, plan {est.plan}"
    _finite(est.step_time_s, f"step_time_s ({ctx})", positive=True)
    _finite(est.tokens_per_s_per_chip, f"tokens_per_s_per_chip ({ctx})", positive=True)
    _finite(est.microbatches, f"microbatches ({ctx})", positive=True)
    for k, v in est.breakdown.items():
        _finite(v, f"breakdown.{k} ({ctx})", nonneg=True)
    _finite(est.memory.get("total"), f"memory total ({ctx})", positive=True)
    for k, v in est.memory.items():
        _finite(v, f"memory.{k} ({ctx})", nonneg=True)
    for name in ("mfu", "hfu"):
        _finite(getattr(est, name), f"{name} ({ctx})", positive=True)
    chip = est.run.system.chip
    ratio = peak_ratio(chip, est.run.training.precision)
    for name in ("mfu", "hfu"):
        at_prec = getattr(est, name) / ratio
        if not 0 < at_prec <= 1 + _TOL:
            raise InvariantViolation(f"{name}_at_precision is {at_prec:.4g} ({name} {getattr(est, name):.4g} against "
                                     f"the BF16 peak, {est.run.training.precision} peak {ratio:g}x BF16); expected "
                                     f"a value in (0, 1] ({ctx})")
    days = est.days
    if days is not None:
        _finite(days, f"days ({ctx})", positive=True)


def peak_ratio(chip, precision: str) -> float:
    """Dense peak of ``precision`` over the BF16 dense peak (1 for BF16; the chip's BF16 rate when it has no
    faster path for ``precision``)."""
    bf16 = chip.flops("bf16")
    try:
        p = chip.flops(precision)
    except Exception:  # noqa: BLE001 - a chip without that precision runs it at the BF16 rate
        p = bf16
    return max(p / bf16, 1.0) if p and bf16 else 1.0
