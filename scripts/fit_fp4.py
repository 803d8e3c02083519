#!/usr/bin/env python3
"""Fit the FP4 realised-gain fraction f (scenario/data/fp4_training.yaml) on the published NVFP4 training rows.

There is no FP4 run in validation/runs, but four of its FP8 runs have an NVFP4 row beside them in the same
Megatron-Bridge table with the same plan (docs/performance-summary-archive.md, 26.06 and 26.04.01 containers).
For each pair the model runs the validation run's own plan twice: as published (FP8 peak) and with GEMMs
g = 1 + f (P_fp4 / P_fp8 - 1) times faster (:func:`trainsim.scenario.ranges.fp4_gemm_speedup`); f is the value at
which the model's throughput ratio equals the published NVFP4 / FP8 ratio (bisection; the ratio rises with f).
The engine's own error on the FP8 run cancels in the ratio.

Usage: python scripts/fit_fp4.py    (prints one line per pair and the low / median / high of f)
"""
from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (validation run whose plan the NVFP4 row shares, NVFP4 tokens/s/GPU of the same table and plan, table)
PAIRS = (
    ("megatron-bridge-2606-llama31-405b-gb300-256-fp8.yaml", 1413, "26.06 LLAMA3.1_405B DGX-GB300 NVFP4 (TP4 PP8 VP4)"),
    ("megatron-bridge-2606-llama31-405b-gb200-256-mxfp8.yaml", 1166, "26.06 LLAMA3.1_405B DGX-GB200 NVFP4 (TP4 PP16 VP8)"),
    ("megatron-bridge-260401-llama3-70b-gb300-64-mxfp8.yaml", 7296, "26.04.01 LLAMA3_70B DGX-GB300 NVFP4 (TP1 PP4 VP5)"),
    ("megatron-bridge-260401-llama3-70b-gb200-64-mxfp8.yaml", 4864, "26.04.01 LLAMA3_70B DGX-GB200 NVFP4 (TP2 PP4 VP5)"),
)


def model_ratio(run, f: float) -> float:
    """Model tokens/s of ``run``'s own plan with FP4 GEMMs at realised fraction ``f`` over the same at FP8."""
    from trainsim.api import estimate
    from trainsim.scenario.ranges import apply, fp4_gemm_speedup

    chip = run.system.chip
    fp8, fp4 = chip.peak_flops["fp8"], chip.peak_flops["fp4"]
    base = estimate(run).tokens_per_s_per_chip
    fast = replace(run, system=apply(run.system, "chip", "fp8_flops", fp8 * fp4_gemm_speedup(fp4, fp8, f)))
    return estimate(fast).tokens_per_s_per_chip / base


def fit(run, target: float, lo: float = 0.0, hi: float = 3.0) -> float:
    """f at which :func:`model_ratio` equals ``target`` (bisection), clipped to [lo, hi]."""
    if model_ratio(run, hi) < target:
        return hi
    if model_ratio(run, lo) > target:
        return lo
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if model_ratio(run, mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def main() -> None:
    from trainsim.spec import load_run
    import yaml

    fs = []
    for name, nvfp4, row in PAIRS:
        path = ROOT / "validation" / "runs" / name
        run = load_run(path)
        published = float(yaml.safe_load(path.read_text())["reported"]["tokens_per_s_per_chip"])
        f = fit(run, nvfp4 / published)
        fs.append(f)
        print(f"{row}: {nvfp4} / {published:.0f} = {nvfp4 / published:.3f}x published -> f = {f:.3f} "
              f"(model at f=1: {model_ratio(run, 1.0):.3f}x)")
    print(f"f: low {min(fs):.2f}, median {statistics.median(fs):.2f}, high {max(fs):.2f}")


if __name__ == "__main__":
    main()
