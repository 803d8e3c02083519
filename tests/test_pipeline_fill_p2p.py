"""Megatron-Core's interleaved schedule waits for each warm-up and cool-down transfer in turn
(parallel/schedules.py fill_drain_transfers, perf/step.py): hand counts of the waits and their price on a
Llama-3-70B-shaped run, against a stack whose schedule is its own (pp_own_schedule) and against 1F1B."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from conftest import T70B_TP8_SPEC
from trainsim.frameworks import stack_flags
from trainsim.parallel.schedules import code, fill_drain_transfers
from trainsim.perf.step import evaluate
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import parse_run


def _fill(name: str, pp: int, vpp: int, m: int) -> float:
    return float(fill_drain_transfers(np.array([code(name)]), np.array([pp]), np.array([vpp]), np.array([m]))[0])


def test_fill_drain_transfer_counts():
    """Rank 0 runs W = 2 (p - 1) + (v - 1) N warm-up chunk-forwards (N = p where p divides m) and as many
    cool-down chunk-backwards, each followed by a transfer it waits for: p 4, v 2, m 8: W = 6 + 4 = 10, 20 waits;
    p 6, v 16, m 12: W = 10 + 15 x 6 = 100, 200 waits; p 4, v 2, m 4: all 8 chunk-forwards are warm-up (W capped at
    m v), 16 waits. None without virtual stages, without a pipeline, or for the other schedules."""
    assert _fill("interleaved", 4, 2, 8) == 20.0
    assert _fill("interleaved", 6, 16, 12) == 200.0
    assert _fill("interleaved", 4, 2, 4) == 16.0
    assert _fill("interleaved", 1, 2, 8) == 0.0
    assert _fill("1f1b", 4, 1, 8) == 0.0
    assert _fill("dualpipe", 4, 1, 8) == 0.0


def _step(fw: str, schedule: str, vpp: int, own: bool | None = None, zero: int = 1):
    spec = T70B_TP8_SPEC.replace("{extra}", "").replace("{recompute}", "none").format(fw=fw, zero=zero)
    spec = spec.replace("vpp: 1", f"vpp: {vpp}").replace("schedule: 1f1b", f"schedule: {schedule}")
    run = parse_run(yaml.safe_load(spec))
    ctx = context(run)
    if own is not None:
        ctx = dataclasses.replace(ctx, pp_own_schedule=own)
    res = evaluate(ctx, plans_from_spec(run.plan, run.chips, run.arch))
    return float(res.step_time_s[0]), float(res.breakdown["pp_p2p"][0])


def test_interleaved_fill_waits_priced_on_megatron():
    """tp 8, pp 4, vpp 2 (10 of the 80 layers per chunk), dp 64 / 32 = 2, 64 / 2 = 32 micro-batches of 4,096 tokens:
    W = 2 x 3 + 1 x 4 = 10, 20 waits. One transfer: 4,096 / 8 tokens x 8,192 x 2 B = 8,388,608 B; the pipeline's
    ranks are tp x cp x dp = 16 apart, so every hop leaves the 8-GPU server: 400 Gb/s x 0.85 (coll_eff) = 42.5 GB/s,
    197.4 us + 5 us network latency (systems.yaml dgx-h100) + 5 us launch (comm_launch_s) = 207.4 us; 20 x = 4.148 ms
    more step, all of it in the breakdown's pp_p2p."""
    hop = 4096 / 8 * 8192 * 2 / (400e9 / 8 * 0.85) + 5e-6 + 5e-6
    on, p2p_on = _step("megatron-core-2024", "interleaved", 2)
    off, p2p_off = _step("megatron-core-2024", "interleaved", 2, own=True)
    assert on - off == pytest.approx(20 * hop, rel=1e-9)
    assert p2p_on - p2p_off == pytest.approx(20 * hop, rel=1e-9)


def test_no_fill_waits_without_virtual_stages_or_on_an_own_schedule():
    """1F1B already waits for every transfer inside the micro-batch time its bubble multiplies: the flag changes
    nothing there. The stacks that pipeline with their own schedule (torch.distributed.pipelining, Meta's, HAI-LLM)
    say so in their profile."""
    assert _step("megatron-core-2024", "1f1b", 1) == _step("megatron-core-2024", "1f1b", 1, own=True)
    assert all(stack_flags(fw)["pp_own_schedule"] for fw in ("torchtitan-2024", "other-nemo-automodel", "meta-llama3",
                                                             "deepseek-hai-llm"))
    assert not any(stack_flags(fw)["pp_own_schedule"] for fw in ("megatron-core-2024", "megatron-bridge-2026",
                                                                 "nemo-2024", "mindspeed-2024",
                                                                 "primus-megatron-2025"))
    on, _ = _step("torchtitan-2024", "interleaved", 2, zero=0)
    off, _ = _step("torchtitan-2024", "interleaved", 2, own=False, zero=0)
    assert off > on   # the same plan priced as Megatron-Core's schedule would wait


def _step_blocking(blocking: bool):
    spec = T70B_TP8_SPEC.replace("{extra}", "").replace("{recompute}", "none").format(fw="megatron-core-2024", zero=1)
    spec = spec.replace("vpp: 1", "vpp: 2").replace("schedule: 1f1b", "schedule: interleaved")
    run = parse_run(yaml.safe_load(spec))
    ctx = dataclasses.replace(context(run), pp_p2p_blocking=blocking)
    res = evaluate(ctx, plans_from_spec(run.plan, run.chips, run.arch))
    return float(res.step_time_s[0]), float(res.breakdown["pp_p2p"][0])


def test_interleaved_p2p_blocking_waits_for_every_transfer():
    """Megatron-LM v2.5 / v3.0 / 23.x: the interleaved steady state calls send_forward_backward_recv_forward_backward
    between the chunks' compute, and _communicate waits on the batch_isend_irecv requests and synchronises the device
    (megatron/p2p_communication.py at e269e200 lines 126-130, d63c254 lines 132-136): nothing hidden. Same run as
    above (tp 8, pp 4, vpp 2, 32 micro-batches): each micro-batch sends 2 v = 4 transfers of 8,388,608 B over
    42.5 GB/s + 5 us latency = 202.4 us (the 5 us launches are counted either way). Blocking: all 32 x 4 transfers
    exposed in the steady state, and the bubble (p - 1) / v = 1.5 micro-batch times carries 1.5 x 4 of them; no
    separate fill / drain waits (the 20 x 207.4 us of Megatron-Core's overlapped schedule, which hides the steady
    state's): step difference (32 + 1.5) x 4 x 202.4 us - 20 x 207.4 us = 22.97 ms."""
    hop = 4096 / 8 * 8192 * 2 / (400e9 / 8 * 0.85) + 5e-6
    launch = 5e-6
    on, p2p_on = _step_blocking(True)
    off, p2p_off = _step_blocking(False)
    assert on - off == pytest.approx((32 + 1.5) * 4 * hop - 20 * (hop + launch), rel=1e-9)
    assert p2p_on - p2p_off == pytest.approx(32 * 4 * hop - 20 * (hop + launch), rel=1e-9)
    assert all(stack_flags(fw)["pp_p2p_blocking"] for fw in ("megatron-lm-2021", "megatron-lm-2022",
                                                              "megatron-lm-2023"))
    assert not any(stack_flags(fw)["pp_p2p_blocking"] for fw in ("megatron-core-2024", "nemo-2024",
                                                                  "megatron-bridge-2026"))
