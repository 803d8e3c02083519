"""EP dispatch / combine (perf/comm_ep.py ep_alltoall_fwd) against published kernel microbenchmarks.

Every benchmark below reports an "algorithm bandwidth": the bytes of the tokens a rank RECEIVES (one copy per
token and destination rank, its own rank included; FP8 counted with its scales, (1 + 4/128) / 2 of BF16) divided by
the kernel time, so the measured time is recv_tokens x hidden x bytes / bandwidth, with recv_tokens =
tokens x ranks x P(a given rank holds one of the token's k distinct experts) = tokens x ranks x
(1 - C(E - E/ranks, k) / C(E, k)), computed here with math.comb (the benchmarks route uniformly: randperm / topk
of random scores). The engine prices a forward dispatch + combine; the sums are compared.

Sources (read at the commits named):
* HybridEP: deepseek-ai/DeepEP branch hybrid-ep, docs/README_Hybrid-EP.md (table added in 6ad6896, Sep 2025,
  unchanged at 94a9f8f), "Kernel Only" columns; 4096 tokens per rank, hidden 7168, top-8, 8 local experts per rank,
  random uniform router; the bytes as tests/test_mnnvlink_hybridep.py (6ad6896) counts them
  (``dispatched_hidden.numel() * 2``). Its benchmark dispatches WITH the probabilities and combines with them
  (hybrid_ep_buffer.py ``dispatch(topk_weights=...)`` / ``combine(probs=...)``), so both of its kernels move the
  FP32 probability row of perf/comm_ep.py dispatch_prob_bytes, where a training forward's combine does not: the
  measured combine is scaled to the token bytes alone, 2H / (2H + 4 x 8 x ranks), before comparing.
* DeepEP (V1, NVSHMEM): deepseek-ai/DeepEP docs/legacy.md at dd758ca ("Normal kernels with NVLink and RDMA
  forwarding"), H800, 4096 tokens, hidden 7168, top-4 groups, top-8 of 256 experts, FP8 dispatch, BF16 combine;
  bytes as tests/legacy/test_intranode.py / test_internode.py count them.
"""
from __future__ import annotations

import math
from dataclasses import replace as dreplace

import numpy as np
import pytest

from trainsim.perf.comm_ep import dispatch_prob_bytes, dispatched_rows_per_token, ep_alltoall_fwd
from trainsim.perf.routing import expected_distinct, expected_distinct_blocks
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import load_run

H = 7168            # hidden of every benchmark (DeepSeek-V3's)
TOKENS = 4096       # tokens per rank of every benchmark
FP8_ROW = H * (1 + 4 / 128)   # FP8 token with one FP32 scale per 128 elements (the benchmarks' fp8_factor)


def _hit(ranks: int, experts: int, k: int = 8) -> float:
    """P(a given rank holds one of k distinct uniformly chosen experts), by counting subsets."""
    per = experts // ranks
    return 1.0 - math.comb(experts - per, k) / math.comb(experts, k)


def _engine(tmp_path, chip, su_size, su_bw, ranks, dispatcher, experts=None, fp8=False, groups=True):
    spec = tmp_path / "micro.yaml"
    spec.write_text(f"""
name: microbenchmark
framework: megatron-bridge-2026
model: deepseek-v3
system:
  chip: {chip}
  scale_up: {{size: {su_size}, bandwidth: {su_bw}}}
  scale_out: {{bandwidth: 400 Gb/s}}
chips: {ranks}
training: {{seq_len: 4096, global_batch_seqs: {ranks}, precision: {'fp8' if fp8 else 'bf16'}, moe_dispatcher: {dispatcher}}}
plan: {{tp: 1, pp: 1, ep: 4, etp: 1, cp: 1, dp: {ranks}, zero: 1, micro_batch: 1}}
""")
    run = load_run(spec)
    ctx = dreplace(context(run), moe_fp8_dispatch=fp8)
    # the benchmark's EP (24, 36 ranks...) need not divide DeepSeek-V3's 256 experts, which a run spec refuses;
    # the layer below gets the benchmark's expert count, so the plan takes its EP here
    p = plans_from_spec(run.plan.model_copy(update={"ep": ranks}), run.chips, run.arch)
    lk = next(lk for lk in run.arch.layers if lk.moe is not None)
    moe = lk.moe
    if experts is not None:
        moe = dreplace(moe, experts=experts)
    if not groups:
        moe = dreplace(moe, groups=1, top_groups=1)
    elif isinstance(groups, tuple):   # a benchmark's own router groups: (n_group, topk_group)
        moe = dreplace(moe, groups=groups[0], top_groups=groups[1])
    lk = dreplace(lk, moe=moe)
    return float(ep_alltoall_fwd(lk, ctx, p, np.array([float(TOKENS)]))[0]), (lk, ctx, p)


