"""Attention dropout is priced only where the run had it (``training.attention_dropout``).

PyTorch's dropout at p = 0 launches no kernel and returns its input (pytorch/pytorch
aten/src/ATen/native/Dropout.cpp at 92426d68: ``dropout`` takes the fused kernel only when
``is_fused_kernel_acceptable`` (p > 0 and p < 1), and ``_dropout_impl`` returns ``input`` when p == 0). Megatron-LM's
unfused core (megatron/model/transformer.py CoreAttention: baddbmm Q K^T, fused scale-mask-softmax,
``attention_dropout``, bmm with V) at p = 0 therefore has, per head, query and key, in BF16:

* forward: write the score S (2) + softmax read and write (2 + 2) + the AV GEMM reads P (2) = 8
  (with dropout: + read P, write the dropout output, write the 1-byte mask = 2 + 2 + 1 = 5 -> 13);
* backward: write dP = dO V^T (2) + the dV GEMM reads P (2) + softmax backward reads dP and P and writes dS
  (2 + 2 + 2 = 6) + dQ and dK each read dS (2 + 2 = 4) = 14
  (with dropout: + read dP and the mask, write the masked gradient = 2 + 1 + 2 = 5 -> 19).

Stored for the backward (Korthikanti et al. 2022 sec. 4.1: softmax output 2 a s^2 b, dropout mask a s^2 b, dropout
output 2 a s^2 b = 5 a s^2 b): at p = 0 the AV GEMM saves the softmax output itself, 2 a s^2 b.

Example: GPT layer h = 2048, a = 16 heads, s = 2048 on an A100 (megatron-lm-2021 stack, the unfused core).
"""
from __future__ import annotations

import pytest

from trainsim.errors import TrainsimError
from trainsim.perf.compute import attention_bwd, attention_fwd, unfused_score_bytes_per_token
from trainsim.perf.memory import _tensors
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import load_run, parse_run

H, A, S = 2048, 16, 2048


def _run(attention: str = "unfused", dropout: float | None = None):
    tr = {"seq_len": S, "global_batch_seqs": 8, "precision": "bf16", "attention": attention}
    if dropout is not None:
        tr["attention_dropout"] = dropout
    run = parse_run({"model": {"name": "t", "layers": 2, "hidden": H, "heads": A, "ffn": 4 * H, "ffn_act": "gelu",
                               "vocab": 51200},
                     "system": "dgx-a100", "chips": 8, "framework": "megatron-lm-2021", "training": tr,
                     "plan": {"tp": 1, "pp": 1, "cp": 1, "micro_batch": 1, "zero": 0, "recompute": "none"}})
    return run, context(run), plans_from_spec(run.plan, run.chips, run.arch)


def test_score_bytes_without_dropout_by_hand():
    lk = _run()[0].arch.layers[0]
    fwd_p0 = 2 + (2 + 2) + 2            # S written, softmax read + write, P read by the AV GEMM
    bwd_p0 = 2 + 2 + (2 + 2 + 2) + (2 + 2)   # dP written, P read for dV, softmax backward, dS read twice
    drop_fwd, drop_bwd = 2 + 2 + 1, 2 + 1 + 2
    assert (fwd_p0, bwd_p0) == (8, 14)
    assert (fwd_p0 + drop_fwd, bwd_p0 + drop_bwd) == (13, 19)
    assert unfused_score_bytes_per_token(lk, S, attention_dropout=0.0) == 8 * A * S == 262_144
    assert unfused_score_bytes_per_token(lk, S, backward=True, attention_dropout=0.0) == 14 * A * S == 458_752
    assert unfused_score_bytes_per_token(lk, S, attention_dropout=0.1) == 13 * A * S
    assert unfused_score_bytes_per_token(lk, S, backward=True, attention_dropout=0.1) == 19 * A * S


def test_engine_time_drops_by_the_dropout_bytes_only_at_zero():
    run, c01, p = _run(dropout=0.1)
    _, c0, _ = _run(dropout=0.0)
    lk = run.arch.layers[0]
    tokens = float(S)
    bw = c0.chip.hbm_bw * c0.calib.mem_eff
    saved = tokens * 5 * A * S / bw            # 5 bytes per head and key each way, over HBM
    assert float(attention_fwd(lk, c01, p, tokens)[0] - attention_fwd(lk, c0, p, tokens)[0]) == \
        pytest.approx(saved, rel=1e-9)
    assert float(attention_bwd(lk, c01, p, tokens)[0] - attention_bwd(lk, c0, p, tokens)[0]) == \
        pytest.approx(saved, rel=1e-9)
    # unstated: the stack's launcher default, Megatron-LM's --attention-dropout 0.1 (the dropout pass priced)
    _, cd, _ = _run()
    assert cd.attention_dropout == 0.1
    assert float(attention_fwd(lk, cd, p, tokens)[0]) == float(attention_fwd(lk, c01, p, tokens)[0])


def test_flash_attention_is_unaffected():
    run, c01, p = _run("flash", 0.1)
    _, c0, _ = _run("flash", 0.0)
    lk = run.arch.layers[0]
    assert float(attention_fwd(lk, c01, p, 2048.0)[0]) == float(attention_fwd(lk, c0, p, 2048.0)[0])
    assert float(attention_bwd(lk, c01, p, 2048.0)[0]) == float(attention_bwd(lk, c0, p, 2048.0)[0])


def test_stored_scores_without_dropout():
    run, c01, _ = _run(dropout=0.1)
    _, c0, _ = _run(dropout=0.0)
    lk = run.arch.layers[0]
    kept01, kept0 = ({t.name: t.bytes_per_token for t in _tensors(lk, ctx)}["unfused scores"] for ctx in (c01, c0))
    assert kept01 == 5 * A * S                # Korthikanti's 5 a s^2 b per sequence: 5 a s per token
    assert kept0 == 2 * A * S                 # the softmax output alone


def test_bad_probability_is_refused():
    with pytest.raises(TrainsimError) as e:
        _run(dropout=1.5)
    assert "attention_dropout" in str(e.value)


@pytest.mark.parametrize("name,p", [("gpt-neox-20b-96", 0.0), ("bloomberggpt-50b-512", 0.0),
                                    ("opt-175b-992", 0.1)])
def test_runs_state_their_sources_value(name, p):
    # GPT-NeoX-20B: configs/20B.yml 'attention-dropout': 0; BloombergGPT: App. C, 0.0 until v2.2 (after the
    # measured v2.0); OPT-175B: metaseq opt_baselines.py --attention-dropout 0.1
    run = load_run(f"validation/runs/{name}.yaml")
    assert run.training.attention_dropout == p
