"""An output head computed in FP32 (``training.head_precision: fp32``): BloombergGPT's 'FP32 precision in LM-head'
(arXiv 2303.17564 App. C.2, the v2.0 run whose 32.5 s step the paper reports), which PyTorch from 1.12 runs on the
A100's CUDA cores (no TF32 by default). Against hand derivations written here, NVIDIA's A100 FP32 figure and
PyTorch's own GA100 measurement."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from conftest import trainsim_cli
from trainsim.api import parse_run
from trainsim.perf.compute import head_gemm_fwd
from trainsim.plan_estimate import context, estimate_complete, plans_from_spec

BB = "validation/runs/bloomberggpt-50b-512.yaml"
# BloombergGPT per GPU and micro-batch: 4 sequences of 2,048 tokens (one micro-batch a step), vocabulary 131,072,
# hidden 7,680 (App. A.5)
M, N, K = 4 * 2048, 131072, 7680


def _bb(head: str | None = None, attention_dropout: float | None = None):
    """BloombergGPT at its plan, with the head precision the file states (None) or ``head``, and its attention
    dropout (0, App. C) or ``attention_dropout``."""
    spec = yaml.safe_load(open(BB).read())
    spec["plan"].update(tp=1, pp=1, cp=1, zero=3, recompute="full", micro_batch=4, schedule="1f1b")
    if head is not None:
        spec["training"]["head_precision"] = head
    if attention_dropout is not None:
        spec["training"]["attention_dropout"] = attention_dropout
    run = parse_run(spec)
    return run, context(run), plans_from_spec(run.plan, run.chips, run.arch)


def _one(x) -> float:
    return float(np.ravel(x)[0])


def test_a100_fp32_rate_and_pytorch_measurement():
    """NVIDIA's Hopper architecture blog, Table 3 (A100 column): Peak FP32 TFLOPS (non-Tensor) 19.5 against BF16
    Tensor 312, 1/16. PyTorch's TF32 note times a 10,240^3 FP32 matmul without TF32 at 0.11 s on GA100:
    2 x 10,240^3 / 0.11 s = 19.52 TFLOP/s, the peak itself (the constant gemm_eff_fp32 1.0)."""
    run, ctx, _ = _bb("fp32")
    chip = run.system.chip
    assert chip.id == "nvidia-a100-sxm4-40gb"
    assert chip.peak_flops["fp32"] == pytest.approx(19.5e12)
    assert chip.peak_flops["bf16"] / chip.peak_flops["fp32"] == pytest.approx(16.0)
    measured = 2 * 10240 ** 3 / 0.11
    assert measured / 19.5e12 == pytest.approx(ctx.calib.gemm_eff_fp32, abs=0.05)


def test_bloomberggpt_states_the_fp32_head():
    run, ctx, _ = _bb()   # as the run file states it
    assert run.training.head_precision == "fp32" and ctx.head_precision == "fp32"
    assert _bb("bf16")[1].head_precision == "bf16"


def test_fp32_head_gemm_by_hand():
    """Forward logits GEMM of one micro-batch in FP32: 2 M N K = 2 x 8,192 x 131,072 x 7,680 = 1.6492e13 FLOP at
    19.5 TFLOP/s = 0.8457 s; its bytes, (M K + K N + M N) x 4 = 8.57 GB at 0.8 x 1.555 TB/s, take 6.9 ms, so
    compute-bound; plus the 4 us launch. In BF16 the same GEMM is 1/16 of the FP32 time divided by the GEMM
    efficiency (0.70 on Ampere) and its tile / epilogue factor: 0.075 s / ~0.85, under 0.1 s."""
    flops = 2.0 * M * N * K
    assert flops == pytest.approx(1.6492e13, rel=1e-4)
    _, ctx, p = _bb("fp32")
    t32 = _one(head_gemm_fwd(ctx, p, np.array([float(M)])))
    assert t32 == pytest.approx(flops / 19.5e12 + 4e-6, rel=1e-6)
    assert t32 == pytest.approx(0.8457, abs=5e-4)
    assert (M * K + K * N + M * N) * 4 / (0.8 * 1.555e12) < 0.01 * t32
    _, ctx16, p16 = _bb("bf16")
    t16 = _one(head_gemm_fwd(ctx16, p16, np.array([float(M)])))
    assert 0.07 < t16 < 0.1


def test_fp32_head_adds_three_gemms_to_bloomberggpts_step():
    """The head is not inside the checkpointed transformer layers (sec. 3.4: checkpointing 'to each transformer
    layer'), so each step runs its forward and two backward GEMMs once (one micro-batch a step): the step grows by
    3 x (0.8457 - t_bf16) = 2.3 s, 23.1 -> 25.4 s against the measured 32.5 s with a dropout pass over the scores;
    the run's attention dropout 0 (App. C: 0.0 until v2.2) takes that pass out, 15 bytes per head, query and key
    (5 forward, 5 in the recomputed forward, 5 backward; tests/test_attention_dropout.py) x 40 heads x 2,048 keys
    x 8,192 tokens x 70 layers = 7.05e11 bytes over the A100 40GB's HBM (1.555 TB/s x mem_eff): about 0.5 s."""
    run32, c32, p = _bb("fp32")
    run16, c16, _ = _bb("bf16")
    e32 = estimate_complete(run32, run32.plan)
    e16 = estimate_complete(run16, run16.plan)
    tok = np.array([float(M)])
    extra = 3.0 * (_one(head_gemm_fwd(c32, p, tok)) - _one(head_gemm_fwd(c16, p, tok)))
    assert extra == pytest.approx(2.3, abs=0.05)
    assert float(e32.step_time_s) - float(e16.step_time_s) == pytest.approx(extra, rel=0.01)
    run_d, c_d, _ = _bb("fp32", attention_dropout=0.1)
    e_d = estimate_complete(run_d, run_d.plan)
    assert 25.0 < float(e_d.step_time_s) < 26.0
    drop_bytes = 15 * 40 * 2048 * 8192 * 70
    assert drop_bytes == pytest.approx(7.05e11, rel=1e-3)
    assert float(e_d.step_time_s) - float(e32.step_time_s) == pytest.approx(
        drop_bytes / (1.555e12 * c_d.calib.mem_eff), rel=0.02)


def test_fp32_head_on_a_chip_without_an_fp32_rate_is_bad_input(tmp_path):
    """A chip whose catalog entry states no FP32 (non-Tensor) rate cannot price an FP32 head: one line, exit 2."""
    spec = yaml.safe_load(open(BB).read())
    spec["system"]["chip"] = "nvidia-h100-sxm5"
    spec["plan"].update(tp=1, pp=1, cp=1, schedule="1f1b", micro_batch=4)
    f = tmp_path / "h100-fp32-head.yaml"
    f.write_text(yaml.safe_dump(spec))
    r = trainsim_cli("estimate", str(f))
    assert r.returncode == 2, r.stderr
    assert "head_precision" in r.stderr and "fp32_dense_tflops" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_fp32_head_memory_by_hand():
    """What an FP32 head holds at the loss beyond a BF16 one (perf/memory.py fp32_head_bytes), BloombergGPT per
    micro-batch: autograd keeps the FP32 copy of the tied W_em (4 x 131,072 x 7,680 = 4.027 GB) and of the head
    input (4 x 8,192 x 7,680 = 0.252 GB) for the two backward GEMMs, and the logits are FP32 where the loss count
    (Megatron-style 'none': BF16 logits 2 + FP32 softmax 4) holds BF16 ones: 2 x 8,192 x 131,072 = 2.147 GB;
    6.426 GB in all, with the allocator margin 8% on top. The run still fits its 40 GB (40 GiB) A100."""
    from trainsim.perf.memory import memory_breakdown
    by_hand = 4 * N * K + 4 * M * K + 2 * M * N
    assert by_hand == 6_425_673_728
    run32, c32, p = _bb("fp32")
    _, c16, _ = _bb("bf16")
    tokens, m = np.array([float(M)]), np.array([1.0])
    a32 = _one(memory_breakdown(c32, p, tokens, m)["activations"])
    a16 = _one(memory_breakdown(c16, p, tokens, m)["activations"])
    assert a32 - a16 == pytest.approx(by_hand, rel=1e-12)
    total = _one(memory_breakdown(c32, p, tokens, m)["total"])
    assert total < run32.system.chip.hbm_bytes == 40 * 2**30
