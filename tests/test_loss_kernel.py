"""The loss over the logits costs HBM traffic by loss kernel (perf/compute.py cross_entropy_bytes_per_logit).

Hand counts, reads + writes per logit (token x vocab entry on one chip), from the kernels' sources:

* Megatron-Core unfused vocab-parallel cross entropy (megatron/core/tensor_parallel/cross_entropy.py at
  NVIDIA/Megatron-LM f2e5db40, the default without --cross-entropy-loss-fusion): forward .float() 2+4, max 4,
  in-place subtract 4+4, exp 4+4, sum 4, divide 4+4 = 38; backward in-place multiply 4+4, autograd's cast of the fp32
  gradient to the BF16 input 4+2 = 14: 52 in all.
* Transformer Engine's Triton cross entropy (transformer_engine/pytorch/triton/cross_entropy.py): online-softmax
  pass 2, gradient pass 2+2 = 6; backward in-place scaling 2+2 = 4: 10 in all.

Megatron-Core r0.8.0 GPT 1.7B (vocab 131,072) on H100 (3.35 TB/s, memory-bound kernels at mem_eff 0.8 of it),
tp 1, micro-batch 4 x 4,096 tokens: 16,384 x 131,072 = 2,147,483,648 logits per micro-batch; one micro-batch per
step (192 sequences / dp 48 / 4). The unfused loss costs (52 - 10) x 2,147,483,648 / (3.35e12 x 0.8) = 33.65 ms a
step more than TE's.
"""
from __future__ import annotations

import pytest

from trainsim.perf.compute import cross_entropy_bytes_per_logit
from trainsim.plan_estimate import estimate_complete
from trainsim.spec import parse_run


def test_bytes_per_logit_by_hand():
    assert sum(cross_entropy_bytes_per_logit("none")) == 2 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 6
    assert cross_entropy_bytes_per_logit("te") == (2 + 2 + 2, 2 + 2)
    # every fused kernel moves less than the op-by-op fp32 loss of Megatron-Core
    for impl in ("native", "te", "fp32_upcast"):
        assert sum(cross_entropy_bytes_per_logit(impl)) < sum(cross_entropy_bytes_per_logit("none"))


def test_unknown_loss_kernel_is_an_error():
    with pytest.raises(ValueError, match="cross_entropy_fusion"):
        cross_entropy_bytes_per_logit("liger")


def _step_s(impl: str) -> float:
    doc = {"model": {"name": "gpt-1.7b", "layers": 24, "hidden": 2048, "heads": 16, "ffn": 8192, "ffn_act": "gelu",
                     "vocab": 131072, "tied_embeddings": False},
           "system": "dgx-h100", "chips": 48, "framework": "megatron-core-2024",
           "training": {"seq_len": 4096, "global_batch_seqs": 192, "precision": "bf16",
                        "cross_entropy_fusion": impl},
           "plan": {"tp": 1, "pp": 1, "cp": 1, "zero": 1, "micro_batch": 4, "recompute": "none", "schedule": "1f1b"}}
    run = parse_run(doc)
    return estimate_complete(run, run.plan).step_time_s


def test_unfused_loss_step_cost_by_hand():
    logits = 4 * 4096 * 131072
    expect_s = (52.0 - 10.0) * logits / (3.35e12 * 0.8)
    assert expect_s == pytest.approx(0.03365, rel=1e-3)
    assert _step_s("none") - _step_s("te") == pytest.approx(expect_s, rel=1e-6)


def test_torch_bf16_loss_by_hand():
    # NeMo AutoModel MaskedCrossEntropy(fp32_upcast=False): F.cross_entropy on the BF16 logits. Forward log_softmax
    # (vocab wider than shared memory): max pass 2, sum-of-exp pass 2, output 2 + 2; backward: nll_loss_backward's
    # zero gradient 2, _log_softmax_backward_data's sum pass 2, then grad 2 + output 2 read, 2 written.
    assert cross_entropy_bytes_per_logit("torch_bf16") == (2 + 2 + 2 + 2, 2 + 2 + 2 + 2 + 2)
    # the GPT 1.7B step above: (52 - 18) bytes per logit less than Megatron-Core's unfused loss
    logits = 4 * 4096 * 131072
    expect_s = (52.0 - 18.0) * logits / (3.35e12 * 0.8)
    assert expect_s == pytest.approx(0.02724, rel=1e-3)
    assert _step_s("none") - _step_s("torch_bf16") == pytest.approx(expect_s, rel=1e-6)


def test_torch_bf16_logit_peak_bytes():
    # at the loss backward: the saved BF16 log-softmax output, nll_loss_backward's BF16 gradient and the BF16
    # gradient _log_softmax_backward_data returns: 3 x 2 = 6 bytes per logit; under pipelining + the BF16 stage
    # output the schedule's fwd_cache keeps (2): 8. Half the fp32-upcast counts (12, 14).
    import numpy as np
    from dataclasses import replace as dreplace
    from trainsim.parallel.plan import Plans
    from trainsim.perf.memory import logit_peak_bytes
    from trainsim.plan_estimate import context
    doc = {"model": {"name": "gpt-1.7b", "layers": 24, "hidden": 2048, "heads": 16, "ffn": 8192, "ffn_act": "gelu",
                     "vocab": 131072, "tied_embeddings": False},
           "system": "dgx-h100", "chips": 48, "framework": "megatron-core-2024",
           "training": {"seq_len": 4096, "global_batch_seqs": 192, "precision": "bf16"}}
    ctx = context(parse_run(doc))
    p = Plans.from_columns(tp=np.array([1, 1]), pp=np.array([1, 4]), vpp=1, ep=1, etp=1, cp=1, dp=1, zero=0,
                           recompute=0, mb=1, schedule=0, node_limit=0)
    assert list(logit_peak_bytes(dreplace(ctx, cross_entropy_fusion="torch_bf16"), p)) == [6.0, 8.0]
    assert list(logit_peak_bytes(dreplace(ctx, cross_entropy_fusion="fp32_upcast"), p)) == [12.0, 14.0]
