"""The serving stacks' real limits (issue 18): where the custom tensor-parallel all-reduce runs, and how many
requests one server runs at once -- decode batch and the prompts of one prefill round alike.

Expectations are the stacks' own constants, read from their code (cited in trainsim/inference/step.py
``uses_custom_all_reduce`` and trainsim/inference/data/serving_stacks.yaml):

* vLLM / SGLang ``CustomAllreduce``: world sizes 2, 4, 6, 8 only; ``should_custom_ar`` takes
  ``inp_size < max_size`` with ``max_size = 8192 * 1024`` (8 MiB; SGLang ``2 * 8192 * 1024``, 16 MiB, on ROCm);
  more than 2 ranks only on a fully connected (NVLink / xGMI) domain. Anything else goes to NCCL / RCCL.
* vLLM ``EngineArgs.get_batch_defaults``: ``max_num_seqs`` 1,024 on GPUs of >= 70 GiB that are not A100s, else 256.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import infer_json

from trainsim.catalog.load import get_system
from trainsim.catalog.topology import Topology
from trainsim.inference.search import evaluate_prefill, plan_grid
from trainsim.inference.serve import setup_for
from trainsim.inference.stacks import profile
from trainsim.inference.step import custom_all_reduce_time, tp_all_reduce_time, uses_custom_all_reduce
from trainsim.model.load import resolve_model
from trainsim.perf.collectives import all_reduce_time

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def h100():
    return setup_for(resolve_model("llama-3.1-8b"), get_system("dgx-h100"))


def _ring(s, size, n):
    return float(all_reduce_time(size, np.int64(n), np.int64(1), s.system, s.calib.coll_eff))


# ---------------------------------------------------------------- (a) where the custom all-reduce runs


@pytest.mark.parametrize("stack, vendor, size, n, custom", [
    ("vllm", "nvidia", 1 * MiB, 2, True),
    ("vllm", "nvidia", 1 * MiB, 3, False),          # _SUPPORTED_WORLD_SIZES = [2, 4, 6, 8]
    ("vllm", "nvidia", 1 * MiB, 5, False),
    ("vllm", "nvidia", 1 * MiB, 6, True),
    ("vllm", "nvidia", 1 * MiB, 7, False),
    ("vllm", "nvidia", 1 * MiB, 8, True),
    ("vllm", "nvidia", 8 * MiB - 16, 8, True),      # inp_size < max_size
    ("vllm", "nvidia", 8 * MiB, 8, False),          # 8,388,608 B is not < 8192 * 1024
    ("vllm", "nvidia", 16 * MiB, 8, False),
    ("vllm", "amd", 12 * MiB, 8, False),            # vLLM's max_size = 8192 * 1024 on ROCm too
    ("sglang", "amd", 12 * MiB, 8, True),           # SGLang on ROCm: 2 * 8192 * 1024 = 16 MiB
    ("sglang", "amd", 16 * MiB, 8, False),
    ("sglang", "amd", 1 * MiB, 7, False),
    ("vllm-ascend", "ascend", 1 * MiB, 8, False),   # NPUCommunicator: ca_comm = None, HCCL's all-reduce
])
def test_custom_all_reduce_rule(h100, stack, vendor, size, n, custom):
    assert bool(uses_custom_all_reduce(profile(stack), vendor, size, n, h100.system)) is custom


def test_custom_all_reduce_not_across_the_scale_up_domain(h100):
    """A group of 16 spans two 8-GPU servers: 'Custom allreduce is disabled because this process group spans across
    nodes' (and 16 is no supported size)."""
    assert not bool(uses_custom_all_reduce(profile("vllm"), "nvidia", 1 * MiB, 16, h100.system))


def test_more_than_two_ranks_need_a_fully_connected_domain(h100):
    """'not supported on more than two PCIe-only GPUs': a domain whose chips do not all reach each other directly
    (here the H100 server rewired as a ring-like torus of 8) keeps the kernel for 2 ranks only."""
    lv = dataclasses.replace(h100.system.levels[0], topology=Topology("torus", 1.0, 0, (8,)))
    sysm = dataclasses.replace(h100.system, levels=(lv,) + tuple(h100.system.levels[1:]))
    assert bool(uses_custom_all_reduce(profile("vllm"), "nvidia", 1 * MiB, 2, sysm))
    assert not bool(uses_custom_all_reduce(profile("vllm"), "nvidia", 1 * MiB, 4, sysm))


