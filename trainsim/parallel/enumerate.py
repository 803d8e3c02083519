"""Every valid plan for (model, chips, batch), built as arrays by expanding one dimension at a time.

Expansion order: (tp, cp, pp) whose product divides the chips -> micro-batch -> (schedule, vpp) ->
(ep, etp, node_limit) -> zero -> recompute. After each expansion the rows that break a rule of
:mod:`trainsim.parallel.validity` are dropped (counted by reason), so the space never holds the full cartesian
product. Fields fixed by a partial plan enter as single candidates.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..model.arch import Arch
from .plan import RECOMPUTE, SCHEDULES, Plans
from .validity import check

POW2 = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _divisors(n: int) -> list[int]:
    from .divisors import divisors  # by factorisation: O(sqrt(n)), not O(n)

    return divisors(n)


def _expand(cols: dict, name: str, values) -> dict:
    """Cartesian product of the current rows with candidate ``values`` for column ``name``."""
    values = np.asarray(values, dtype=np.int64)
    n = len(next(iter(cols.values())))
    out = {k: np.repeat(v, len(values)) for k, v in cols.items()}
    out[name] = np.tile(values, n)
    return out


def _expand_pairs(cols: dict, names: tuple[str, ...], rows) -> dict:
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, len(names))
    n = len(next(iter(cols.values())))
    out = {k: np.repeat(v, len(rows)) for k, v in cols.items()}
    for j, nm in enumerate(names):
        out[nm] = np.tile(rows[:, j], n)
    return out


def _filter(cols: dict, keep: np.ndarray) -> dict:
    return {k: v[keep] for k, v in cols.items()}


def candidate_values(arch: Arch, chips: int, seq_len: int, batch_seqs: int, fixed) -> dict:
    """Candidate values per field (powers of two where frameworks use them; divisors for pp)."""
    L = arch.n_layers
    moe = [lk.moe for lk in arch.layers if lk.moe is not None]

    def f(name):  # allowed values of a field named by the partial plan, else None
        return fixed.values(name) if fixed is not None else None

    cand = {
        "tp": f("tp") or [v for v in POW2 if v <= 64 and chips % v == 0],
        "cp": f("cp") or [v for v in POW2 if v <= 32 and seq_len % (2 * v) == 0 or v == 1],
        "pp": f("pp") or [d for d in _divisors(chips) if d <= L and d <= 128],
        "mb": f("micro_batch") or [v for v in POW2 if v <= 16],
        "zero": f("zero") if f("zero") is not None else [0, 1, 2, 3],
        "recompute": [RECOMPUTE.index(r) for r in f("recompute")] if f("recompute") else [0, 1, 2],
    }
    vpps = f("vpp") or [1, 2, 3, 4, 6, 8]
    scheds = [SCHEDULES.index(x) for x in f("schedule")] if f("schedule") else [0, 1, 2, 3]
    sv = [(s, v) for s in scheds for v in vpps if (s == 1) == (v > 1)]
    cand["sched_vpp"] = sv or [(scheds[0], vpps[0])]
    if moe:
        e = min(m.experts for m in moe)
        eps = f("ep") or [v for v in POW2 if e % v == 0 and v <= chips]
        etps = f("etp") or [v for v in (1, 2, 4, 8) if all(m.expert_ffn % v == 0 for m in moe)]
        nls = f("node_limit") if f("node_limit") is not None else [0]
        cand["ep_etp_nl"] = [(a, b, c) for a in eps for b in etps for c in nls if not (c > 0 and a < 2)]
    else:
        cand["ep_etp_nl"] = [(1, 1, 0)]
    return cand


def enumerate_plans(arch: Arch, chips: int, seq_len: int, batch_seqs: int, fixed=None) -> tuple[Plans, Counter]:
    """All valid plans and the count of rejected candidates by reason code."""
    cand = candidate_values(arch, chips, seq_len, batch_seqs, fixed)
    rejected: Counter = Counter()
    cols = {"tp": np.asarray(cand["tp"], dtype=np.int64)}
    cols = _expand(cols, "cp", cand["cp"])
    cols = _expand(cols, "pp", cand["pp"])
    prod = cols["tp"] * cols["cp"] * cols["pp"]
    keep = chips % prod == 0
    rejected[1] += int((~keep).sum())
    cols = _filter(cols, keep)
    cols["dp"] = chips // (cols["tp"] * cols["cp"] * cols["pp"])
    cols = _expand(cols, "mb", cand["mb"])
    cols = _expand_pairs(cols, ("schedule", "vpp"), cand["sched_vpp"])
    cols = _expand_pairs(cols, ("ep", "etp", "node_limit"), cand["ep_etp_nl"])
    defaults = dict(zero=np.zeros(1, np.int64), recompute=np.zeros(1, np.int64))
    n = len(cols["tp"])
    probe = Plans(**{**{k: v for k, v in cols.items()}, **{k: np.broadcast_to(v, (n,)) for k, v in defaults.items()}})
    code = check(probe, arch, chips, seq_len, batch_seqs)
    for c, k in zip(*np.unique(code[code > 0], return_counts=True)):
        rejected[int(c)] += int(k) * len(cand["zero"]) * len(cand["recompute"])
    cols = _filter(cols, code == 0)
    cols = _expand(cols, "zero", cand["zero"])
    cols = _expand(cols, "recompute", cand["recompute"])
    return Plans(**cols), rejected
