"""The interleaved schedule's micro-batch groups (Megatron-Core ``--microbatch-group-size-per-virtual-pipeline-stage``).

NVIDIA/Megatron-LM 4295be1a6c (1 Nov 2024, first released in core_v0.10.0) runs the interleaved schedule's forwards
in groups of N micro-batches per model chunk and asks only pp <= N <= m and a last group m % N of 0 or >= pp
(megatron/core/pipeline_parallel/schedules.py forward_backward_pipelining_with_interleaving); before it, m had to
be a multiple of pp. Rank r runs (pp - r - 1) * 2 + (vpp - 1) * N warm-up forwards (get_pp_rank_microbatches).

Hand case, Megatron's own example (model_parallel_config.py docstring, schedules.py comment): pp 2, vpp 2, N 3,
m 5. get_schedule_table gives the forward order (micro-batch, chunk)
    (0,0) (1,0) (2,0) (0,1) (1,1) (2,1) (3,0) (4,0) (3,1) (4,1);
the j-th backward is the j-th entry with its chunk reversed (get_model_chunk_id(forward=False)). Rank 0 warms up
with (2 - 0 - 1) * 2 + (2 - 1) * 3 = 5 forwards, rank 1 with 3; then one forward and one backward alternate, then
the remaining backwards. Written out below (``ORDER``). With a chunk forward of 1 and a chunk backward of 2 time
units and no communication time, the simulation of those two lists finishes at 33 = m v (1 + 2) + 3, a bubble of
3 = (pp - 1) x (1 + 2) = (p - 1) t / v with t = v (1 + 2) (Narayanan et al. 2021 sec. 2.2.2), the same as with N = p.
"""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.errors import TrainsimError
from trainsim.frameworks import frameworks, microbatch_groups, profile
from trainsim.parallel import schedules as S
from trainsim.parallel.batch import batch_unit
from trainsim.parallel.plan import Plans
from trainsim.parallel.validity import check, reason
from trainsim.plan_estimate import estimate_complete
from trainsim.spec import parse_run

F, B = "F", "B"
#: Megatron's per-rank order for pp 2, vpp 2, N 3, m 5 (module docstring): (op, micro-batch, chunk)
ORDER = {
    0: [(F, 0, 0), (F, 1, 0), (F, 2, 0), (F, 0, 1), (F, 1, 1),                      # warm-up: 5
        (F, 2, 1), (B, 0, 1), (F, 3, 0), (B, 1, 1), (F, 4, 0), (B, 2, 1),           # steady: 5 pairs
        (F, 3, 1), (B, 0, 0), (F, 4, 1), (B, 1, 0),
        (B, 2, 0), (B, 3, 1), (B, 4, 1), (B, 3, 0), (B, 4, 0)],                      # cool-down: 5
    1: [(F, 0, 0), (F, 1, 0), (F, 2, 0),                                              # warm-up: 3
        (F, 0, 1), (B, 0, 1), (F, 1, 1), (B, 1, 1), (F, 2, 1), (B, 2, 1),           # steady: 7 pairs
        (F, 3, 0), (B, 0, 0), (F, 4, 0), (B, 1, 0), (F, 3, 1), (B, 2, 0), (F, 4, 1), (B, 3, 1),
        (B, 4, 1), (B, 3, 0), (B, 4, 0)],                                             # cool-down: 3
}


def _makespan(order: dict, p: int, v: int, f: float = 1.0, b: float = 2.0, hop: float = 0.0) -> float:
    """Each rank runs its list in order; a forward of (mb, chunk k) on rank r waits for rank r - 1's (rank 0: rank
    p - 1's chunk k - 1), a backward for rank r + 1's (the last rank: rank 0's chunk k + 1, or its own forward of
    the last chunk), plus ``hop`` time units when that op ran on another rank (the point-to-point transfer)."""
    done: dict = {}
    ptr = {r: 0 for r in order}
    clock = {r: 0.0 for r in order}
    moved = True
    while moved:
        moved = False
        for r, ops in order.items():
            while ptr[r] < len(ops):
                op, mb, k = ops[ptr[r]]
                if op == F:
                    dep = (F, r - 1, mb, k) if r > 0 else ((F, p - 1, mb, k - 1) if k > 0 else None)
                else:
                    dep = (B, r + 1, mb, k) if r < p - 1 else ((B, 0, mb, k + 1) if k < v - 1 else (F, r, mb, k))
                if dep is not None and dep not in done:
                    break
                ready = done[dep] + (hop if dep[1] != r else 0.0) if dep else 0.0
                clock[r] = max(clock[r], ready) + (f if op == F else b)
                done[(op, r, mb, k)] = clock[r]
                ptr[r] += 1
                moved = True
    assert all(ptr[r] == len(order[r]) for r in order), "deadlock"
    return max(clock.values())


