"""Tensor-parallel all-reduce in serving: the stacks' custom one-shot / two-shot kernel (vLLM
csrc/custom_all_reduce.cuh), not NCCL's ring. Expected times are derived by hand below."""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.catalog.types import Chip, NetLevel, System
from trainsim.inference.calib import InferCalib
from trainsim.inference.setup import ServeSetup
from trainsim.inference.step import ServePlans, custom_all_reduce_time, step_time, tp_all_reduce_time
from trainsim.model.inline import InlineModel, build_inline

B = 400e9       # scale-up bytes/s per chip (a non-blocking switch)
ALPHA = 2e-6    # scale-up latency per step
EFF = (1.0, 1.0)


def _system(vendor: str) -> System:
    chip = Chip(f"{vendor}-x", "X", "x", "x", {"bf16": 1e15}, 80e9, 3e12, B, 50e9)
    return System(f"{vendor}-sys", "X", chip, (NetLevel("scale-up", 8, B, ALPHA), NetLevel("scale-out", None, 50e9, 5e-6)))


def test_one_shot_under_256_kib_at_8_ranks():
    # 1-stage: every rank reads the whole 128 KiB buffer from each of 7 peers -> 7 S / B, plus two barriers
    s = 128 * 1024.0
    t = float(custom_all_reduce_time(s, 8, _system("nvidia"), EFF))
    assert t == pytest.approx(7 * s / B + 2 * ALPHA, rel=1e-12)


def test_two_shot_from_256_kib_at_8_ranks():
    # 2-stage: reduce-scatter + all-gather, each reads 7/8 of S -> 2 x 7/8 S / B, plus two barriers
    s = 1024 * 1024.0
    t = float(custom_all_reduce_time(s, 8, _system("nvidia"), EFF))
    assert t == pytest.approx(2 * 7 / 8 * s / B + 2 * ALPHA, rel=1e-12)


def test_thresholds_by_rank_count():
    sysm = _system("nvidia")
    s = 384 * 1024.0   # over the 8-rank threshold (256 KiB), under the 4-rank one (512 KiB)
    assert float(custom_all_reduce_time(s, 4, sysm, EFF)) == pytest.approx(3 * s / B + 2 * ALPHA, rel=1e-12)
    assert float(custom_all_reduce_time(s, 8, sysm, EFF)) == pytest.approx(2 * 7 / 8 * s / B + 2 * ALPHA,
                                                                            rel=1e-12)
    big = 64e6         # two ranks always run the 1-stage kernel: read S from the one peer
    assert float(custom_all_reduce_time(big, 2, sysm, EFF)) == pytest.approx(big / B + 2 * ALPHA, rel=1e-12)


def test_small_message_latency_is_two_barriers_not_a_ring():
    # ring all-reduce of a tiny buffer over 8 ranks pays 2 (n - 1) = 14 latencies; the custom kernel pays 2
    sysm = _system("nvidia")
    s = ServeSetup(_arch(), sysm, calib=InferCalib().with_(coll_eff=EFF))
    ring_like = ServeSetup(_arch(), _system("test"), calib=InferCalib().with_(coll_eff=EFF))
    tiny = 16.0
    assert float(tp_all_reduce_time(s, tiny, 8)) == pytest.approx(2 * ALPHA + 7 * tiny / B, rel=1e-9)
    assert float(tp_all_reduce_time(ring_like, tiny, 8)) == pytest.approx(14 * ALPHA + 2 * 7 / 8 * tiny / B,
                                                                          rel=1e-9)


def test_serving_step_uses_custom_kernel_only_inside_eight_ranks_of_a_domain():
    arch = _arch()
    nv = ServeSetup(arch, _system("nvidia"), calib=InferCalib().with_(coll_eff=EFF, comm_overlap=0.0))
    _, br = step_time(nv, ServePlans(8, 8, 1, 1), 8, 256, "decode")
    layers = sum(lk.n_layers for lk in arch.layers)
    s = 8 * arch.hidden * 2.0     # 8 tokens x hidden x BF16 per tp group, under 256 KiB: one-shot
    assert float(br["tp_comm"]) == pytest.approx(2 * layers * (7 * s / B + 2 * ALPHA), rel=1e-9)
    # 16 ranks span two scale-up domains: no custom kernel, the ring's cost (more than the one-shot's)
    t16 = tp_all_reduce_time(nv, s, 16)
    assert float(t16) > float(custom_all_reduce_time(s, 8, nv.system, EFF))


