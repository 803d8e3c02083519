#!/usr/bin/env python3
"""NeMo RL asynchronous steps: the timeline's closed form against a discrete-event run of the collector protocol.

For every asynchronous point in validation/rl/ (one step off, or max_trajectory_age_steps ahead), runs trainsim/posttrain/protocol.py on the model's own per-step
decode cost (a + b n per server), servers, running limit, log-prob + update time and refit, with sample lengths
of the stated mean capped at the stated longest sample, drawn up to three ways (uniform up to the cap where that
keeps the mean, exponential cut at the cap, gamma of shape 4 cut at the cap), and prints the steady period
against the timeline's step.
Usage: python scripts/rl_async_protocol.py [--steps 10] [--seed 0]
"""
from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from trainsim.posttrain.protocol import simulate_one_step_off, steady_period_s
from trainsim.posttrain.spec import load_posttrain
from trainsim.posttrain.timeline import evaluate

ROOT = Path(__file__).resolve().parents[1]


def _fit_scale(mean: float, cap: float, capped_mean) -> float:
    """Scale whose capped distribution has the given mean (bisection)."""
    lo, hi = 1e-6 * mean, 100.0 * mean
    for _ in range(80):
        mid = (lo + hi) / 2
        if capped_mean(mid) < mean:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def length_draws(mean: float, cap: float) -> dict:
    """Length laws of mean ``mean`` capped at ``cap`` (tokens), each ``f(rng, i) -> int``; uniform up to the cap
    only where it can keep the mean (``2 mean - cap >= 1``)."""
    lo = 2 * mean - cap
    exp_scale = _fit_scale(mean, cap, lambda s: s * (1 - math.exp(-cap / s)))
    ref = random.Random(1)
    draws = [ref.gammavariate(4, 1.0) for _ in range(20000)]
    gamma_scale = _fit_scale(mean, cap, lambda s: sum(min(x * s, cap) for x in draws) / len(draws))
    laws = {
        "uniform": lambda r, i: int(r.uniform(lo, cap)),
        "exp-capped": lambda r, i: int(min(r.expovariate(1 / exp_scale), cap)) + 1,
        "gamma4-capped": lambda r, i: int(min(r.gammavariate(4, gamma_scale), cap)) + 1,
    }
    if lo < 1:
        del laws["uniform"]
    return laws


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="training steps to run (default 10; 3 fill the pipeline, k + 2 when k steps ahead: at least k + 4 are run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="run only the points whose file name contains this")
    args = ap.parse_args(argv)
    for path in sorted((ROOT / "validation" / "rl").glob("*.yaml")):
        if args.only and args.only not in path.name:
            continue
        pt = load_posttrain(path)
        if pt.step.mode != "async":
            continue
        res = evaluate(pt)
        by_stage: dict[str, float] = {}
        roll = None
        for ph in res["phases"]:
            by_stage[ph["stage"]] = by_stage.get(ph["stage"], 0.0) + ph["seconds"]
            if ph["stage"] == "rollout":
                roll = ph
        if roll is None:
            continue
        d = roll["detail"]
        chips = roll["chips"]
        servers = max(int(chips // d["plan"]["chips"]), 1)
        per_server = pt.step.sequences / servers
        age = pt.step.max_trajectory_age_steps
        running = max(int(round(min(d["batch_per_chip"] * d["plan"]["chips"], age * per_server))), 1)
        st = pt.step
        cap = st.rollout_len * st.tail_factor
        train_s = by_stage.get("logprobs", 0.0) + by_stage.get("train", 0.0)
        refit_s = by_stage.get("weights", 0.0)
        print(f"{pt.name}: timeline {res['step_time_s']:.1f} s ({res['bound_by']}); {servers} servers x "
              f"{per_server:.0f} samples, running limit {running}, a {d['step_fixed_s'] * 1e3:.1f} ms, "
              f"b {d['step_per_seq_s'] * 1e3:.3f} ms, train {train_s:.1f} s, refit {refit_s:.1f} s")
        skip = max(3, age + 2)   # the fill: k steps ahead, the first k + 2 starts are not steady
        for law, f in length_draws(st.rollout_len, cap).items():
            starts = simulate_one_step_off(servers, running, d["step_fixed_s"], d["step_per_seq_s"], st.prompts,
                                           st.samples_per_prompt, f, train_s, refit_s,
                                           steps=max(args.steps, skip + 2), seed=args.seed, age=age)
            period = steady_period_s(starts, skip=skip)
            print(f"    {law:14s} protocol {period:7.1f} s ({period / res['step_time_s'] - 1:+.1%})")


if __name__ == "__main__":
    main()
