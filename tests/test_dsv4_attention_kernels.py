"""DeepSeek-V4's memory-bound attention kernels and its ``mla_up_proj`` recompute, as Megatron-Core runs them
(issue 14; Megatron-LM 43e45e1307, the dev pin of Megatron-Bridge v0.6.0,
experimental_attention_variant/deepseek_v4_hybrid_attention.py).

Hand derivation, DeepSeek-V4-Flash (config.json: 64 heads, head_dim 512, qk_rope_head_dim 64), BF16, per token and
layer, forward:
* ``_q_rms_norm`` (lines 39-42, torch.compile, no weight) reads and writes the 64 x 512 = 32,768 query elements:
  4 x 32,768 = 131,072 bytes;
* ``fused_mla_rope_out_of_place`` (line 405) clones the 64 x 512 output before its inverse rotation
  (fused_mla_yarn_rope_apply.py line 484): read + write, 131,072 bytes;
  together 262,144 bytes over a layer without them.
``mla_up_proj`` (lines 691-721, 866-868) reruns q_b (1,024 -> 32,768) and kv (4,096 -> 512), the query norm and
the fused rotary of q and kv in backward. Rotary bytes of the main core (4 bytes per rotated element, the
query's 64 x 64, the output's inverse 64 x 64 counted with it, the key's 64): 4 x (2 x 4,096 + 64) = 33,024;
with the query norm's 131,072: 164,096 bytes per token.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from trainsim.model.load import resolve_model
from trainsim.parallel.plan import Plans
from trainsim.perf.activations import has_up_proj_checkpoint
from trainsim.perf.compute import elementwise_bytes_per_token, hbm_time, layer_gemm_fwd
from trainsim.perf.recompute import selective_recompute_fwd

from conftest import ctx_for, make_system


def _plain(lk):
    main = replace(lk.attention[0], q_norm_elems=0.0, out_copy_bytes=0.0)
    return replace(lk, attention=(main,) + lk.attention[1:])


def test_query_norm_and_output_clone_bytes_by_hand():
    arch = resolve_model("deepseek-v4-flash")
    for lk in arch.layers + arch.mtp:
        extra = (elementwise_bytes_per_token(lk, arch.hidden, fp8_cast_bytes=3.0)
                 - elementwise_bytes_per_token(_plain(lk), arch.hidden, fp8_cast_bytes=3.0))
        assert extra == 262_144


def test_up_projection_checkpoint_acts_on_mla_and_dsv4_only():
    assert all(has_up_proj_checkpoint(lk) for lk in resolve_model("deepseek-v4-flash").layers)
    assert all(has_up_proj_checkpoint(lk) for lk in resolve_model("deepseek-v3").layers)
    assert not any(has_up_proj_checkpoint(lk) for lk in resolve_model("llama-3.1-8b").layers)


def _ctx_plan(arch):
    ctx = ctx_for(arch, make_system(bf16=2.5e15, fp8=5e15, hbm=186e9, hbm_bw=8e12, size=72), chips=64, seq=4096,
                  gbs=64, precision="fp8")
    p = Plans.from_columns(tp=1, pp=1, vpp=1, ep=64, etp=1, cp=1, dp=64, zero=1, recompute=0, mb=1, schedule=0,
                           node_limit=0)
    return ctx, p


def test_dsv4_mla_up_proj_recomputes_q_b_kv_norm_and_rotary():
    arch = resolve_model("deepseek-v4-flash")
    ctx, p = _ctx_plan(arch)
    tokens = 4096.0
    for lk in arch.layers:
        t = selective_recompute_fwd(lk, ctx, p, tokens, ("mla_up_proj",))
        gemms = layer_gemm_fwd(replace(lk, matrices=tuple(m for m in lk.matrices if m.name in ("q_b", "kv"))),
                               ctx, p, tokens)
        assert np.asarray(t) == pytest.approx(np.asarray(gemms + hbm_time(164_096 * tokens, ctx)), rel=1e-12)


def test_mla_up_proj_recomputes_nothing_without_an_up_projection():
    arch = resolve_model("llama-3.1-8b")
    ctx, p = _ctx_plan(arch)
    assert selective_recompute_fwd(arch.layers[0], ctx, p, 4096.0, ("mla_up_proj",)) == 0.0
