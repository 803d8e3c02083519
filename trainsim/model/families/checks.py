"""Shape checks on a decoder read from a Hugging Face ``config.json`` (issue #16, item 1).

A config can be syntactically valid and still describe no model: ``hidden_size: 1, num_attention_heads:
1000000`` made every later formula divide by zero or return nonsense. These checks run once, after a family
reader has turned the config into a :class:`~trainsim.model.families.spec.DecoderSpec` and before anything is
counted, and name the config key at fault. The rules are the ones the ``transformers`` attention and MoE modules
rely on:

* every size is a positive integer (hidden, vocab, heads, kv heads, head dim, layers);
* ``num_attention_heads`` is a multiple of ``num_key_value_heads`` (GQA groups, ``LlamaAttention``:
  ``num_key_value_groups = num_attention_heads // num_key_value_heads``);
* without an explicit ``head_dim`` the head dimension is ``hidden_size // num_attention_heads``
  (``LlamaAttention``: ``getattr(config, "head_dim", hidden_size // num_attention_heads)``), so ``hidden_size``
  must then be a multiple of the head count (MLA models state their head dims and are exempt);
* a MoE routes each token to ``num_experts_per_tok`` <= routed (+ zero) experts (``torch.topk`` over the
  router logits requires k <= the number of experts).
"""
from __future__ import annotations

from .cfg import Cfg
from .spec import DecoderSpec

#: config keys that state the attention head dimension explicitly
HEAD_DIM_KEYS = ("head_dim", "kv_channels", "attention_head_dim", "head_size")


def check_decoder(c: Cfg, s: DecoderSpec) -> DecoderSpec:
    """Raise a one-line :class:`~trainsim.errors.TrainsimError` naming the key if ``s`` is not a consistent
    decoder (rules in the module docstring); returns ``s`` unchanged otherwise."""
    for what, key, v in (("hidden size", "hidden_size", s.hidden), ("vocabulary", "vocab_size", s.vocab),
                         ("layer count", "num_hidden_layers", len(s.layers)),
                         ("attention heads", "num_attention_heads", s.heads),
                         ("key/value heads", "num_key_value_heads", s.kv_heads)):
        if v <= 0:
            raise c.error(f"{what} is {v}; expected a positive integer", key)
    if s.heads % s.kv_heads:
        raise c.error(f"num_attention_heads ({s.heads}) is not a multiple of num_key_value_heads ({s.kv_heads})",
                      "num_key_value_heads")
    explicit = any(c.raw.get(k) for k in HEAD_DIM_KEYS)
    if s.mla is None and not explicit and s.hidden % s.heads:
        raise c.error(f"hidden_size ({s.hidden}) is not a multiple of num_attention_heads ({s.heads}); "
                      "expected a multiple, or an explicit head_dim", "hidden_size")
    if s.head_dim <= 0:
        raise c.error(f"head dimension is {s.head_dim}; expected a positive integer", "head_dim")
    m = s.moe
    if m is not None:
        if m.experts <= 0 or m.top_k <= 0:
            raise c.error(f"MoE with {m.experts} experts and top-k {m.top_k}; expected both positive",
                          "num_experts_per_tok")
        if m.top_k > m.experts + m.zero_experts:
            raise c.error(f"num_experts_per_tok ({m.top_k}) exceeds the number of experts ({m.experts}); "
                          "expected experts >= top-k", "num_experts_per_tok")
    return s
