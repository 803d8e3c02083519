"""The serving stacks' per-step token budget (issue 18, "unstated is not optimal"): a scheduler runs at most
``budget`` tokens in one step, so a prefill of P tokens runs in ceil(P / budget) steps (chunked prefill), each a
forward pass with its own step overhead, and where the stack's running decodes count against the budget first
(vLLM V1, TensorRT-LLM) they cap the batch a server keeps running.

Expected values are the stacks' own defaults, read from their code (cited in
trainsim/inference/data/serving_stacks.yaml ``max_batched_tokens_source``), and hand derivations:

* vLLM ``EngineArgs.get_batch_defaults``: OpenAI API server 8,192 on GPUs of >= 70 GiB that are not A100s, else
  2,048; vLLM V0 (0.4.3) ``max(max_model_len, 2048)`` without chunked prefill;
* SGLang ``--chunked-prefill-size``: 8,192 below 160 GiB (H100, H200), 16,384 above (B200, MI300X);
* TensorRT-LLM ``max_num_tokens``: 8,192.
"""
from __future__ import annotations


import numpy as np
import pytest
import yaml

from conftest import infer_json, trainsim_cli
from trainsim.catalog.load import get_chip, get_system
from trainsim.inference.search import token_budget_cap
from trainsim.inference.serve import setup_for
from trainsim.inference.stacks import budget_counts_decode, default_max_batched_tokens, profile
from trainsim.inference.step import ServePlans, prefill_chunks, step_time
from trainsim.model.load import resolve_model


@pytest.mark.parametrize("tokens, budget, steps", [
    (32768, 8192, 4),      # the brief's example: 4 chunks
    (32769, 8192, 5),      # one token over: a fifth step
    (8000, 8192, 1),
    (8192, 8192, 1),
    (65536, 2048, 32),
    (1e9, None, 1),        # no budget: one step
])
def test_prefill_chunks_by_hand(tokens, budget, steps):
    assert float(prefill_chunks(tokens, budget)) == steps


@pytest.mark.parametrize("stack, version, chip, context, budget", [
    ("vllm", None, "nvidia-h100-sxm5", 0, 8192),      # 80 GB >= 70 GiB, not an A100: the API server's 8,192
    ("vllm", None, "nvidia-a100-sxm4-80gb", 0, 2048),  # 'a100' in the name: 2,048 whatever its memory
    ("vllm", None, "amd-mi300x", 0, 8192),
    ("vllm", "0.4.3", "amd-mi300x", 4096, 4096),      # V0: max(max_model_len, 2048), Llama 2's 4,096
    ("vllm", "0.4.3", "amd-mi300x", 1024, 2048),
    ("sglang", None, "nvidia-h100-sxm5", 0, 8192),    # gpu_mem < 160 * 1024 MiB
    ("sglang", None, "nvidia-h200-sxm", 0, 8192),     # 141 GB = 131 GiB
    ("sglang", None, "nvidia-b200-hgx", 0, 16384),
    ("tensorrt-llm", None, "nvidia-h100-sxm5", 0, 8192),
    ("cloudmatrix-infer", None, "nvidia-h100-sxm5", 0, None),   # not published: no budget
])
def test_stack_default_budgets(stack, version, chip, context, budget):
    assert default_max_batched_tokens(profile(stack, version), get_chip(chip), context) == budget


def test_which_stacks_count_decode_tokens_first():
    """vLLM V1 and TensorRT-LLM schedule the running requests first out of one budget; SGLang runs decode batches
    apart from prefill ones (no mixed chunk by default); vLLM V0 runs a step of prefills or one of decodes."""
    assert budget_counts_decode(profile("vllm")) and budget_counts_decode(profile("tensorrt-llm"))
    assert not budget_counts_decode(profile("sglang"))
    assert not budget_counts_decode(profile("vllm", "0.4.3"))
    assert not budget_counts_decode(profile("cloudmatrix-infer"))


@pytest.fixture(scope="module")
def h100_vllm():
    return setup_for(resolve_model("llama-3.1-8b"), get_system("dgx-h100"), stack=profile("vllm"))


def test_a_32k_prompt_runs_in_four_steps_on_vllm_v1(h100_vllm):
    """One 32,768-token prompt on one H100 under vLLM V1's 8,192: four steps of 8,192 tokens. Step overhead by hand:
    4 x (step_overhead_s + seq_overhead_s x 1/4 of the prompt's sequence) = 4 step_overhead_s + seq_overhead_s; the
    round is four rounds of a quarter prompt each (the same attention per token: the chunks' causal attention adds
    up to the prompt's), at least 3 step overheads longer than one unchunked pass."""
    s = h100_vllm
    assert s.token_budget == 8192
    p = ServePlans(1, 1, 1, 1)
    rnd, br = step_time(s, p, 1.0, 32768, "prefill", input_len=32768)
    c = s.calib
    assert float(br["step_overhead"]) == pytest.approx(4 * c.step_overhead_s + c.seq_overhead_s, rel=1e-12)
    one = setup_for(s.arch, s.system, stack=s.stack, max_batched_tokens=10 ** 9)   # no chunking
    rnd1, _ = step_time(one, p, 1.0, 32768, "prefill", input_len=32768)
    quarter, _ = step_time(one, p, 0.25, 32768, "prefill", input_len=32768)
    assert float(rnd) == pytest.approx(4 * float(quarter), rel=1e-12)
    assert float(rnd) - float(rnd1) >= 3 * c.step_overhead_s


