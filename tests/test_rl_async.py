"""NeMo RL asynchronous generation (one step off, or max_trajectory_age_steps ahead): each period keeps the longest
sample, overlapped with the next steps' batches (phases.overlapped_decode_steps), checked by hand and against an
event-by-event run of the collector's protocol (posttrain/protocol.py, NVIDIA-NeMo/RL tag v0.6.0
nemo_rl/algorithms/async_utils.py)."""
from __future__ import annotations

import pytest

from trainsim.errors import TrainsimError
from trainsim.posttrain.phases import decode_step_cost, generation_s, overlapped_decode_steps
from trainsim.posttrain.protocol import simulate_one_step_off, steady_period_s
from trainsim.posttrain.spec import parse_posttrain
from trainsim.posttrain.timeline import evaluate, rollout_tail


def test_decode_step_cost_by_hand():
    # 26.4 ms per step at 64 sequences, 20.1 ms at 1: b = 6.3 ms / 63 = 0.1 ms, a = 26.4 - 6.4 = 20 ms
    a, b = decode_step_cost(64, 0.0264, 1, 0.0201)
    assert a == pytest.approx(0.020, rel=1e-12) and b == pytest.approx(0.0001, rel=1e-12)
    assert decode_step_cost(1, 0.03, 1, 0.03) == (0.03, 0.0)      # one batch size only: all fixed cost


def test_overlapped_decode_steps_by_hand():
    # the queue's steps or the longest sample, whichever is larger
    assert overlapped_decode_steps(4000.0, 1500.0) == 4000.0
    assert overlapped_decode_steps(1000.0, 3000.0) == 3000.0


def test_overlapped_generation_by_hand():
    # a = 20 ms, b = 0.1 ms (tpot 26.4 ms at 64, 20.1 ms at 1)
    args = (0.0264, 1, 0.0201)
    # 256 samples of mean 1,000 through a batch of 64, longest 1,500: max(4,000, 1,500) steps x 20 ms + 0.1 ms x
    # 256,000 tokens = 80 + 25.6 = 105.6 s; a synchronous queue runs 4,000 + 500 steps: 115.6 s
    assert generation_s(256, 64, args[0], args[1], args[2], 1000, 1500, overlapped=True) == pytest.approx(105.6)
    assert generation_s(256, 64, args[0], args[1], args[2], 1000, 1500) == pytest.approx(115.6)
    # 128 samples, longest 3,000: max(2,000, 3,000) = 3,000 steps: 60 + 12.8 = 72.8 s (synchronous: 4,000 steps,
    # 92.8 s)
    assert generation_s(128, 64, args[0], args[1], args[2], 1000, 3000, overlapped=True) == pytest.approx(72.8)
    assert generation_s(128, 64, args[0], args[1], args[2], 1000, 3000) == pytest.approx(92.8)
    # 64 samples in one batch, longest 3,000: as one wave, 3,000 x 20 ms + 0.1 ms x 64,000 = 66.4 s either way
    assert generation_s(64, 64, args[0], args[1], args[2], 1000, 3000, overlapped=True) == pytest.approx(66.4)
    assert generation_s(64, 64, args[0], args[1], args[2], 1000, 3000) == pytest.approx(66.4)


def test_protocol_by_hand():
    # 1 server, 2 slots, 1 prompt of 2 samples (3 and 1 tokens), a = 1 s, b = 0.5 s: the semaphore holds one
    # group, so each step's group runs alone: 2 s (2 running) + 2 x 1.5 s = 5 s = a x 3 + b x 4 tokens
    starts = simulate_one_step_off(1, 2, 1.0, 0.5, 1, 2, lambda r, i: [3, 1][i], 0.0, 0.0, steps=6)
    assert starts == pytest.approx([5.0, 10.0, 15.0, 20.0, 25.0, 30.0])


LENGTHS = [300, 300, 100, 100]      # per group: two samples at the cap, two short; mean 200, longest 300


@pytest.mark.parametrize("slots", [8, 7, 6, 4, 3, 2, 1])
def test_protocol_matches_the_closed_form(slots):
    # 2 servers, 4 prompts of 4 samples: 8 samples per server (round-robin per sample), a = 10 ms, b = 1 ms,
    # training 1 s, refit 0.1 s (the servers stall through it). Generation-bound: each period is the refit plus
    # a x max(8 x 200 / slots, 300) + b x 1,600 tokens, e.g. 8 slots 0.1 + 3 + 1.6 = 4.7 s (the tail-free busy
    # time would be 0.1 + 2 + 1.6 = 3.7 s), 2 slots 0.1 + 8 + 1.6 = 9.7 s.
    starts = simulate_one_step_off(2, slots, 0.010, 0.001, 4, 4, lambda r, i: LENGTHS[i], 1.0, 0.1, steps=12)
    closed = 0.1 + generation_s(8, min(slots, 8), 0.010 + 0.001 * min(slots, 8), 1, 0.011, 200, 300,
                                overlapped=True)
    assert closed == pytest.approx(0.1 + 0.010 * max(1600 / slots, 300) + 1.6)
    assert steady_period_s(starts) == pytest.approx(closed, rel=0.01)