def test_hand_schedule_bubble_is_the_interleaved_one():
    span = _makespan(ORDER, 2, 2)
    assert span == pytest.approx(33.0)
    bubble = S.bubble_time(np.array([S.code("interleaved")]), np.array([2]), np.array([2]), np.array([6.0]))
    assert span - 5 * 2 * 3.0 == pytest.approx(bubble[0]) == pytest.approx(3.0)


def test_refused_last_group_has_dependency_bubbles():
    # pp 2, vpp 2, m 5 with N = 2 (the default N = pp): groups (0,1) (2,3) (4): a last group of 1 < pp, which
    # Megatron refuses ('introduces dependency bubbles'). Rank 0 warms up with 2 + 2 = 4, rank 1 with 2.
    table = [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (2, 1), (3, 1), (4, 0), (4, 1)]
    order = {}
    for r, w in ((0, 4), (1, 2)):
        fw = [(F, mb, k) for mb, k in table]
        bw = [(B, mb, 1 - k) for mb, k in table]
        ops = fw[:w]
        for i in range(10 - w):
            ops += [fw[w + i], bw[i]]
        order[r] = ops + bw[10 - w:]
    assert _makespan(order, 2, 2) > 33.0 + 1.0


def test_warmup_and_in_flight_from_megatrons_count():
    sched = np.array([S.code("interleaved")] * 2)
    pp, vpp = np.array([2, 2]), np.array([2, 2])
    # rank 0: 5 warm-up forwards + the first steady forward = 6 chunk-forwards = 3 rank-micro-batches; rank 1: 3 + 1
    assert S.microbatches_in_flight(sched, pp, vpp, np.array([5.0, 5.0]), np.array([0, 1])).tolist() == \
        pytest.approx([3.0, 2.0])
    # pp 4, vpp 2, m 9: N = 5 (N = 4 leaves a last group of 1); rank 0 holds 2 x 3 + 5 + 1 = 12 chunk-forwards
    one = np.array([S.code("interleaved")])
    assert S.microbatches_in_flight(one, np.array([4]), np.array([2]), 9.0, 0)[0] == pytest.approx(6.0)
    # m 8 keeps N = pp = 4: 6 + 4 + 1 = 11 chunk-forwards (Korthikanti et al. 2022: p + (p - 1) / v = 5.5)
    assert S.microbatches_in_flight(one, np.array([4]), np.array([2]), 8.0, 0)[0] == pytest.approx(5.5)
    # of those 12 (order (0..4, c0) (0..4, c1) (5..8, c0) ...): chunk 0 holds 5 + 2, chunk 1 holds 5
    assert S.interleaved_chunk_in_flight(12.0, 4.0, 2.0, 0.0, 9.0) == pytest.approx(7.0)
    assert S.interleaved_chunk_in_flight(12.0, 4.0, 2.0, 1.0, 9.0) == pytest.approx(5.0)
    # the cool-down's chunks finish N = 5 chunk-backwards apart: span (1 + (2 - 1) 5) / 2 = 3
    assert S.dp_sync_window(one, np.array([4]), np.array([2]), 9.0)[0] == pytest.approx(3.0)


def test_smallest_group_megatron_accepts():
    # p <= N <= m and m % N in {0} or >= p, by hand: (4, 8) -> 4; (4, 9): 9 % 4 = 1 -> 5 (9 % 5 = 4);
    # (4, 6): 6 % 4 = 2, 6 % 5 = 1 -> 6; (2, 7): 7 % 2 = 1, 7 % 3 = 1 -> 4 (7 % 4 = 3); (4, 4) -> 4
    got = S.microbatch_group(np.array([4, 4, 4, 2, 4]), np.array([8, 9, 6, 7, 4]))
    assert got.tolist() == [4, 5, 6, 4, 4]
    for p, m in ((3, 17), (5, 92), (8, 157)):
        n = int(S.microbatch_group(p, m))
        assert p <= n <= m and (m % n == 0 or m % n >= p)
        assert all(0 < m % k < p for k in range(p, n))      # every smaller N >= p is refused by Megatron


