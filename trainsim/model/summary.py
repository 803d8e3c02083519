"""One model's counts as a plain dict: what ``trainsim model --json`` prints and the terminal view renders.

Conventions are those of :mod:`trainsim.model.counts`: totals are the main model (MTP apart), ``active_params``
counts the output head but not the input embedding, FLOPs are training FLOPs per token (forward + backward).
"""
from __future__ import annotations

from typing import Any

from .arch import Arch
from .counts import count


def _int(x: float) -> int:
    """Parameter counts are whole numbers; an expected (fractional) expert count is rounded."""
    return int(round(x))


def model_summary(arch: Arch, seq_len: int = 4096, official: dict[str, Any] | None = None) -> dict[str, Any]:
    """A model's shapes, parameter counts and per-token FLOPs at ``seq_len``, per layer kind, with the
    published (``official``) figures beside them where given."""
    c = count(arch, seq_len)
    layers = [{**row, "active_params_per_layer": _int(row["active_params_per_layer"]),
               "params": lk.params * lk.n_layers, "active_params": _int(lk.active_params * lk.n_layers)}
              for lk, row in zip(arch.layers, c.layers)]
    out: dict[str, Any] = {
        "name": arch.name,
        "family": arch.family,
        "source": arch.source,
        "seq_len": seq_len,
        "n_layers": arch.n_layers,
        "hidden": arch.hidden,
        "vocab": arch.vocab,
        "tied_embeddings": arch.tied_embeddings,
        "total_params": c.total_params,
        "active_params": _int(c.active_params),
        "active_params_range": [_int(x) for x in c.active_params_range],
        "active_params_convention": "output head counted, input embedding not, MTP excluded",
        "embedding_params": c.embedding_params,
        "extra_embedding_params": arch.extra_embedding_params,
        "output_head_params": c.output_head_params,
        "non_embedding_params": c.non_embedding_params,
        "mtp_params": c.mtp_params,
        "layers": layers,
        "mtp_layers": [{"name": lk.name, "count": lk.n_layers, "params_per_layer": lk.params} for lk in arch.mtp],
        "flops_per_token": {"matmul": c.matmul_flops_per_token, "attention": c.attention_flops_per_token,
                            "total": c.flops_per_token, "mtp": c.mtp_flops_per_token},
        "notes": list(arch.notes),
    }
    if official:
        out["official"] = official
    return out
