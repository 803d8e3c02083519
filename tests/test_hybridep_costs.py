"""HybridEP's two costs beside the token transfers (issue 14 item 1): the routing-map all-gather of every forward
dispatch (perf/comm_ep.py routing_map_allgather_fwd) and the SMs its kernels take from overlapped compute, a
runtime setting filled from the stack (training.moe_hybridep_num_sms; perf/comm_ep.py dispatcher_sms), checked
against hand derivations."""
from __future__ import annotations

from dataclasses import replace as dreplace

import numpy as np
import pytest
import yaml

from conftest import ctx_for, make_system
from trainsim.api import parse_run
from trainsim.frameworks import runtime_settings
from trainsim.parallel.plan import Plans
from trainsim.perf.comm_ep import ep_overlapped_exposed, routing_map_allgather_fwd
from trainsim.perf.step import evaluate, layer_costs


def _plans(ep, etp=1, tp=1, recompute=0, mb=1, chips=16):
    return Plans.from_columns(tp=tp, pp=1, vpp=1, ep=ep, etp=etp, cp=1, dp=chips // tp, zero=1,
                              recompute=recompute, mb=mb, schedule=0, node_limit=0)


@pytest.fixture()
def hep(small_moe):
    # 16 chips on two 8-chip domains: 300 GB/s NVLink (2 us per step), 25 GB/s scale-out (5 us per step)
    return dreplace(ctx_for(small_moe, make_system(), chips=16, gbs=16), moe_dispatcher="hybridep")


def test_routing_map_gather_is_a_two_level_ring_of_the_bool_map(hep):
    # small_moe: 16 experts; 2048 tokens per micro-batch, tp 1, ep 16 over two 8-chip domains.
    # Each rank's map: 2048 tokens x 16 experts x 1 byte = 32,768 B; gathered over 16 ranks: S = 524,288 B.
    # NCCL's flat ring, pipelined: 15/16 x S at its slowest link, NVLink 300e9 e0 per chip or a domain's egress over
    # its 8 members' NICs, 8 x 25e9 e1; 15 hops, 1 between the domains (5 us), 14 inside (2 us); plus one launch.
    lk = next(lk for lk in hep.arch.layers if lk.moe is not None)
    c = hep.calib
    s = 16 * 2048 * 16.0
    e0, e1 = c.coll_eff[0], c.coll_eff[min(1, len(c.coll_eff) - 1)]
    want = 15 / 16 * s / min(300e9 * e0, 8 * 25e9 * e1) + 14 * 2e-6 + 5e-6 + c.comm_launch_s
    got = routing_map_allgather_fwd(lk, hep, _plans(16), np.array([2048.0]))[0]
    assert got == pytest.approx(want, rel=1e-12)
    # inside one domain (ep 8): 7/8 x (8 x 32,768) / (300e9 e0) + 7 x 2 us + launch
    got8 = routing_map_allgather_fwd(lk, hep, _plans(8), np.array([2048.0]))[0]
    assert got8 == pytest.approx(7 / 8 * 8 * 32768 / (300e9 * e0) + 7 * 2e-6 + c.comm_launch_s, rel=1e-12)


def test_routing_map_gather_spans_the_etp_x_ep_group_of_sequence_shards(hep):
    # tp 2 = etp 2, ep 4: the ETP x EP group has 8 ranks (one domain), each holding 2048 / 2 = 1024 tokens' rows:
    # S = 8 x 1024 x 16 B, a one-level ring 7/8 x S / (300e9 e0) + 7 x 2 us + launch
    lk = next(lk for lk in hep.arch.layers if lk.moe is not None)
    c = hep.calib
    got = routing_map_allgather_fwd(lk, hep, _plans(4, etp=2, tp=2), np.array([2048.0]))[0]
    assert got == pytest.approx(7 / 8 * 8 * 1024 * 16 / (300e9 * c.coll_eff[0]) + 7 * 2e-6 + c.comm_launch_s,
                                rel=1e-12)


def test_no_gather_for_other_dispatchers_dense_layers_or_one_rank(hep):
    moe = next(lk for lk in hep.arch.layers if lk.moe is not None)
    dense = next(lk for lk in hep.arch.layers if lk.moe is None)
    tok = np.array([2048.0])
    for d in ("alltoall", "deepep", "allgather"):
        assert routing_map_allgather_fwd(moe, dreplace(hep, moe_dispatcher=d), _plans(16), tok)[0] == 0.0
    assert routing_map_allgather_fwd(dense, hep, _plans(16), tok)[0] == 0.0
    assert routing_map_allgather_fwd(moe, hep, _plans(1), tok)[0] == 0.0


def test_gather_is_forward_only_in_the_step(hep):
    # Megatron-Core's backward passes reuse the forward's handle (fused_a2a.py HybridEPDispatch.backward,
    # HybridEPCombine.backward): no overlap, no recompute -> per micro-batch the step's EP time is 2 x (dispatch +
    # combine) + one gather per MoE layer, i.e. exactly one gather more than the all-to-all dispatcher's rule
    p = _plans(16)
    lc = layer_costs(hep, p)
    moe_layers = sum(lk.n_layers for lk in hep.arch.layers if lk.moe is not None)
    lk = next(lk for lk in hep.arch.layers if lk.moe is not None)
    g = routing_map_allgather_fwd(lk, hep, p, np.array([2048.0]))[0]
    assert lc["ep_g"][0] == pytest.approx(moe_layers * g)
    no_ov = dreplace(hep, calib=hep.calib.with_(ep_overlap=0.0))
    got = evaluate(no_ov, p).breakdown["ep_alltoall"][0]
    m = 16 / 16   # micro-batches per step
    assert got == pytest.approx(m * (2.0 * lc["ep"][0] + lc["ep_g"][0]), rel=1e-9)