def _plans(m, pp=4, vpp=2):
    n = len(m)
    one = np.ones(n, dtype=np.int64)
    return Plans(tp=one, pp=one * pp, cp=one, dp=one, ep=one, etp=one, vpp=one * vpp, mb=one, zero=one * 0,
                 recompute=one * 0, schedule=one * S.code("interleaved"), node_limit=one * 0)


def test_acceptance_boundary(gpt3):
    # pp 4, dp 1, mb 1: m = the batch. m 3 < pp: no N (refused on both rules); 9, 10, 6: accepted with groups only
    for m, new, old in ((8, 0, 0), (9, 0, 10), (10, 0, 10), (6, 0, 10), (4, 0, 0), (3, 10, 10)):
        p = _plans([m])
        assert check(p, gpt3, 4, 2048, m, microbatch_groups=True)[0] == new, m
        assert check(p, gpt3, 4, 2048, m, microbatch_groups=False)[0] == old, m
    assert "at least pp" in reason(10)
    # the batch unit: dp x mb with groups, x pp without
    sched = np.array([S.code("interleaved")])
    assert batch_unit(np.array([3]), np.array([2]), np.array([4]), sched, True)[0] == 6
    assert batch_unit(np.array([3]), np.array([2]), np.array([4]), sched, False)[0] == 24


def test_profiles_by_the_date_of_the_option():
    # the option arrived with core_v0.10.0 (tagged Feb 2025): stacks on Megatron-Core <= 0.9 / 0.8 keep the rule
    for fw in ("megatron-lm-2021", "megatron-lm-2022", "megatron-core-2024", "nemo-2024", "mindspeed-2024",
               "mindspeed-2025"):
        assert not microbatch_groups(fw), fw
    for fw in ("megatron-bridge-2025", "megatron-bridge-2026", "mindspeed-2026", "meta-llama3"):
        assert microbatch_groups(fw), fw
        assert profile(fw)["vpp_microbatch_groups_source"]
    for fw, prof in frameworks().items():
        assert ("vpp_microbatch_groups" in prof) == ("vpp_microbatch_groups_source" in prof), fw


def _run(fw, batch):
    return parse_run({
        "model": {"name": "g", "layers": 32, "hidden": 2048, "heads": 16, "ffn": 8192, "ffn_act": "gelu",
                  "vocab": 51200},
        "system": "dgx-h100", "chips": 8, "framework": fw,
        "training": {"seq_len": 2048, "global_batch_seqs": batch, "precision": "bf16"},
        "plan": {"tp": 1, "pp": 4, "vpp": 2, "cp": 1, "dp": 2, "micro_batch": 1, "zero": 1, "recompute": "none",
                 "schedule": "interleaved"}})


def test_old_stack_refuses_what_today_accepts():
    # dp 2, batch 18: m = 9 micro-batches on pp 4
    new = _run("megatron-bridge-2026", 18)
    est = estimate_complete(new, new.plan)
    assert est.microbatches == pytest.approx(9.0)
    old = _run("megatron-core-2024", 18)
    with pytest.raises(TrainsimError, match="multiple"):
        estimate_complete(old, old.plan)
    # m = 3 < pp is refused by both
    short = _run("megatron-bridge-2026", 6)
    with pytest.raises(TrainsimError, match="at least pp"):
        estimate_complete(short, short.plan)


def test_emitted_megatron_flags_state_the_group():
    from trainsim.emit import megatron_args
    # m = 9 on pp 4: Megatron's default N = pp would raise, so the flags must set N = 5
    new = _run("megatron-bridge-2026", 18)
    args, notes = megatron_args(estimate_complete(new, new.plan))
    assert "--microbatch-group-size-per-virtual-pipeline-stage 5" in args
    # m = 8: the default N = pp = 4 is Megatron's own; no flag
    even = _run("megatron-bridge-2026", 16)
    args, _ = megatron_args(estimate_complete(even, even.plan))
    assert not any(a.startswith("--microbatch-group-size") for a in args)


