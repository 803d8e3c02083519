"""HBM traffic of DeepSeek-V4's manifold-constrained hyper-connections (issue 14, Fidelity II).

Hand derivation, forward, BF16 (2 bytes), per token and layer, h = 4,096, n = hc_mult = 4 streams (DeepSeek-V4-Flash
config.json), the kernels Megatron-Core runs per sublayer (Megatron-LM dev d48bd6be0a, hyper_connection.py
``HyperConnectionModule._forward_normal`` + ``fused_h_res_h_post_bda``):
* h_aggregate reads the n-stream residual, writes the sublayer input: 4 x 4,096 + 4,096             = 20,480 elements
* h_post_bda reads it and the sublayer output, writes n h:           4 x 4,096 + 4,096 + 4 x 4,096 = 36,864
  one sublayer: 57,344 elements = 114,688 bytes; attention + MoE: 229,376 bytes. (The mapping projection's read of
  the residual is the hc.* GEMMs' roofline, priced with the layer's GEMMs.)
A plain residual (one stream): 2 adds of 2 reads + 1 write: 6 x 4,096 x 2 = 49,152 bytes.
"""
from __future__ import annotations

from dataclasses import replace

from trainsim.model.load import resolve_model
from trainsim.perf.compute import elementwise_bytes_per_token, residual_bytes_per_token


def test_mhc_residual_bytes_by_hand():
    assert residual_bytes_per_token(4, 4096) == 229_376
    assert residual_bytes_per_token(1, 4096) == 49_152


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
    assert extra == 229_376 - 49_152