def test_recompute_gathers_again(hep, monkeypatch):
    # full recompute, and selective recompute of the 'moe' module, rerun HybridEPDispatch.forward without a
    # handle, so the recompute term carries the gather once more: with no overlap (f = 0) and every layer
    # recomputed the recompute grows by exactly the layers' gathers, and the EP breakdown by one more gather
    from trainsim.perf import recompute as rec_mod, step as step_mod
    from trainsim.perf.context import Recompute
    no_ov = dreplace(hep, calib=hep.calib.with_(ep_overlap=0.0))
    sel = dreplace(no_ov, recompute=Recompute(modules=("moe",)))
    cases = [(no_ov, _plans(16, recompute=2)), (sel, _plans(16, recompute=1))]
    ep_g = layer_costs(no_ov, _plans(16))["ep_g"][0]
    assert ep_g > 0.0
    with_g = [evaluate(c, p).breakdown for c, p in cases]
    def zero(lk, ctx, p, tokens):
        return np.zeros_like(np.asarray(tokens, dtype=np.float64) * p.ep)

    monkeypatch.setattr(step_mod, "routing_map_allgather_fwd", zero)
    monkeypatch.setattr(rec_mod, "routing_map_allgather_fwd", zero)
    without = [evaluate(c, p).breakdown for c, p in cases]
    for bd, bd0 in zip(with_g, without):
        assert bd["recompute"][0] - bd0["recompute"][0] == pytest.approx(ep_g, rel=1e-9)
        assert bd["ep_alltoall"][0] - bd0["ep_alltoall"][0] == pytest.approx(ep_g, rel=1e-9)


def test_gather_shares_the_window_but_takes_no_dispatcher_sms(hep):
    # 10 ms dispatch + combine and 2 ms NCCL gather under 20 ms of compute, 80% overlappable: 12 - 0.8 x 12 = 2.4 ms
    # exposed; the 9.6 ms hidden are 10/12 HybridEP kernels on 16 SMs of 132: + 9.6 x 10/12 x 16/132 ms
    ctx = dreplace(hep, moe_hybridep_num_sms=16)
    got = ep_overlapped_exposed(np.array([10e-3]), np.array([20e-3]), 0.8, ctx, np.array([2e-3]))[0]
    assert got == pytest.approx(2.4e-3 + 9.6e-3 * (10 / 12) * 16 / 132.0)
    # Megatron-Bridge's 32 SMs double the charge
    got32 = ep_overlapped_exposed(np.array([10e-3]), np.array([20e-3]), 0.8,
                                  dreplace(ctx, moe_hybridep_num_sms=32), np.array([2e-3]))[0]
    assert got32 == pytest.approx(2.4e-3 + 9.6e-3 * (10 / 12) * 32 / 132.0)
    # nothing to send: nothing exposed, nothing charged (no 0 / 0)
    assert ep_overlapped_exposed(np.array([0.0]), np.array([20e-3]), 0.8, ctx, np.array([0.0]))[0] == 0.0


RUN = """
name: hybridep sms
framework: {fw}
model: qwen3-30b-a3b
system: dgx-h100
chips: 16
training: {{seq_len: 4096, global_batch_seqs: 64, precision: bf16, moe_dispatcher: hybridep{extra}}}
plan: {{tp: 1, pp: 1, cp: 1, ep: 16, etp: 1, dp: 16, zero: 1, recompute: none, micro_batch: 1}}
"""


@pytest.mark.parametrize("fw,extra,sms", [
    # Megatron-Bridge's performance scripts set moe_hybridep_num_sms = 32 for every HybridEP run (v0.2.0
    # helpers.py line 113 ... v0.6.0 overrides.py line 89)
    ("megatron-bridge-2025", "", 32), ("megatron-bridge-2026", "", 32),
    # Megatron-Core's own default (transformer_config.py at cba6b0ed: moe_hybridep_num_sms = 16)
    ("megatron-core-2024", "", 16),
    # a run that states it keeps it
    ("megatron-bridge-2026", ", moe_hybridep_num_sms: 24", 24),
])
def test_hybridep_sms_from_the_stack(fw, extra, sms):
    run = parse_run(yaml.safe_load(RUN.format(fw=fw, extra=extra)))
    assert runtime_settings(run.training, fw)["moe_hybridep_num_sms"] == sms


@pytest.mark.parametrize("extra,msg", [(", moe_hybridep_num_sms: 0", "greater than or equal to 1"),
                                       (", moe_hybridep_num_sms: 2.5", "moe_hybridep_num_sms")])
def test_hybridep_sms_refused_when_not_a_count(extra, msg):
    with pytest.raises(Exception, match=msg):
        parse_run(yaml.safe_load(RUN.format(fw="megatron-bridge-2026", extra=extra)))


def test_hybridep_sms_refused_beside_another_dispatcher():
    spec = yaml.safe_load(RUN.format(fw="megatron-bridge-2026", extra=", moe_hybridep_num_sms: 32"))
    spec["training"]["moe_dispatcher"] = "deepep"
    with pytest.raises(Exception, match="applies only to moe_dispatcher hybridep"):
        parse_run(spec)