def test_protocol_trainer_bound():
    # 10 s of training + 0.1 s refit against 4.7 s of generation: the trainer sets the period
    starts = simulate_one_step_off(2, 8, 0.010, 0.001, 4, 4, lambda r, i: LENGTHS[i], 10.0, 0.1, steps=8)
    assert steady_period_s(starts) == pytest.approx(10.1, rel=1e-9)


@pytest.mark.parametrize("age,slots,hand", [
    # queue-bound: max(1,600 / n, 300 / age) = 1,600 / n steps, n = min(slots, 8 x age) running per server
    (2, 4, 0.1 + 0.010 * 400 + 1.6),      # 5.7 s
    (4, 16, 0.1 + 0.010 * 100 + 1.6),     # 2.7 s: 16 run of the 32 each server holds
])
def test_protocol_generation_ahead_queue_bound(age, slots, hand):
    # max_trajectory_age_steps > 1 (NeMo RL v0.6.0 _calculate_target_weights: targets v + 1 ... v + age, the
    # semaphore age x prompts groups): the same 2 servers x 8 samples per step as above, each server holding up
    # to age x 8 samples; with the queue longer than max_len / age the period is the queue's steps, as the
    # closed form has it (phases.overlapped_decode_steps)
    starts = simulate_one_step_off(2, slots, 0.010, 0.001, 4, 4, lambda r, i: LENGTHS[i], 1.0, 0.1, steps=20,
                                   age=age)
    n = min(slots, 8 * age)
    closed = 0.1 + generation_s(8, n, 0.010 + 0.001 * n, 1, 0.011, 200, 300, overlapped=True, age=age)
    assert closed == pytest.approx(hand)
    assert steady_period_s(starts, skip=age + 4) == pytest.approx(hand, rel=0.01)


def test_protocol_generation_ahead_tail_bound_is_an_upper_bound():
    # two steps ahead, 32 slots: 16 run per server, the queue 1,600 / 16 = 100 steps, the tail 300 / 2 = 150: the
    # closed form charges 0.1 + 1.5 + 1.6 = 3.2 s (Little's law on slots held ~max_len steps); the collector's
    # run comes out ~3.06 s: within 5% and not above
    starts = simulate_one_step_off(2, 32, 0.010, 0.001, 4, 4, lambda r, i: LENGTHS[i], 1.0, 0.1, steps=20, age=2)
    period = steady_period_s(starts, skip=6)
    assert 3.2 * 0.95 < period <= 3.2


def test_cold_start_window_is_not_faster_than_the_period_by_hand():
    # NeMo RL's performance suites run 10 steps (tests/test_suites/llm/performance/*.sh at v0.6.0, MAX_STEPS 10) and
    # time them with async_grpo_train's total_step_time, which starts only after the untimed wait for the first
    # num_prompts_per_step groups (nemo_rl/algorithms/grpo.py); eight steps ahead, version 0 launches targets 0 ... 7
    # at once (the semaphore's 8 x prompts groups; target 8 when a slot frees). Does that head start make a
    # 5-step window faster than the steady period? By hand: 1 server, 2 slots, one 1-sample group per step of 4
    # tokens, a = 1 s a decode step, b = 0, training 0.5 s, no refit. First come first served, targets finish in
    # pairs: 0 and 1 at 4 s, 2 and 3 at 8 s, 4 and 5 at 12 s, 6 and 7 at 16 s, 8 and 9 (9 submitted at version 1,
    # 4.5 s) at 20 s; a step starts when its target is in and the previous one is over: 4, 4.5, 8, 8.5, ..., 20.5.
    # Each timed step ends 0.5 s after its start, so step j takes start_j - start_(j-1): 0.5 and 3.5 s in turn;
    # steps 5-9 (check_metrics' mean(-6, -1), tests/check_metrics.py) average (3 x 3.5 + 2 x 0.5) / 5 = 2.3 s, the
    # steady period (1 x 4 / 2 = 2 decode steps of 1 s, generation_s eight steps ahead) 2.0 s: the head start
    # pairs the steps up; it leaves no backlog that would make the measured window faster than the period
    starts = simulate_one_step_off(1, 2, 1.0, 0.0, 1, 1, lambda r, i: 4, 0.5, 0.0, steps=10, age=8)
    assert starts == pytest.approx([4.0, 4.5, 8.0, 8.5, 12.0, 12.5, 16.0, 16.5, 20.0, 20.5])
    took = [b - a for a, b in zip(starts, starts[1:])]        # step j (j >= 1, 0-based) = start_j - start_(j-1)
    window = sum(took[3:8]) / 5                                 # 1-based steps 5 ... 9 = 0-based 4 ... 8
    assert window == pytest.approx(2.3)
    period = generation_s(1, 2, 1.0, 1, 1.0, 4, 4, overlapped=True, age=8)
    assert period == pytest.approx(2.0)
    assert window >= period


def test_protocol_needs_enough_steps():
    with pytest.raises(ValueError, match="step starts"):
        steady_period_s([0.0, 1.0])