def test_the_budget_is_per_scheduler(h100_vllm):
    """Eight data-parallel replicas of 8,192 tokens each: 65,536 prompt tokens per instance in one step each."""
    s = h100_vllm
    p = ServePlans(8, 1, 1, 1)
    _, br = step_time(s, p, 8.0, 8192, "prefill", input_len=8192)
    assert float(br["step_overhead"]) == pytest.approx(s.calib.step_overhead_s + s.calib.seq_overhead_s, rel=1e-12)


def test_decode_budget_cap_by_hand():
    """vLLM V1 on one H100 (8,192), no draft, 1,024 outputs: 4,096-token prompts -> 8,192 / (1 + 4) = 1,638.4;
    16,384-token prompts -> 8,192 / 17 = 481.88 sequences; two replicas double it."""
    p = ServePlans(np.array([1.0, 1.0, 2.0]), 1, 1, 1)
    cap = token_budget_cap(p, 8192, np.array([5.0, 17.0, 17.0]))
    assert cap == pytest.approx([1638.4, 8192 / 17, 2 * 8192 / 17])
    assert np.all(np.isinf(token_budget_cap(p, None, 5.0)))


def _aggregated(**serving):
    return {"name": "short-outputs", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 1,
            "serving": {"phase": "both", "stack": "vllm", "input_len": 2048, "output_len": 16, **serving}}


def test_aggregated_decode_batch_is_capped_by_the_budget(tmp_path):
    """2,048-token prompts, 16 outputs on one H100 under vLLM V1: every running sequence brings 1 decode token and
    2,048 / 16 = 128 prompt tokens a step, so at most 8,192 / 129 = 63.5 run (the KV cache holds some 240 of
    2,056 tokens, max_num_seqs 1,024); a stated budget of 65,536 lifts the cap to 508."""
    d = infer_json(tmp_path, _aggregated())
    assert d["max_batched_tokens"] == 8192
    assert d["decode"]["batch_per_instance"] <= 8192 / 129 + 1e-9
    big = infer_json(tmp_path, _aggregated(max_batched_tokens=65536))
    assert big["max_batched_tokens"] == 65536
    assert big["decode"]["batch_per_instance"] > 8192 / 129


def test_a_stated_budget_overrides_the_stack(tmp_path):
    body = {"name": "p", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 1,
            "serving": {"phase": "prefill", "stack": "sglang", "input_len": 4096, "max_batched_tokens": 2048}}
    assert infer_json(tmp_path, body)["max_batched_tokens"] == 2048
    del body["serving"]["max_batched_tokens"]
    assert infer_json(tmp_path, body)["max_batched_tokens"] == 8192


@pytest.mark.parametrize("value", [0, -8192, "lots", 1.5])
def test_bad_budget_is_one_line_exit_2(tmp_path, value):
    body = {"name": "p", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 1,
            "serving": {"phase": "prefill", "input_len": 4096, "max_batched_tokens": value}}
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(body))
    r = trainsim_cli("infer", str(p))
    assert r.returncode == 2
    assert "serving.max_batched_tokens" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_a_chunked_round_holds_one_chunks_activations(h100_vllm):
    """65,536 prompt tokens per H100 in one round: under vLLM V1's 8,192 a step holds 8,192 tokens' activations,
    1/8 of the unchunked round's (activations scale with the step's tokens, inference/step.py
    prefill_activation_bytes); the KV cache is the whole round's either way."""
    from trainsim.inference.search import evaluate_prefill
    s = h100_vllm
    p = ServePlans(np.array([1.0]), np.array([1.0]), np.array([1.0]), np.array([1.0]))
    chunked = evaluate_prefill(s, p, 4096, tokens_per_chip=65536)
    whole = evaluate_prefill(setup_for(s.arch, s.system, stack=s.stack, max_batched_tokens=65536), p, 4096,
                             tokens_per_chip=65536)
    assert float(chunked.memory["activations"][0]) == pytest.approx(float(whole.memory["activations"][0]) / 8,
                                                                    rel=1e-12)
    assert float(chunked.memory["kv_cache"][0]) == pytest.approx(float(whole.memory["kv_cache"][0]), rel=1e-12)
