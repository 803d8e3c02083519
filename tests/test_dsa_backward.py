"""DeepSeek-V4's sparse-attention (DSA) backward runs at the measured rate of the kernel Megatron-Core calls.

Megatron-LM 43e45e1307 (the dev pin of Megatron-Bridge v0.6.0) runs one sparse-attention call per DeepSeek-V4 layer
(experimental_attention_variant/csa.py: window indices and compressed indices concatenated into one list per
query): FlashMLA's forward, cuDNN Frontend's ``sparse_attention_backward_wrapper`` backward (csa_kernels.py).
NVIDIA's own measurements of that backward (independent of this engine):

* GB200, DeepSeek-V4-Flash shape (H 64, d 512, K = 128 + 512 = 640, s 4096): 1.423 ms, 603.646 TFLOP/s; GB300
  1.431 ms, 600.218 TFLOP/s (NVIDIA/cudnn-frontend benchmark/dsa/results/deepseek_v4/{gb200,gb300}/*.csv);
* B200 sweep at s 4096, H 64, d 512: K 128 / 512 / 1024 / 2048 -> 305.09 / 552.87 / 625.35 / 659.46 TFLOP/s
  (benchmark/dsa/README.md);
* H200, Flash shape: 321.222 TFLOP/s.

TFLOP/s count 2 s H K (3 d_qk + 2 d_v) = 2.5 x the forward's 2 s H K (d_qk + d_v).
"""
from __future__ import annotations

import pytest

from trainsim.perf.compute import attention_bwd, attention_fwd, dsa_bwd_rate, dsa_call_keys
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import load_run, parse_run

RUN = "validation/runs/megatron-bridge-2608-dsv4-flash-{}-128-mxfp8.yaml"
S = 4096


def _ctx(chip: str = "gb200"):
    run = load_run(RUN.format(chip))
    return run, context(run), plans_from_spec(run.plan, run.chips, run.arch)


def _layer(run, name: str):
    return next(lk for lk in run.arch.layers if lk.name == name)


def test_rate_matches_nvidia_measurements():
    _, ctx, _ = _ctx("gb200")
    # hand: 2500 TFLOP/s x 0.306 x 640 / (640 + 170) = 604.44 TFLOP/s
    assert dsa_bwd_rate(ctx, 640.0) == pytest.approx(2500e12 * 0.306 * 640 / 810, rel=1e-12)
    assert dsa_bwd_rate(ctx, 640.0) == pytest.approx(603.646e12, rel=0.01)
    _, ctx3, _ = _ctx("gb300")
    assert dsa_bwd_rate(ctx3, 640.0) == pytest.approx(600.218e12, rel=0.01)
    # the list-length shape: K 128 against K 2048 on the B200 sweep (305.09 / 659.46 = 0.4626; model 0.4653)
    assert dsa_bwd_rate(ctx, 128.0) / dsa_bwd_rate(ctx, 2048.0) == pytest.approx(305.09 / 659.46, rel=0.01)
    # and K 512 / K 1024 (552.87 / 625.35 = 0.8841; model 0.8847)
    assert dsa_bwd_rate(ctx, 512.0) / dsa_bwd_rate(ctx, 1024.0) == pytest.approx(552.87 / 625.35, rel=0.01)


def test_hopper_rate_is_the_h200_measurement():
    run = parse_run({"model": "deepseek-v4-flash", "system": "dgx-h100", "chips": 8,
                     "training": {"seq_len": S, "global_batch_seqs": 8, "precision": "bf16"},
                     "plan": {"tp": 1, "pp": 1, "ep": 8, "micro_batch": 1}})
    ctx = context(run)
    # 989 TFLOP/s x 0.411 x 640 / 810 = 321.2 TFLOP/s
    assert dsa_bwd_rate(ctx, 640.0) == pytest.approx(321.222e12, rel=0.01)


