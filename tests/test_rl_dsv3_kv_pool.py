"""Is the DeepSeek-V3 TP32 rollout decode short because vLLM's KV pool runs fewer sequences at once? (issue 18)

The NeMo RL v0.6.0 DeepSeek-V3 GRPO rows are predicted 28-43% fast, and NeMo RL pull request 2779's phase split puts
the gap in the TP32 vLLM rollout decode (~40 ms a decode step measured against the model's ~24 ms,
tests/test_rl_dsv3_split.py). One reading: the rollout server holds fewer running sequences than the model assumes,
so decode takes more (fixed-cost) steps. This module sizes vLLM 0.17.1's KV pool (the version NeMo RL v0.6.0 pins,
pyproject.toml ``vllm==0.17.1``) by hand and rules that reading out.

vLLM 0.17.1 (wheel vllm-0.17.1-cp38-abi3-manylinux_2_31_x86_64.whl, PyPI):

* ``vllm/v1/worker/utils.py`` ``request_memory``: ``requested = ceil(total_memory x gpu_memory_utilization)``, with
  ``total_memory`` the device total CUDA reports (H100 80GB HBM3: 79.18 GiB, vLLM's own startup check reads
  "0.9, 71.26 GiB" = 0.9 x 79.18; llm-d/llm-d-benchmark config_explorer/empirical-vllm-memory-results.md, "H100
  GPUs (79.18 GiB total memory)");
* ``vllm/v1/worker/gpu_worker.py`` ``determine_available_memory``: KV pool = ``requested - non_kv_cache_memory``,
  ``vllm/utils/mem_utils.py`` ``memory_profiling``: ``non_kv_cache_memory = weights + torch peak increase of the
  profile run + non-torch increase since the post-NCCL-init snapshot``; no CUDA-graph term (0.17.1 only logs the
  graph pool in ``compile_or_warm_up_model``, after the pool is sized). The profile run is one dummy forward of
  ``max_num_batched_tokens`` = ``SchedulerConfig.DEFAULT_MAX_NUM_BATCHED_TOKENS`` = 2,048 (vllm/config/scheduler.py;
  ``AsyncLLM``'s ``UsageContext.ENGINE_CONTEXT`` is not in ``EngineArgs.get_batch_defaults``' table) plus a sampler
  run of ``min(max_num_seqs, 2048)`` = 128 rows.
* The engine's pool (posttrain/phases.py ``kv_batch_cap``): ``(hbm x fraction - weights - buffer_bytes) / kv per
  sequence``, buffer_bytes 4e9 (inference.yaml, an assumption), at the mean final length ``prompt + response``.

Weights per rank, DeepSeek-V3 under vLLM at TP32 (``vllm/model_executor/models/deepseek_v2.py``: the fused q_a /
kv_a projection and the router are replicated, everything else is split 32 ways; config.json: hidden 7,168, 61
layers of which 3 dense (intermediate 18,432) and 58 MoE (256 routed + 1 shared expert of 2,048), q_lora 1,536,
kv_lora 512 + rope 64, 128 heads of 128 + 64 (q/k) and 128 (v), vocab 129,280): replicated (7,168 x (1,536 + 576)
x 61 + 256 x 7,168 x 58 = 1.030e9 parameters) + split (669.995e9 / 32): 43.93e9 bytes in BF16 (total 671.03e9
parameters, DeepSeek-V3's published 671B). The latent cache, replicated on every rank: (512 + 64) x 61 x 2 B =
70,272 B a token (trainsim/inference/kv.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import trainsim.inference.step as st
from trainsim.inference.search import evaluate_decode
from trainsim.posttrain.phases import kv_batch_cap, rollout_servers, rollout_setup
from trainsim.posttrain.spec import load_posttrain

RL = Path(__file__).resolve().parents[1] / "validation" / "rl"
GIB = 2.0 ** 30
H100_CUDA_TOTAL_BYTES = 79.18 * GIB          # what vLLM reads as total_memory on an H100 80GB HBM3
KV_BYTES_PER_TOKEN = (512 + 64) * 61 * 2     # DeepSeek-V3 latent + rope key, BF16, all 61 layers
#: DeepSeek-V3 parameters one TP32 rank holds (module docstring), BF16
_REPLICATED = 7168 * (1536 + 576) * 61 + 256 * 7168 * 58
_SPLIT = ((1536 * 128 * 192 + 512 * 128 * 256 + 128 * 128 * 7168) * 61 + 3 * 7168 * 18432 * 3
          + 257 * 3 * 7168 * 2048 * 58 + 2 * 129280 * 7168)
WEIGHTS_PER_RANK_BYTES = 2.0 * (_REPLICATED + _SPLIT / 32)
#: pull request 2779's colocated run (tests/test_rl_dsv3_split.py): 64 samples a TP32 server, mean final length
#: 108 + 746.5 tokens, generation 57.4 s
SAMPLES_PER_SERVER = 64


def _vllm_pool_sequences(overhead_bytes: float, length: float, fraction: float = 0.6) -> float:
    """Sequences of ``length`` tokens vLLM 0.17.1's KV pool holds on one H100 of a DeepSeek-V3 TP32 server, with
    ``overhead_bytes`` of profile-run peak activations + non-torch increase (module docstring)."""
    requested = np.ceil(H100_CUDA_TOTAL_BYTES * fraction)
    return float((requested - WEIGHTS_PER_RANK_BYTES - overhead_bytes) / (length * KV_BYTES_PER_TOKEN))


def _server(name: str):
    pt = load_posttrain(RL / name)
    sd = pt.student
    s = rollout_setup(pt.student_arch, pt.clusters["main"].system, sd.rollout_precision,
                      host_overlap=sd.rollout_host_overlap, numa_bound=sd.rollout_numa_bound)
    return pt, s, st.ServePlans(sd.rollout_tp, sd.rollout_tp, 1, 1)


def test_hand_weights_are_deepseek_v3_and_the_engines():
    # 671.03e9 parameters in all; 43.93e9 bytes on one TP32 rank
    assert _REPLICATED + _SPLIT == pytest.approx(671.03e9, rel=1e-4)
    assert WEIGHTS_PER_RANK_BYTES == pytest.approx(43.93e9, rel=1e-3)
    pt, s, p = _server("nemo-rl-h100-dsv3-256-sync.yaml")
    one = evaluate_decode(s, p, 809.0, batch_per_instance=1.0, memory_context=809.0, hbm_fraction=0.6)
    assert float(np.ravel(one.memory["weights"])[0]) == pytest.approx(WEIGHTS_PER_RANK_BYTES, rel=0.005)
    assert float(np.ravel(one.memory["kv_cache"])[0]) == pytest.approx(809 * KV_BYTES_PER_TOKEN, rel=1e-9)


def test_vllm_0171_pool_holds_the_servers_64_samples():
    # requested 0.6 x 79.18 GiB = 51.01e9; less 43.93e9 of weights leaves 7.08e9 for the profile run's peak
    # activations, NCCL's lazily connected buffers and the pool. At the mean final length 809 (108 + 701) one
    # sequence holds 56.85 MB: 64 sequences need 3.64e9, so they all run at once unless the overhead tops 3.44e9
    # (the engine's assumption, 4e9 out of 0.6 x 80 GiB, gives 63.4); a 2,048-token profile run at TP32 holds
    # ~0.24e9 of MoE output cache (2,048 x 8 x 7,168 x 2 B) and ~0.07e9 of sampler logits (128 x 129,280 x 4 B)
    assert np.ceil(H100_CUDA_TOTAL_BYTES * 0.6) - WEIGHTS_PER_RANK_BYTES == pytest.approx(7.08e9, rel=2e-3)
    assert _vllm_pool_sequences(2e9, 809) == pytest.approx(89.3, abs=0.1)
    assert _vllm_pool_sequences(3.44e9, 809) == pytest.approx(SAMPLES_PER_SERVER, abs=0.1)
    _, s, p = _server("nemo-rl-h100-dsv3-256-sync.yaml")
    one = evaluate_decode(s, p, 809.0, batch_per_instance=1.0, memory_context=809.0, hbm_fraction=0.6)
    cap = kv_batch_cap(s.chip.hbm_bytes * 0.6, one.memory["weights"], one.memory["buffers"], one.memory["kv_cache"])
    assert float(np.ravel(cap)[0]) == pytest.approx(63.4, abs=0.1)


def test_a_kv_bound_batch_that_would_close_the_gap_needs_5_6_gb_of_overhead():
    # The model's generation of pull request 2779's colocated step (responses 746 tokens on average, the longest
    # 1,428) is 34.1 s at the batch its pool allows (60 of the 64 samples); it reaches the measured 57.4 s only
    # when the pool is cut to ~24 running sequences (rollout_memory_fraction 0.575 in the engine's accounting:
    # 57.8 s). vLLM 0.17.1's pool holds 24.3 sequences of 854 tokens only with 7.08e9 - 24.3 x 854 x 70,272 =
    # 5.62e9 of non-KV overhead besides the weights: 1.4x the engine's whole 4e9 buffer assumption, against 0.30e9
    # for the two largest tensors of the 2,048-token profile run (MoE output cache and sampler logits) and the
    # 0.13-0.55 GiB of non-torch memory llm-d measured on H100 at TP1-2 (empirical-vllm-memory-results.md); no
    # measured TP32 figure was found
    _, s, p = _server("nemo-rl-h100-dsv3-256-sync.yaml")
    full = rollout_servers(s, p, 256, 512, 32, 108, 746, 1428, 0.6, False, 128, 1)
    cut = rollout_servers(s, p, 256, 512, 32, 108, 746, 1428, 0.575, False, 128, 1)
    assert float(full.batch[0]) == pytest.approx(60.0, abs=0.5)
    assert float(full.decode_s[0]) == pytest.approx(34.1, abs=0.2)
    assert float(cut.batch[0]) == pytest.approx(24.3, abs=0.2)
    assert float(cut.decode_s[0]) == pytest.approx(57.4, abs=1.0)
    overhead = np.ceil(H100_CUDA_TOTAL_BYTES * 0.6) - WEIGHTS_PER_RANK_BYTES - 24.3 * 854 * KV_BYTES_PER_TOKEN
    assert overhead == pytest.approx(5.62e9, rel=0.01)
    assert 2048 * 8 * 7168 * 2 + 128 * 129280 * 4 == pytest.approx(0.30e9, rel=0.01)


@pytest.mark.parametrize("name, fraction, per_server", [
    # GB200 (rollout_memory_fraction 0.3 of 186 GiB): -34..-43% with a pool of more than three times its samples
    ("nemo-rl-gb200-dsv3-256-sync.yaml", 0.3, 64),
    # 512 H100: 16 TP32 servers of 32 samples each, half what the pool holds, and the row is the shortest H100 one
    # (-40%)
    ("nemo-rl-h100-dsv3-512-sync.yaml", 0.6, 32),
])
def test_short_rows_whose_servers_are_not_kv_bound(name, fraction, per_server):
    # The KV pool is not the common cause: these rows are as short as the 256-H100 one with room to spare
    pt, s, p = _server(name)
    ctx = pt.step.prompt_len + pt.step.rollout_len
    one = evaluate_decode(s, p, ctx, batch_per_instance=1.0, memory_context=ctx, hbm_fraction=fraction)
    cap = kv_batch_cap(s.chip.hbm_bytes * fraction, one.memory["weights"], one.memory["buffers"],
                       one.memory["kv_cache"])
    assert pt.student.rollout_memory_fraction == fraction
    assert pt.step.prompts * pt.step.samples_per_prompt / (pt.clusters["main"].chips / 32) == per_server
    assert float(np.ravel(cap)[0]) > 1.9 * per_server