# --- the two formulas the benchmarks pinned ------------------------------------------------------------------

def test_distinct_ranks_of_k_distinct_experts():
    # top-8 of 64 experts on 8 ranks (HybridEP's 8 local experts): 8 (1 - C(56, 8) / C(64, 8)) = 5.4326
    assert expected_distinct_blocks(8, 64, 8) == pytest.approx(8 * (1 - math.comb(56, 8) / math.comb(64, 8)))
    assert expected_distinct_blocks(8, 64, 8) == pytest.approx(5.4326, abs=1e-4)
    # DeepSeek-V3 at ep 64 (4 experts per rank): 64 (1 - C(252, 8) / C(256, 8)) = 7.676, not the 7.576 of 8
    # independent draws
    assert expected_distinct_blocks(8, 256, 64) == pytest.approx(64 * (1 - math.comb(252, 8) / math.comb(256, 8)))
    assert expected_distinct_blocks(8, 256, 64) > expected_distinct(8, 1.0, 64) + 0.09
    # one expert per rank: every one of the k experts is its own rank; one block: always hit once
    assert expected_distinct_blocks(8, 256, 256) == pytest.approx(8.0)
    assert expected_distinct_blocks(8, 256, 1) == pytest.approx(1.0)
    # vectorised over blocks
    got = expected_distinct_blocks(6, 256, np.array([8.0, 64.0]))
    want = [n * (1 - math.comb(256 - 256 // n, 6) / math.comb(256, 6)) for n in (8, 64)]
    assert got == pytest.approx(want)
    # a fractional k (zero experts) lies between its neighbours
    assert expected_distinct_blocks(6, 256, 64) < expected_distinct_blocks(6.5, 256, 64) < expected_distinct_blocks(7, 256, 64)


def test_hybridep_probability_row(tmp_path):
    # DeepSeek-V3 (256 experts) at ep 64 in one NVL72 domain: 4 experts per rank x 64 ranks x 4 bytes = 1,024 bytes
    _, (lk, ctx, p) = _engine(tmp_path, "nvidia-gb200", 72, "900 GB/s", 64, "hybridep")
    assert dispatch_prob_bytes(lk, ctx, p, np.array([64.0]))[0] == pytest.approx(1024.0)
    # on 8-GPU nodes the row covers the 8 ranks of the node: 4 x 8 x 4 = 128 bytes
    assert dispatch_prob_bytes(lk, ctx, p, np.array([8.0]))[0] == pytest.approx(128.0)
    # DeepEP and NCCL all-to-all carry no such row
    for d in ("deepep", "alltoall"):
        assert dispatch_prob_bytes(lk, dreplace(ctx, moe_dispatcher=d), p, np.array([64.0]))[0] == 0.0


def test_hybridep_row_adds_its_bytes_to_the_dispatch(tmp_path):
    # GB200 ep 64 inside one domain, BF16, 4096 tokens: the bandwidth part of dispatch + combine is
    # tokens x copies x (63/64) x (2H + 1024 + 2H) / (900 GB/s x coll_eff); the row adds 1024 / (4H) of it
    # uniform routing, as HybridEP's benchmark router (no group limit: perf/comm_ep.py group_limited_ranks)
    t, (lk, ctx, p) = _engine(tmp_path, "nvidia-gb200", 72, "900 GB/s", 64, "hybridep", groups=False)
    c = ctx.calib
    copies = 64 * (1 - math.comb(252, 8) / math.comb(256, 8))
    bw = 900e9 * c.coll_eff[0]
    fixed = 2 * sum(lv.latency_s for lv in ctx.system.levels[:2]) + 2 * (c.comm_launch_s + 63 * c.a2a_peer_s)
    assert dispatched_rows_per_token(lk, ctx, p)[0] == pytest.approx(copies)
    assert t - fixed == pytest.approx(TOKENS * copies * 63 / 64 * (4 * H + 1024) / bw, rel=1e-9)


# --- published points ---------------------------------------------------------------------------------------

#: HybridEP on GB200 (one NVL72 domain, MNNVL), kernel only, BF16 dispatch: ranks -> (dispatch, combine) GB/s at
#: 32 SMs and at 16 SMs (docs/README_Hybrid-EP.md, GB200 Platform table)
HYBRIDEP_GB200 = {8: ((764.03, 737.13), (750.15, 684.27)), 16: ((706.95, 666.26), (661.93, 600.75)),
                  24: ((665.97, 639.80), (637.80, 565.53)), 32: ((642.23, 605.15), (629.79, 547.25)),
                  36: ((632.31, 596.99), (612.85, 543.27))}


def _hybridep_measured(ranks: int, disp_gbs: float, comb_gbs: float) -> float:
    recv = TOKENS * ranks * _hit(ranks, 8 * ranks)
    t_disp = recv * 2 * H / (disp_gbs * 1e9)
    row = 4 * 8 * ranks                    # the benchmark's combine also returns the probability row
    t_comb = recv * 2 * H / (comb_gbs * 1e9) * (2 * H) / (2 * H + row)
    return t_disp + t_comb


@pytest.mark.parametrize("ranks", sorted(HYBRIDEP_GB200))
def test_hybridep_gb200_32_sms(tmp_path, ranks):
    """32 SMs is what Megatron-Bridge's perf recipes give HybridEP (perf_recipes/_common.py at v0.6.0
    ``moe_hybridep_num_sms = 32``; DeepSeek-V4-Flash's ``moe_flex_dispatcher_num_sms = 32``). The engine is faster
    by 3.5-6% (7-10% before it counted the probability row and the distinct ranks of k distinct experts), most of
    it the combine: that kernel sums the partial outputs on its SMs, which the bandwidth model does not price (a
    per-kernel least-squares fit with the engine's 720 GB/s puts the dispatch within 3.4%, the combine within 9%).
    Tolerance: the engine at most 8% under and never over the measurement."""
    meas = _hybridep_measured(ranks, *HYBRIDEP_GB200[ranks][0])
    eng, _ = _engine(tmp_path, "nvidia-gb200", 72, "900 GB/s", ranks, "hybridep", experts=8 * ranks, groups=False)
    assert 0.92 * meas <= eng <= 1.0 * meas


@pytest.mark.parametrize("ranks", sorted(HYBRIDEP_GB200))
def test_hybridep_gb200_16_sms(tmp_path, ranks):
    """Megatron-Core's default of 16 SMs (moe_hybridep_num_sms): the kernels are partly SM-bound (the 32-SM rows
    are 5-9% faster), which the engine does not model: 8-12.5% faster than the measurement (12-16% before the
    probability row); tolerance: faster, by at most 14%."""
    meas = _hybridep_measured(ranks, *HYBRIDEP_GB200[ranks][1])
    eng, _ = _engine(tmp_path, "nvidia-gb200", 72, "900 GB/s", ranks, "hybridep", experts=8 * ranks, groups=False)
    assert 0.86 * meas <= eng <= 1.0 * meas


def test_hybridep_gb200_growth_with_ranks(tmp_path):
    """From 8 to 36 ranks of one NVL72 domain the measured dispatch + combine time grows 1.65x (32 SMs): more
    distinct destination ranks per token (5.43 -> 7.35), a larger share off-rank (7/8 -> 35/36) and a probability
    row 4.5x longer (256 -> 1,152 bytes per copy). The engine's growth, 1.56x, is within 4% of it (an unmodelled
    per-peer cost of a few us would show here first)."""
    meas = _hybridep_measured(36, *HYBRIDEP_GB200[36][0]) / _hybridep_measured(8, *HYBRIDEP_GB200[8][0])
    e36, _ = _engine(tmp_path, "nvidia-gb200", 72, "900 GB/s", 36, "hybridep", experts=288, groups=False)
    e8, _ = _engine(tmp_path, "nvidia-gb200", 72, "900 GB/s", 8, "hybridep", experts=64, groups=False)
    assert meas == pytest.approx(1.603, abs=0.005)
    assert e36 / e8 == pytest.approx(meas, rel=0.04)


def test_hybridep_b200_ep8(tmp_path):
    """HybridEP on one DGX B200 (8 GPUs, NVLink5), 16 SMs, kernel only, BF16: dispatch 734.95 GB/s, combine
    673.84 GB/s (README_Hybrid-EP.md, B200 Platform): engine 9.6% faster. Same tolerance as the 16-SM GB200 rows."""
    meas = _hybridep_measured(8, 734.95, 673.84)
    eng, _ = _engine(tmp_path, "nvidia-b200-hgx", 8, "900 GB/s", 8, "hybridep", experts=64, groups=False)
    assert 0.86 * meas <= eng <= 1.0 * meas


def test_deepep_h800_intranode_ep8(tmp_path):
    """DeepEP V1 normal kernels on one H800 node (EP 8): 153 GB/s dispatch (FP8), 158 GB/s combine (legacy.md).
    The engine's NVLink at coll_eff 0.8 of 200 GB/s (DeepSeek's "~160 GB/s") against the measured 153 x 7/8 =
    134 GB/s off-rank (0.67 of line rate), and FP8 without its 3% of scales: 14% faster. Tolerance 18%, engine
    never slower."""
    recv = TOKENS * 8 * _hit(8, 256)
    meas = recv * FP8_ROW / 153e9 + recv * 2 * H / 158e9
    # one node: the benchmark's node groups limit nothing, its top-8 is uniform over the 256 experts (no group limit)
    eng, _ = _engine(tmp_path, "nvidia-h800-sxm5", 8, "200 GB/s", 8, "deepep", fp8=True, groups=False)
    assert 0.82 * meas <= eng <= 1.0 * meas


#: DeepEP V1 internode (legacy.md): EP -> (dispatch, combine) RDMA GB/s, and the mean number of nodes a token
#: reaches under the benchmark's group-limited router (top min(nodes, 4) node groups by their best expert score,
#: then top-8 inside them; simulated, 20,000 tokens: 1.993 / 3.614 / 3.980), which the RDMA bytes count own node
#: included (test_internode.py ``num_rdma_token_sent``)
DEEPEP_INTERNODE = {16: (43.0, 43.0, 1.993), 32: (58.0, 57.0, 3.614), 64: (51.0, 50.0, 3.980)}


@pytest.mark.parametrize("ranks", [32, 64])
def test_deepep_h800_internode(tmp_path, ranks):
    """Over 4 and 8 H800 nodes the InfiniBand bytes bound both kernels; the engine prices them within 6%
    (400 Gb/s x coll_eff 0.85 = 42.5 GB/s against the measured ~44 GB/s off-node). The layer routes as the
    benchmark's router does, one group per node and the top min(nodes, 4) groups (test_internode.py), not with
    DeepSeek-V3's 8 groups of which 4 (which on 4 nodes of 2 groups each reach 3.14 nodes, not the benchmark's
    3.61: comm_ep.group_limited_domains)."""
    bd, bc, nodes = DEEPEP_INTERNODE[ranks]
    meas = TOKENS * nodes * FP8_ROW / (bd * 1e9) + TOKENS * nodes * 2 * H / (bc * 1e9)
    n_nodes = ranks // 8
    eng, _ = _engine(tmp_path, "nvidia-h800-sxm5", 8, "200 GB/s", ranks, "deepep", fp8=True,
                     groups=(n_nodes, min(n_nodes, 4)))
    assert eng == pytest.approx(meas, rel=0.06)


@pytest.mark.xfail(strict=True, reason="DeepEP on 2 H800 nodes runs at 43 GB/s of RDMA counted own node included, "
                   "~21.5 GB/s off-node, half the 4- and 8-node rate: the engine's NVLink fan-out of 6.5 ranks per "
                   "token does not bind there either; mechanism not found (engine 23% fast)")
def test_deepep_h800_internode_two_nodes(tmp_path):
    bd, bc, nodes = DEEPEP_INTERNODE[16]
    meas = TOKENS * nodes * FP8_ROW / (bd * 1e9) + TOKENS * nodes * 2 * H / (bc * 1e9)
    eng, _ = _engine(tmp_path, "nvidia-h800-sxm5", 8, "200 GB/s", 16, "deepep", fp8=True)
    assert eng == pytest.approx(meas, rel=0.10)


@pytest.mark.parametrize("ranks,disp_gbs,comb_gbs", [(32, 57.69, 57.46), (64, 49.97, 49.77)])
def test_hybridep_h100_internode(tmp_path, ranks, disp_gbs, comb_gbs):
    """HybridEP on H100 nodes (8 GPUs each, 400G IB), 16 SMs, kernel only, BF16 (README_Hybrid-EP.md, H100
    Platform): RDMA bytes one copy per node reached, own node included (tests/utils.py
    ``count_rdma_send_from_routing_map``: "we do not set the local node map to zeros"), uniform routing over 8
    experts per rank. Within 8% (the engine adds the probability row over the scale-out too, 4 x 64 bytes)."""
    nodes = ranks // 8
    reached = nodes * _hit(nodes, 8 * ranks)
    meas = TOKENS * reached * 2 * H / (disp_gbs * 1e9) + TOKENS * reached * 2 * H / (comb_gbs * 1e9)
    eng, _ = _engine(tmp_path, "nvidia-h100-sxm5", 8, "450 GB/s", ranks, "hybridep", experts=8 * ranks, groups=False)
    assert eng == pytest.approx(meas, rel=0.08)


@pytest.mark.xfail(strict=True, reason="HybridEP on 2 H100 nodes: 71.71 / 62.95 GB/s of RDMA counted own node included "
                   "(~36 / 31 GB/s off-node), engine 19% fast, as DeepEP's 2-node row above: mechanism not found")
def test_hybridep_h100_internode_two_nodes(tmp_path):
    reached = 2 * _hit(2, 128)
    meas = TOKENS * reached * 2 * H / 71.71e9 + TOKENS * reached * 2 * H / 62.95e9
    eng, _ = _engine(tmp_path, "nvidia-h100-sxm5", 8, "450 GB/s", 16, "hybridep", experts=128, groups=False)
    assert eng == pytest.approx(meas, rel=0.08)
