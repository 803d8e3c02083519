"""How one layer's weight matrices are split over the chips of a plan: the single home of that rule.

Megatron-LM tensor parallelism (Shoeybi et al. 2019): a column-split matrix keeps N / tp columns per chip, a
row-split one K / tp rows; ``split == "none"`` matrices (MLA down-projections) and the ``other`` group run
replicated on every tensor-parallel rank; the router is replicated; routed experts are spread over ep x etp
(each chip holds E / ep experts, each cut etp ways). Used by training memory, training compute and inference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model.arch import LayerKind, Matrix


def sharded_shape(mat: Matrix, shard: Any) -> tuple[Any, Any]:
    """(K, N) of one copy of ``mat`` on a chip when its tensor-parallel group has ``shard`` ranks."""
    if mat.split == "col":
        return mat.k, mat.n / shard
    if mat.split == "row":
        return mat.k / shard, mat.n
    return float(mat.k), float(mat.n)


def is_tp_split(mat: Matrix) -> bool:
    """True for matrices cut by tensor parallelism (attention, dense MLP, shared experts with a split)."""
    return mat.group in ("attn", "mlp", "shared_expert") and mat.split != "none"


@dataclass(frozen=True)
class LayerParams:
    """A layer's parameters by how they are placed (each a plain count for the whole layer)."""

    tp_split: float     # divided by tp
    replicated: float   # whole on every chip (MLA down-projections, 'other' matrices), router excluded
    router: float       # whole on every chip
    expert: float       # all routed experts: divided by ep x etp
    vector: float       # norms and biases outside matrices


def layer_params(lk: LayerKind) -> LayerParams:
    """One layer's parameters split by how they shard: tensor-parallel, replicated, router, expert and
    vector."""
    tp_split = sum(m.params for m in lk.matrices if is_tp_split(m))
    expert = sum(m.params for m in lk.matrices if m.group == "expert")
    router = sum(m.params for m in lk.matrices if m.group == "router")
    replicated = sum(m.params for m in lk.matrices) - tp_split - expert - router
    return LayerParams(tp_split, replicated, router, expert, float(lk.vector_params))