def _orders(p: int, v: int, m: int, n: int, per_hop: int = 2) -> dict:
    """Every rank's list under Megatron-Core's interleaved schedule with micro-batch groups of n (get_schedule_table:
    groups of n micro-batches, each run through chunks 0 .. v - 1, the last group holding the rest; the j-th backward
    is the j-th entry with its chunk reversed) and per_hop x (p - 1 - r) + (v - 1) n warm-up forwards (Megatron: 2 per
    hop, get_pp_rank_microbatches), capped at m v; then one forward and one backward alternate."""
    table = []
    for lo in range(0, m, n):
        hi = m if lo + n >= m else lo + n
        table += [(mb, k) for k in range(v) for mb in range(lo, hi)]
    out = {}
    for r in range(p):
        w = min(per_hop * (p - 1 - r) + (v - 1) * n, m * v)
        fw = [(F, mb, k) for mb, k in table]
        bw = [(B, mb, v - 1 - k) for mb, k in table]
        ops = fw[:w]
        for i in range(m * v - w):
            ops += [fw[w + i], bw[i]]
        out[r] = ops + bw[m * v - w:]
    return out


def _peaks(order: dict) -> list:
    """Chunk-forwards each rank holds at its peak (a forward adds one, its backward frees it)."""
    out = []
    for r in sorted(order):
        held = peak = 0
        for op, _, _ in order[r]:
            held += 1 if op == F else -1
            peak = max(peak, held)
        out.append(peak)
    return out


def test_group_smaller_than_pp_stalls_and_megatrons_warmup_sets_the_memory():
    """Why N >= p (Megatron-Core raises ValueError below it; Llama 3 sec. 3.3.2 sets N between depth-first N = p and
    breadth-first N = M, below p only when M < p) and what the warm-up's 2 per hop costs in memory."""
    one = np.array([S.code("interleaved")])
    # pp 16, vpp 8, m 32 (Llama 3 405B on 8,192 GPUs): N = p = 16, Megatron's order
    mega = _orders(16, 8, 32, 16)
    base = _makespan(mega, 16, 8)
    work = 32 * 8 * 3.0
    bubble = S.bubble_time(one, np.array([16]), np.array([8]), np.array([8 * 3.0]))[0]
    assert base - work == pytest.approx(bubble) == pytest.approx(45.0)     # (p - 1) t / v
    peaks = _peaks(mega)
    assert peaks[:2] == [143, 141] and peaks[-1] == 113                    # 2 (p - 1 - r) + 7 x 16 + 1
    got = S.microbatches_in_flight(np.array([S.code("interleaved")] * 16), np.array([16] * 16), np.array([8] * 16),
                                   32.0, np.arange(16)) * 8
    assert got.tolist() == pytest.approx(peaks)
    # N = 8 < p: Megatron's own order deadlocks (a rank's next backward waits on a forward queued behind it) ...
    with pytest.raises(AssertionError, match="deadlock"):
        _makespan(_orders(16, 8, 32, 8), 16, 8)
    # ... and with one warm-up forward per hop it runs, but each chunk switch waits for the micro-batch to come round
    # the 16 ranks: 41% longer than N = p (the paper's 8,192-GPU run reached 43% MFU, above the 16,384's 41%)
    short = _makespan(_orders(16, 8, 32, 8, per_hop=1), 16, 8)
    assert short / base == pytest.approx(1.413, abs=0.002)
    # one forward per hop with N = p: the same bubble without transfer time, 14 fewer chunk-forwards on rank 1
    # (127), but each hop's transfer is exposed: with a hop of 0.07 chunk-forwards (33.5 MB at 50 GB/s against a
    # ~10 ms one-layer forward) the step is 2.3% longer, where Megatron's 2 per hop hides most of it
    lean = _orders(16, 8, 32, 16, per_hop=1)
    assert _makespan(lean, 16, 8) == pytest.approx(base)
    assert _peaks(lean)[1] == 127
    slow = _makespan(lean, 16, 8, hop=0.07) / _makespan(mega, 16, 8, hop=0.07)
    assert slow == pytest.approx(1.023, abs=0.002)
