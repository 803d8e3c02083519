"""A pipeline send runs at the slowest level a hop of the stage chain crosses (perf/collectives.p2p_time), the
level the placement table shows for pp. Found by a first-use pass: with tp 1, pp 16, cp 2, dp 2 on 8-GPU servers,
the pp send time did not move when the scale-out bandwidth fell from 50 GB/s to 50 B/s."""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.perf.collectives import p2p_time

from conftest import make_system as system_of


def test_pipeline_chain_inside_a_server_uses_its_links():
    # 2 stages, stride 4: ranks 0-3 and 4-7, one 8-GPU server: 64 MiB over 450 GB/s x 0.8 + 2 us
    s = system_of(size=8, up=450e9, out=50e9)
    t = float(p2p_time(64 * 2**20, 2, 4, s, (0.8, 0.8)))
    assert t == pytest.approx(64 * 2**20 / (450e9 * 0.8) + 2e-6, rel=1e-12)


def test_pipeline_chain_across_servers_runs_at_scale_out():
    # 16 stages, stride 4: every second hop leaves the server, so the chain moves at 50 GB/s x 0.8 + 5 us
    s = system_of(size=8, up=450e9, out=50e9)
    t = float(p2p_time(64 * 2**20, 16, 4, s, (0.8, 0.8)))
    assert t == pytest.approx(64 * 2**20 / (50e9 * 0.8) + 5e-6, rel=1e-12)
    slow = system_of(size=8, up=450e9, out=50.0)
    assert float(p2p_time(64 * 2**20, 16, 4, slow, (0.8, 0.8))) == pytest.approx(64 * 2**20 / 40.0 + 5e-6)
    # vectorised over plans: the same rule per row
    got = p2p_time(np.array([1e6, 1e6]), np.array([2, 16]), np.array([4, 4]), s, (0.8, 0.8))
    assert got[0] < got[1]


def _pp_run(schedule: str, vpp: int):
    from trainsim.spec import parse_run
    return parse_run({
        "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 32,
        "training": {"seq_len": 4096, "global_batch_seqs": 64, "precision": "bf16"},
        "plan": {"tp": 1, "pp": 4, "vpp": vpp, "schedule": schedule, "cp": 1, "ep": 1, "etp": 1, "zero": 1,
                 "recompute": "none", "micro_batch": 1},
    })


def test_interleaved_schedule_hides_the_sends_behind_the_chunk_compute():
    """Interleaved 1F1B with Megatron's overlap_p2p_comm (on by default): in the steady state a send shorter than the
    micro-batch's compute costs only its launch, 2 x vpp sends x 5 us per micro-batch; the warm-up and cool-down wait
    for theirs (parallel/schedules.py fill_drain_transfers): p 4, v 2, m 8: W = 2 x 3 + 1 x 4 = 10, 20 waits of one
    send each, 4,096 tokens x 4,096 hidden x 2 bytes = 33.5 MB over InfiniBand (pp stride 8) at 50 GB/s x 0.85 + 5 us
    latency + 5 us launch. Megatron's 1F1B hides none (its schedule refuses overlap_p2p_comm)."""
    from trainsim.estimate import estimate
    inter = estimate(_pp_run("interleaved", 2), advise=False)
    m = 64 / 8     # micro-batches per step: 64 sequences over dp = 32 / 4 = 8, micro-batch 1
    fill = 20 * (4096 * 4096 * 2 / (50e9 * 0.85) + 5e-6 + 5e-6)
    assert inter.breakdown["pp_p2p"] == pytest.approx(m * 2 * 2 * 5e-6 + fill, rel=1e-9)
    plain = estimate(_pp_run("1f1b", 1), advise=False)
    # 1F1B: every transfer is exposed; 4,096 tokens x 4,096 hidden x 2 bytes = 33.5 MB per send over
    # InfiniBand (pp stride 8 = one server per stage) at 50 GB/s x collective efficiency, so far more than launches
    assert plain.breakdown["pp_p2p"] > 10 * m * 2 * 5e-6