@pytest.mark.parametrize("size, n", [(1 * MiB, 3), (1 * MiB, 5), (16 * MiB, 8), (8 * MiB, 4)])
def test_outside_the_rule_tp_all_reduce_is_the_library_ring(h100, size, n):
    """tp 3 or 5 at any size, and tp 4 / 8 at 8 MiB or more, price as NCCL's all-reduce (perf/collectives); the old
    rule (n <= 8, any size) priced them as the custom one-shot / two-shot kernel."""
    got = float(tp_all_reduce_time(h100, size, n))
    assert got == pytest.approx(_ring(h100, size, n), rel=1e-12)
    assert got != pytest.approx(float(custom_all_reduce_time(size, n, h100.system, h100.calib.coll_eff)), rel=1e-6)


def test_inside_the_rule_tp_all_reduce_is_the_custom_kernel(h100):
    size, n = 1 * MiB, 8
    assert float(tp_all_reduce_time(h100, size, n)) == pytest.approx(
        float(custom_all_reduce_time(size, n, h100.system, h100.calib.coll_eff)), rel=1e-12)


# ---------------------------------------------------------------- (b) requests one server runs at once


def _one_token_prefill(**serving):
    return {"name": "one-token", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8,
            "serving": {"phase": "prefill", "input_len": 1, **serving}}


def test_a_one_token_prefill_round_holds_at_most_max_batch_prompts(tmp_path):
    """1-token prompts on 8 H100: the grid's smallest round is 1,024 tokens per chip = 8,192 prompts, and the old
    search took 65,536 per chip (524,288 prompts in one round). With max_batch 256 a round holds 256."""
    d = infer_json(tmp_path, _one_token_prefill(max_batch=256))
    assert d["prefill"]["prompts_per_instance"] == 256


@pytest.mark.parametrize("system, per_replica", [("dgx-h100", 1024), ("dgx-a100", 256)])
def test_unstated_max_batch_is_vllms_default_per_replica(tmp_path, system, per_replica):
    """No serving.max_batch: vLLM's default max_num_seqs per data-parallel replica -- 1,024 on an 80 GiB H100,
    256 on an A100 (the 'a100' exception in get_batch_defaults)."""
    body = _one_token_prefill()
    body["system"] = system
    d = infer_json(tmp_path, body)
    assert d["prefill"]["prompts_per_instance"] == per_replica * d["prefill"]["plan"]["dp"]


def test_searched_decode_batch_is_capped_by_the_default(tmp_path):
    """Decode of short requests on one tp-8 H100 server: the KV cache holds ~8,000 sequences of ~200 tokens
    (131,072 B per token of Llama 3.1 8B's BF16 KV over 8 x 80 GiB), and the old grid went to 1,024 per chip
    (8,192); one vLLM engine runs at most 1,024."""
    body = {"name": "short", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8,
            "serving": {"phase": "decode", "input_len": 128, "output_len": 128}, "plan": {"tp": 8, "pp": 1}}
    d = infer_json(tmp_path, body)
    assert d["decode"]["batch_per_instance"] <= 1024


def test_a_stated_batch_is_not_capped_by_the_default(tmp_path):
    """A stated batch is what the deployment ran (SGLang's GB200 decode: 1,408 per GPU, above vLLM's 1,024):
    the default applies only where the batch is searched."""
    body = {"name": "stated", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 1,
            "serving": {"phase": "decode", "input_len": 128, "output_len": 128, "batch": 1500}}
    d = infer_json(tmp_path, body)
    assert d["decode"]["batch_per_instance"] == 1500


def test_prefill_cap_is_per_instance_when_stated(h100):
    """evaluate_prefill with max_batch_per_instance 100 on 1-token prompts: every candidate's round holds 100
    prompts (the grid's 1,024 to 65,536 tokens per chip all exceed it)."""
    ev = evaluate_prefill(h100, plan_grid(h100, [8], {"tp": 1, "pp": 1}), 1, max_batch_per_instance=100)
    assert np.all(ev.batch == 100)