SMALL = dict(name="small", layers=8, hidden=1024, heads=16, kv_heads=4, ffn=4096, ffn_act="swiglu", vocab=32000)


def _doc(**step) -> dict:
    return {"name": "rl", "kind": "rl", "clusters": {"main": {"system": "hgx-h800", "chips": 16}},
            "student": {"model": SMALL, "cluster": "main", "rollout_chips": 8, "rollout_tp": 1},
            "step": {"prompts": 16, "samples_per_prompt": 4, "prompt_len": 256, "rollout_len": 1024,
                     "tail_factor": 2.0, "mode": "async", **step}}


def test_async_rollout_keeps_the_tail_unless_partial_rollouts():
    def rollout(res):
        (r,) = [p for p in res["phases"] if p["stage"] == "rollout"]
        return r

    keep = evaluate(parse_posttrain(_doc()))
    part = evaluate(parse_posttrain(_doc(partial_rollouts=True)))
    rk, rp = rollout(keep), rollout(part)
    assert rk["detail"]["tail_factor"] == 2.0 and rp["detail"]["tail_factor"] == 1.0
    # 8 servers x 8 samples in one batch: with the tail, a x 2,048 steps; without, a x 1,024 (same b x tokens)
    a = rk["detail"]["step_fixed_s"]
    assert rk["detail"]["decode_s"] - rp["detail"]["decode_s"] == pytest.approx(a * 1024, rel=1e-9)
    assert rollout_tail(parse_posttrain(_doc())) and not rollout_tail(parse_posttrain(_doc(partial_rollouts=True)))
    assert rollout_tail(parse_posttrain(_doc(mode="sync")))


def test_partial_rollouts_only_async():
    with pytest.raises(TrainsimError, match="partial_rollouts applies to mode async only"):
        parse_posttrain(_doc(mode="sync", partial_rollouts=True))


def test_overlapped_decode_steps_with_generation_ahead_by_hand():
    # max_trajectory_age_steps k: k x prompts groups in flight, each held ~max_len steps (Little's law), so a
    # period needs max_len / k steps: 8 steps ahead, longest 3,000: 375; the queue's 1,000 decides
    assert overlapped_decode_steps(1000.0, 3000.0, 8) == 1000.0
    assert overlapped_decode_steps(100.0, 3000.0, 8) == 375.0
    assert overlapped_decode_steps(100.0, 3000.0, 1) == 3000.0


def test_generation_ahead_by_hand():
    # a = 10 ms, b = 0.1 ms (tpot 22.8 ms at 128, 10.1 ms at 1); 64 samples per server per step, mean 3,000,
    # longest 4,000, running limit 128.
    # one step ahead: 64 run, max(64 x 3,000 / 64, 4,000) = 4,000 steps: 40 s + 0.1 ms x 192,000 = 59.2 s
    # eight steps ahead: 512 in flight, 128 run, max(1,500, 500) = 1,500 steps: 15 s + 19.2 s = 34.2 s
    tpot128, tpot1 = 0.010 + 0.0001 * 128, 0.010 + 0.0001
    assert generation_s(64, 128, tpot128, 1, tpot1, 3000, 4000, overlapped=True) == pytest.approx(59.2)
    assert generation_s(64, 128, tpot128, 1, tpot1, 3000, 4000, overlapped=True, age=8) == pytest.approx(34.2)
    # synchronous generation ignores age: one wave of 64, 4,000 steps
    assert generation_s(64, 128, tpot128, 1, tpot1, 3000, 4000, age=8) == pytest.approx(59.2)


def test_generation_ahead_fills_the_servers():
    one = evaluate(parse_posttrain(_doc()))
    eight = evaluate(parse_posttrain(_doc(max_trajectory_age_steps=8)))
    (r1,) = [p for p in one["phases"] if p["stage"] == "rollout"]
    (r8,) = [p for p in eight["phases"] if p["stage"] == "rollout"]
    # 16 prompts x 4 samples over 8 TP1 servers: 8 per server and step; one step ahead 8 run, eight ahead up to 64
    assert r1["detail"]["batch_per_chip"] == pytest.approx(8.0, rel=1e-9)
    n8 = r8["detail"]["batch_per_chip"]
    assert 8.0 < n8 <= 64.0
    # the period by hand from the server's a + b n: max(8 x 1,024 / n, 2,048 / 8) steps x a + b x 8 x 1,024 tokens
    a, b = r8["detail"]["step_fixed_s"], r8["detail"]["step_per_seq_s"]
    assert r8["detail"]["decode_s"] == pytest.approx(a * max(8 * 1024 / n8, 2048 / 8) + b * 8 * 1024, rel=1e-9)
    assert r8["detail"]["decode_s"] < r1["detail"]["decode_s"]


def test_generation_ahead_only_async():
    with pytest.raises(TrainsimError, match="max_trajectory_age_steps 8 applies to mode async only"):
        parse_posttrain(_doc(mode="sync", max_trajectory_age_steps=8))
    with pytest.raises(TrainsimError, match="max_trajectory_age_steps"):
        parse_posttrain(_doc(max_trajectory_age_steps=0))
