"""A parallel plan as columns of numpy arrays, so that one code path costs one plan or a million.

Fields (Megatron-LM names): tp, pp, vpp (virtual stages per pipeline rank), ep, etp (tensor parallel inside
an expert), cp (context parallel), dp (derived: chips / (tp pp cp)), zero (0-3), recompute (0 none,
1 selective, 2 full), mb (micro-batch, sequences), schedule (the code of :mod:`trainsim.parallel.schedules`),
node_limit (0: none; else the maximum number of scale-up domains a token is sent to, DeepSeek-V3 node-limited
routing), zgroup (the ZeRO sharding group the search chose, ZeRO >= 1: 0 the whole dp x cp group, or the run's
``training.zero_shard_group``; l >= 1 the dp x cp ranks inside one level-(l-1) network domain, HSDP / MiCS:
perf/context.py ``StepContext.shard_ranks``), swap (1: the distributed optimizer's master weights and moments kept
in host memory between steps, MindSpeed ``--swap-optimizer``: perf/memory.py, perf/step.py ``swap_optimizer_time``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .schedules import SCHEDULES

__all__ = ["INT_FIELDS", "RECOMPUTE", "SCHEDULES", "Plans"]

RECOMPUTE = ("none", "selective", "full")
INT_FIELDS = ("tp", "pp", "vpp", "ep", "etp", "cp", "dp", "zero", "recompute", "mb", "schedule", "node_limit",
              "zgroup", "swap")
#: fields a caller may leave out (0)
OPTIONAL_FIELDS = ("zgroup", "swap")


@dataclass
class Plans:
    """N candidate plans; every attribute is an int64 array of length N."""

    tp: np.ndarray
    pp: np.ndarray
    vpp: np.ndarray
    ep: np.ndarray
    etp: np.ndarray
    cp: np.ndarray
    dp: np.ndarray
    zero: np.ndarray
    recompute: np.ndarray
    mb: np.ndarray
    schedule: np.ndarray
    node_limit: np.ndarray
    zgroup: np.ndarray = None  # type: ignore[assignment]  # left out: 0 (__post_init__)
    swap: np.ndarray = None  # type: ignore[assignment]  # left out: 0 (__post_init__)

    def __post_init__(self) -> None:
        for f in OPTIONAL_FIELDS:   # through vars(): a field left out is not read as a field (a traced Plans)
            if vars(self)[f] is None:
                setattr(self, f, np.zeros_like(np.asarray(self.tp), dtype=np.int64))

    def __len__(self) -> int:
        return int(self.tp.shape[0])

    @classmethod
    def from_columns(cls, **cols: Any) -> "Plans":
        """Plans from integer columns, scalars broadcast to the longest column (``OPTIONAL_FIELDS`` left out: 0)."""
        n = max(np.size(v) for v in cols.values())
        cols = {k: 0 for k in OPTIONAL_FIELDS} | dict(cols)
        return cls(**{k: np.broadcast_to(np.asarray(cols[k], dtype=np.int64), (n,)).copy() for k in INT_FIELDS})

    @property
    def expert_dp(self) -> np.ndarray:
        """Expert-data-parallel size of each plan: the tp x cp x dp ranks of a pipeline stage re-sliced into ep x etp
        expert groups, (tp x cp x dp) / (ep x etp), at least 1 (Megatron-Core parallel_state
        ``expert_data_parallel_size``: the expert layers' gradient-sync and optimizer-sharding group)."""
        return np.maximum((self.tp * self.cp * self.dp) // np.maximum(self.ep * self.etp, 1), 1)

    def take(self, idx: Any) -> "Plans":
        """The plans at ``idx`` (an index array, mask or slice)."""
        return Plans(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def row(self, i: int) -> dict[str, Any]:
        """One plan as a readable dict (names instead of codes)."""
        d: dict[str, Any] = {f.name: int(getattr(self, f.name)[i]) for f in fields(self)}
        d["schedule"] = SCHEDULES[d["schedule"]]
        d["recompute"] = RECOMPUTE[d["recompute"]]
        d["micro_batch"] = d.pop("mb")
        return d

    @staticmethod
    def concat(parts: list["Plans"]) -> "Plans":
        """One :class:`Plans` holding ``parts`` in order."""
        return Plans(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Plans)})
