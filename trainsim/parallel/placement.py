"""Where a parallel group lands on the network hierarchy.

Ranks are numbered innermost-first in Megatron-LM's default order (tp, cp, dp, pp outermost; the expert layers
re-slice the same ranks as etp, ep, edp), so a group is described by its size ``n`` and its ``stride`` (the rank
distance between consecutive members): tp stride 1, cp stride tp, dp stride tp x cp, pp stride tp x cp x dp,
ep stride etp, edp stride etp x ep (Megatron-LM ``RankGenerator``, core/parallel_state.py).

A domain of level l holds ``size_l`` consecutive ranks, so the members of one group inside one domain are
``clip(size_l // stride, 1, n)`` (domains are aligned to the rank numbering; sizes are powers that divide).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..catalog.types import System
from .plan import Plans


def members_within(n: ArrayLike, stride: ArrayLike, system: System) -> list[np.ndarray]:
    """Group members inside one domain of each level, innermost first; the last level holds all ``n``."""
    n = np.asarray(n, dtype=np.int64)
    stride = np.asarray(stride, dtype=np.int64)
    out = []
    for lvl in system.levels:
        if lvl.size is None:
            out.append(n.copy())
        else:
            out.append(np.clip(lvl.size // np.maximum(stride, 1), 1, n))
    out[-1] = n.copy()
    # a group member count can never shrink going outwards
    for i in range(1, len(out)):
        out[i] = np.maximum(out[i], out[i - 1])
    return out


def level_factors(n: ArrayLike, stride: ArrayLike, system: System) -> list[np.ndarray]:
    """How many domains of level l-1 the group spans inside one domain of level l (product = n)."""
    within = members_within(n, stride, system)
    f = [within[0]]
    for i in range(1, len(within)):
        f.append(np.maximum(within[i] // np.maximum(within[i - 1], 1), 1))
    return f


def outermost_level(n: ArrayLike, stride: ArrayLike, system: System) -> np.ndarray:
    """Index of the outermost level a group of ``n`` members at ``stride`` crosses (0 = stays in scale-up)."""
    f = level_factors(n, stride, system)
    lvl = np.zeros(np.shape(np.asarray(n)), dtype=np.int64)
    for i, fi in enumerate(f):
        lvl = np.where(fi > 1, i, lvl)
    return lvl


def group_strides(p: Plans) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Size and stride of each parallel group of plans ``p`` (Megatron default order)."""
    edp = p.expert_dp
    return {
        "tp": (p.tp, np.ones_like(p.tp)),
        "cp": (p.cp, p.tp),
        "dp": (p.dp, p.tp * p.cp),
        "pp": (p.pp, p.tp * p.cp * p.dp),
        "ep": (p.ep, p.etp),
        "etp": (p.etp, np.ones_like(p.etp)),
        "edp": (edp, p.etp * p.ep),
    }


#: the groups that exist only in layers with routed experts (Megatron-Core builds expert-model-parallel and
#: expert-data-parallel groups for MoE layers; a dense model has none)
EXPERT_GROUPS = ("ep", "etp", "edp")


def describe(p: Plans, i: int, system: System, moe: bool = True) -> dict[str, dict[str, Any]]:
    """Readable placement of plan ``i``: for each group, its size, stride and the levels it spans; the expert
    groups (:data:`EXPERT_GROUPS`) only for a model with routed experts (``moe``)."""
    out = {}
    for name, (n, s) in group_strides(p).items():
        if not moe and name in EXPERT_GROUPS:
            continue
        n_i, s_i = int(n[i]), int(s[i])
        within = [int(w[0]) for w in members_within(np.array([n_i]), np.array([s_i]), system)]
        spans = [lvl.name for lvl, w, prev in zip(system.levels, within, [1] + within[:-1]) if w > prev]
        out[name] = {"size": n_i, "stride": s_i, "levels": spans or ["none"],
                     "members_per_scale_up_domain": within[0]}
    return out
