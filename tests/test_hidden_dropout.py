"""Hidden (residual) dropout is counted only where the run had it (``training.hidden_dropout``).

Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", arXiv 2205.05198) sec. 4.1
count a GPT layer's stored activations in 16-bit training, per s b (sequence x micro-batch):

* attention block 11 h: Q K V input 2h, Q and K 4h, V 2h, output-projection input 2h, the hidden-dropout mask 1h
  (+ 5 a s for the unfused core's softmax output, attention-dropout mask and output);
* MLP block 19 h: first linear input 2h, GeLU input 8h, GeLU output 8h, the hidden-dropout mask 1h;
* two layer norms 4h.

34 s b h + 5 a s^2 b in all; with tensor + sequence parallelism everything is split over t (their eq. 4), and
selective recompute of the core attention leaves 34 s b h / t (their Table 2). The two 1-byte masks (2 s b h) exist
only at hidden dropout p > 0: PyTorch's dropout returns its input at p = 0 (pytorch/pytorch
aten/src/ATen/native/Dropout.cpp at 92426d68, ``_dropout_impl``).

Time, per element of each of the two sublayer outputs, in Megatron's fused bias-dropout-add: the forward also writes
the 1-byte mask (1), the backward reads the output gradient and the mask and writes the masked gradient
(2 + 1 + 2 = 5), where at p = 0 the residual add's gradient passes through with no kernel.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from trainsim.errors import TrainsimError
from trainsim.frameworks import frameworks, runtime_settings
from trainsim.perf.compute import elementwise_fwd, residual_bytes_per_token
from trainsim.perf.memory import layer_activation_bytes
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import load_run, parse_run

RUNS = Path(__file__).resolve().parent.parent / "validation" / "runs"

# GPT-3 175B (Korthikanti Table 1 / 3): h 12,288, a 96 heads, s 2,048, t 8
H, A, S, T = 12288, 96, 2048, 8


def _run(hidden_dropout=None, recompute="selective", attention="unfused", attention_dropout=0.1,
         framework="megatron-lm-2022"):
    tr = {"seq_len": S, "global_batch_seqs": 8, "precision": "bf16", "attention": attention,
          "attention_dropout": attention_dropout}
    if hidden_dropout is not None:
        tr["hidden_dropout"] = hidden_dropout
    run = parse_run({"model": {"name": "gpt3", "layers": 2, "hidden": H, "heads": A, "ffn": 4 * H,
                               "ffn_act": "gelu", "vocab": 51200},
                     "system": "dgx-a100", "chips": 8, "framework": framework, "training": tr,
                     "plan": {"tp": T, "pp": 1, "cp": 1, "micro_batch": 1, "zero": 0, "recompute": recompute}})
    return run, context(run), plans_from_spec(run.plan, run.chips, run.arch)


def _kept(hidden_dropout, recompute="selective", sequence_parallel=True, **kw) -> float:
    run, ctx, p = _run(hidden_dropout, recompute, **kw)
    ctx = replace(ctx, tp_allreduce=not sequence_parallel)
    kept, _ = layer_activation_bytes(run.arch.layers[0], ctx, p, np.array([float(S)]))
    return float(np.ravel(kept)[0])


def test_korthikanti_34_sbh_by_hand():
    attention = 2 + 4 + 2 + 2 + 1     # QKV input, Q and K, V, out-projection input, dropout mask
    mlp = 2 + 8 + 8 + 1               # fc1 input, GeLU input, GeLU output (fc2 input), dropout mask
    norms = 2 + 2
    assert (attention, mlp, attention + mlp + norms) == (11, 19, 34)
    sbh = S * H                       # b = 1
    # Table 2, tensor + sequence parallel + selective recompute: s b h 34 / t
    assert _kept(0.1) == pytest.approx(34 * sbh / T, rel=1e-12)
    # tensor + sequence parallel, no recompute: s b h (34 / t + 5 a s / (h t))
    assert _kept(0.1, "none") == pytest.approx(sbh * (34 / T + 5 * A * S / (H * T)), rel=1e-12)
    # without hidden dropout the two 1-byte masks go: 32 s b h / t
    assert _kept(0.0) == pytest.approx(32 * sbh / T, rel=1e-12)


def test_korthikanti_table_2_without_sequence_parallelism():
    # tensor parallelism alone (Megatron-LM before v3.0, the stack flag tp_allreduce): the two norm inputs (4),
    # the two column-parallel GEMM inputs (2 + 2) and the two hidden-dropout masks (1 + 1) are whole on every rank,
    # the other 24 s b h split: eq. 3, s b h (10 + 24 / t + 5 a s / (h t)); + selective recompute s b h (10 + 24 / t);
    # full recompute keeps the whole layer input, s b h 2
    whole = 4 + 2 + 2 + 1 + 1
    assert (whole, 34 - whole) == (10, 24)
    sbh = S * H
    assert _kept(0.1, "none", False) == pytest.approx(sbh * (10 + 24 / T + 5 * A * S / (H * T)), rel=1e-12)
    assert _kept(0.1, "selective", False) == pytest.approx(sbh * (10 + 24 / T), rel=1e-12)
    assert _kept(0.1, "full", False) == pytest.approx(2 * sbh, rel=1e-12)
    assert _kept(0.0, "selective", False) == pytest.approx(sbh * (8 + 24 / T), rel=1e-12)


def test_full_recompute_keeps_no_mask():
    # full recompute keeps the layer input only (2 s b h, / t under sequence parallelism), masks or not
    assert _kept(0.1, "full") == _kept(0.0, "full") == pytest.approx(2 * S * H / T, rel=1e-12)


def test_bias_dropout_add_bytes_by_hand():
    fwd = 2 * 1            # the 1-byte mask written, attention and MLP outputs
    bwd = 2 * (2 + 1 + 2)  # read the output gradient and the mask, write the masked gradient
    # the engine charges the forward figure once forward and twice backward: (fwd + bwd) / 3 in it
    per_h = (fwd + bwd) / 3
    assert per_h == 4
    assert residual_bytes_per_token(1, H, True, 0.1) - residual_bytes_per_token(1, H, True, 0.0) == 4 * H
    # serving runs in eval mode: no dropout
    assert residual_bytes_per_token(1, H, False, 0.1) == residual_bytes_per_token(1, H, False, 0.0) == 12 * H
    run, c01, p = _run(0.1)
    _, c0, _ = _run(0.0)
    tokens = float(S)
    bw = c0.chip.hbm_bw * c0.calib.mem_eff
    lk = run.arch.layers[0]
    diff = float(np.ravel(elementwise_fwd(lk, c01, p, tokens) - elementwise_fwd(lk, c0, p, tokens))[0])
    assert diff == pytest.approx(tokens / T * per_h * H / bw, rel=1e-9)   # split over tp (sequence parallel)


def test_stack_defaults():
    # Megatron-LM's --hidden-dropout default 0.1 (megatron/arguments.py at v2.5 e269e20064); Megatron-Bridge's
    # model bridges set 0.0 (llama_bridge.py:55 at 067f987df)
    _, c_old, _ = _run(framework="megatron-lm-2022")
    assert c_old.hidden_dropout == 0.1
    _, c_new, _ = _run(attention="flash", framework="megatron-bridge-2026")
    assert c_new.hidden_dropout == 0.0
    for fw, prof in frameworks().items():
        if "hidden_dropout" in (prof.get("defaults") or {}):
            assert prof["hidden_dropout_source"].strip(), fw
            assert runtime_settings(None, fw)["hidden_dropout"] == prof["defaults"]["hidden_dropout"]


def test_bad_probability_is_refused():
    with pytest.raises(TrainsimError) as e:
        _run(hidden_dropout=1.0)
    assert "hidden_dropout" in str(e.value)


@pytest.mark.parametrize("name,p", [
    ("gpt-neox-20b-96", 0.0),                   # configs/20B.yml 'hidden-dropout': 0
    ("opt-175b-992", 0.1),                      # metaseq opt_baselines.py --dropout 0.1
    ("nemo-2407-gpt3-5b-h100-64-fp8", 0.1),     # NeMo-Framework-Launcher 24.07 gpt3/5b.yaml hidden_dropout: 0.1
    ("nemo-2407-gpt3-175b-h100-128-fp8", 0.0),  # 175b_mlperf.yaml hidden_dropout: 0.0
    ("nemo-2407-llama2-7b-h100-8-fp8", 0.0),    # llama/llama2_7b.yaml hidden_dropout: 0.0
])
def test_runs_state_their_sources_value(name, p):
    run = load_run(RUNS / f"{name}.yaml")
    assert run.training.hidden_dropout == p