def test_gb200_tp8_across_two_trays_keeps_a_custom_kernel():
    """A GB200 NVL72 compute tray is one host of 4 GPUs (NeMo RL recipes ``cluster.gpus_per_node: 4``, e.g.
    examples/configs/recipes/llm/performance/grpo-qwen3-235b-16n4g.yaml at NVIDIA-NeMo/RL tag v0.6.0), so a
    tensor-parallel group of 8 spans two hosts joined by NVLink. vLLM's own kernel refuses it, but the next one in
    line still runs over NVLink, not NCCL, so the group is priced with :func:`custom_all_reduce_time`.

    vLLM v0.11.2 (commit 275de3417) and v0.17.1 (commit 95c0f928c), read from the PyPI wheels:

    * ``vllm/distributed/device_communicators/custom_all_reduce.py:90-95``: ``CustomAllreduce`` disables itself
      when ``in_the_same_node_as`` (a shared-memory test, ``parallel_state.py``) is false: "spans across nodes";
    * ``cuda_communicator.py`` (v0.17.1 :53, :87-91, :190-203; v0.11.2 :41, :68-72, :146-158): the TP group also
      builds a ``SymmMemCommunicator`` (``VLLM_ALLREDUCE_USE_SYMM_MEM`` defaults to 1, ``envs.py``) and
      ``all_reduce`` tries it after the custom kernel, before PyNccl;
    * ``symm_mem.py:28-31, :143-150``: on compute capability 10.0 with 6 or 8 ranks it runs torch's
      ``multimem_all_reduce_`` (NVLink SHARP multicast); ``all_reduce_utils.py`` ``SYMM_MEM_ALL_REDUCE_MAX_SIZES``
      ["10.0"][8] = 128 MiB;
    * torch 2.9.0 (0fabc3ba) and 2.10.0 (449b1768), which these vLLMs pin: ``CUDASymmetricMemory`` rendezvous
      exchanges ``CU_MEM_HANDLE_TYPE_FABRIC`` handles through the store where the GPU has fabric access (pytorch
      pull request 159319) and tells ranks apart by (hostname, device) for NVL72 (pull request 161756): both
      wheels' ``make_symm_mem<true>`` / ``make_peer_alloc_info<true>`` call ``gethostname``, so the multicast
      object spans the two trays;
    * v0.17.1 also fuses the all-reduce with RMSNorm at its default ``-O2`` on sm100 (``config/vllm.py:113-132,
      :204``; up to 1 MiB at 8 ranks, ``allreduce_rms_fusion.py:54-63``) in FlashInfer 0.6.4's trtllm kernel,
      whose workspace is ``SymmDeviceMemory`` with a ``FabricHandleExchanger`` (``flashinfer/comm/mnnvl.py:949``):
      also cross-host over NVLink.

    Beyond 8 ranks neither applies (``CustomAllreduce._SUPPORTED_WORLD_SIZES = [2, 4, 6, 8]``, symm-mem sizes up
    to 8): PyNccl, i.e. the library all-reduce.

    Hand figures from the catalog's GB200 NVL72 scale-up level (900 GB/s per direction, 0.6 us per step) at unit
    efficiency: 16 decode tokens of a 4,096-wide BF16 layer = 128 KiB, under 256 KiB at 8 ranks: one-shot,
    7 x 131,072 B / 900 GB/s + 2 x 0.6 us = 1.0194 + 1.2 = 2.2194 us; 1 MiB: two-shot,
    2 x 7/8 x 1,048,576 B / 900 GB/s + 2 x 0.6 us = 2.0389 + 1.2 = 3.2389 us."""
    from trainsim.catalog.load import get_system
    from trainsim.perf.collectives import all_reduce_time

    gb200 = get_system("gb200-nvl72")
    s = ServeSetup(_arch(), gb200, calib=InferCalib().with_(coll_eff=EFF))
    assert float(tp_all_reduce_time(s, 16 * 4096 * 2.0, 8)) == pytest.approx(2.2194e-6, rel=1e-4)
    assert float(tp_all_reduce_time(s, 1024 * 1024.0, 8)) == pytest.approx(3.2389e-6, rel=1e-4)
    ring16 = all_reduce_time(1024 * 1024.0, np.array([16]), np.array([1]), gb200, EFF)
    assert float(tp_all_reduce_time(s, 1024 * 1024.0, 16)) == pytest.approx(float(np.ravel(ring16)[0]), rel=1e-12)


def _arch():
    return build_inline(InlineModel(name="d", layers=4, hidden=1024, heads=16, ffn=4096, ffn_act="swiglu",
                                    vocab=32000))