def test_call_keys_of_each_layer_kind():
    run, _, _ = _ctx()
    csa, hca, sl = _layer(run, "csa/moe"), _layer(run, "hca/moe"), _layer(run, "sliding/hash/moe")
    # CSA: window 128 + indexer top-k 512 on the window core and the top-k core; the indexer core is no DSA call
    assert [dsa_call_keys(c, S) for c in csa.attention] == [640.0, 640.0, 0.0]
    # HCA: window 128 + every compressed entry, s / 128: 32 at 4096, 64 at 8192
    assert [dsa_call_keys(c, S) for c in hca.attention] == [160.0, 160.0]
    assert dsa_call_keys(hca.attention[0], 8192) == 192.0
    assert [dsa_call_keys(c, S) for c in sl.attention] == [128.0]
    mtp = run.arch.mtp[0]   # V4-Flash's MTP block: compress_ratios[43] = 0, window only
    assert [dsa_call_keys(c, S) for c in mtp.attention] == [128.0]


def test_csa_layer_backward_by_hand():
    """One CSA layer, one micro-batch of 4,096 tokens on a GB200 (tp 1).

    DSA call: causal mean keys of the window core 128 - 128 x 127 / 8192 = 126.015625 and of the top-k core
    512 - 512 x 511 / 8192 = 480.0625; forward FLOPs 2 x 64 x (512 + 512) x 606.078125 x 4096 = 325.37 GFLOP,
    backward 2.5 x that at 604.44 TFLOP/s = 1.3457 ms. The indexer core (64 heads, q k 128 / 4 = 32, no value,
    causal over the sequence) keeps the flash backward of Blackwell's cuDNN kernel: 2.5 x 1.288 = 3.22 x its
    forward, 2 x 64 x 32 x 2048.5 x 4096 FLOPs at 2500 x 0.715 x 4096 / (4096 + 1215) TFLOP/s (constants.yaml
    families.nvidia-blackwell, NVIDIA's GB200 cuDNN 9.17 sweep; tests/test_attention_rates.py).
    """
    run, ctx, p = _ctx()
    lk = _layer(run, "csa/moe")
    tokens = float(S)
    dsa_flops = 2 * 64 * 1024 * (126.015625 + 480.0625) * tokens
    dsa_s = 2.5 * dsa_flops / (2500e12 * 0.306 * 640 / 810)
    idx_flops = 2 * 64 * 32 * (S + 1) / 2 * tokens
    idx_s = 2.5 * 1.288 * idx_flops / (2500e12 * 0.715 * S / (S + 1215))
    assert float(attention_bwd(lk, ctx, p, tokens)[0]) == pytest.approx(dsa_s + idx_s, rel=1e-9)
    # against NVIDIA's 1.423 ms for the whole 640-entry list: the engine counts the causal mean (606 of 640
    # entries per query), 606.078 / 640 = 0.947 of it
    assert dsa_s / 1.423e-3 == pytest.approx(606.078125 / 640, rel=0.01)


def test_flash_cores_keep_their_ratio():
    """A model without DSA cores: backward = attn_bwd_ratio x forward, as before: on an H100 2.5 x 1.218 = 3.045
    (Hopper's cuDNN kernel, constants.yaml families.nvidia-hopper)."""
    run = parse_run({"model": {"name": "t", "layers": 2, "hidden": 2048, "heads": 16, "ffn": 8192,
                               "ffn_act": "gelu", "vocab": 51200},
                     "system": "dgx-h100", "chips": 8,
                     "training": {"seq_len": S, "global_batch_seqs": 8, "precision": "bf16"},
                     "plan": {"tp": 1, "pp": 1, "cp": 1, "micro_batch": 1, "zero": 0, "recompute": "none"}})
    ctx, p = context(run), plans_from_spec(run.plan, run.chips, run.arch)
    lk = run.arch.layers[0]
    assert all(c.dsa_keys == 0 for c in lk.attention)
    f = float(attention_fwd(lk, ctx, p, float(S))[0])
    assert float(attention_bwd(lk, ctx, p, float(S))[0]) == pytest.approx(2.5 * 1.218 * f, rel=1e-12)
