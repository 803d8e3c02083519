"""HBM traffic of DeepSeek-V4's manifold-constrained hyper-connections (issue 14, Fidelity II).

Hand derivation, forward, BF16 (2 bytes), per token and layer, h = 4,096, n = hc_mult = 4 streams (DeepSeek-V4-Flash
config.json), the kernels Megatron-Core runs per sublayer (Megatron-LM dev d48bd6be0a, hyper_connection.py
``HyperConnectionModule._forward_normal`` + ``fused_h_res_h_post_bda``):
* h_aggregate reads the n-stream residual, writes the sublayer input: 4 x 4,096 + 4,096             = 20,480 elements
* h_post_bda reads it and the sublayer output, writes n h:           4 x 4,096 + 4,096 + 4 x 4,096 = 36,864
  one sublayer: 57,344 elements = 114,688 bytes; attention + MoE: 229,376 bytes. (The mapping projection's read of
  the residual is the hc.* GEMMs' roofline, priced with the layer's GEMMs.)
A plain residual (one stream): 2 adds of 2 reads + 1 write: 6 x 4,096 x 2 = 49,152 bytes.

Backward, the kernels Megatron-LM 43e45e1307 (the dev pin of Megatron-Bridge v0.6.0) runs per sublayer
(fusions/fused_mhc_kernels.py, hyper_connection.py), for n = 4, h = 4,096, in elements:
* h_post_bda, Triton kernel A reads the n h output gradient, writes the residual's n h gradient and the sublayer
  output's h gradient:                                               16,384 + 16,384 + 4,096       = 36,864
* h_post_bda, Triton kernel B reads the output gradient, the residual and the sublayer output:     = 36,864
* h_aggregate, cuTile kernel reads the h input gradient and the n h residual, writes n h:          = 36,864
* BroadcastTensorFused sums the three n h gradients (torch.compile a + b + c): 3 reads + 1 write   = 65,536
  one sublayer: 176,128 elements = 352,256 bytes; attention + MoE: 704,512 bytes (172 h).
The engine charges a memory-bound figure once forward and twice backward, so training takes
(229,376 + 704,512) / 3 = 311,296 bytes (76 h); serving takes the forward 229,376.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from trainsim.model.load import resolve_model
from trainsim.perf.compute import elementwise_bytes_per_token, residual_bytes_per_token


def test_mhc_residual_bytes_by_hand():
    assert residual_bytes_per_token(4, 4096, training=False) == 229_376
    assert residual_bytes_per_token(4, 4096) == 311_296
    assert residual_bytes_per_token(1, 4096) == 49_152
    assert residual_bytes_per_token(1, 4096, training=False) == 49_152


def test_mhc_backward_bytes_small_config_by_hand():
    """n = 2 streams, h = 10, per sublayer, elements. Forward: aggregate reads 20, writes 10 (30); h_post_bda reads
    20 + 10, writes 20 (50): 80. Backward: h_post_bda kernel A reads 20, writes 20 + 10 (50); kernel B reads
    20 + 20 + 10 (50); aggregate reads 10 + 20, writes 20 (50); the three-way gradient sum reads 60, writes 20
    (80): 230. Two sublayers, 2 bytes: forward 320 bytes, backward 920 bytes; training (320 + 920) / 3."""
    assert residual_bytes_per_token(2, 10, training=False) == 320.0
    assert abs(residual_bytes_per_token(2, 10) - 1240.0 / 3.0) < 1e-9
    # forward once + the engine's twice-forward backward gives back forward + backward exactly
    assert abs(3.0 * residual_bytes_per_token(2, 10) - (320.0 + 920.0)) < 1e-9


def test_residual_streams_below_one_is_an_error():
    with pytest.raises(ValueError, match="residual streams"):
        residual_bytes_per_token(0, 4096)


def test_deepseek_v4_layers_carry_hc_mult_streams():
    arch = resolve_model("deepseek-v4-flash")
    assert {lk.residual_streams for lk in arch.layers + arch.mtp} == {4}
    plain = resolve_model("llama-3.1-8b")
    assert {lk.residual_streams for lk in plain.layers} == {1}


def test_mhc_adds_its_traffic_to_the_layer_bytes():
    arch = resolve_model("deepseek-v4-flash")
    lk = arch.layers[0]
    single = replace(lk, residual_streams=1)
    extra = elementwise_bytes_per_token(lk, arch.hidden, fp8_cast_bytes=3.0) - elementwise_bytes_per_token(
        single, arch.hidden, fp8_cast_bytes=3.0)
    assert extra == 311_296 - 49_152
    serve = elementwise_bytes_per_token(lk, arch.hidden, fp8_cast_bytes=3.0, backward_casts=False) - \
        elementwise_bytes_per_token(single, arch.hidden, fp8_cast_bytes=3.0, backward_casts=False)
    assert serve == 229_376 - 49_152
