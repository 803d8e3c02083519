"""Inference (serving) model: prefill and decode time, KV cache, serving plans under latency bounds.

Public entry points: :func:`trainsim.inference.serve.infer` (a serving spec -> results),
:func:`trainsim.inference.serve.load_serving` (YAML -> spec), :func:`trainsim.inference.validate.error_table`.
"""
