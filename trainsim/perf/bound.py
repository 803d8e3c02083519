"""A lower bound on a plan's step time from the fields of a search's base row alone (not zero, not recompute): the
plan search (:func:`trainsim.search.search`) never evaluates a base row whose bound is already slower than the
plans it has found, so its answer is that of the exhaustive search.

With the notation of :mod:`trainsim.perf.step` (m micro-batches; t_mb = t_f + t_b + p2p of the slower of the two
costed pipeline ranks, the last one with its share l / L of the layers and the fuller of the first and a middle
one), the step is

    step = m t_mb' + bubble(t_mb') + exposed DP sync + optimizer + overhead,   t_mb' = t_mb + offload exposure >= t_mb

with every term >= 0 (an exposed time C - f min(C, W) >= 0 for an overlap fraction f <= 1). In :func:`~trainsim.
perf.step._stage` every part of t_f and t_b is either proportional to the rank's layer share s (compute,
communication, the MoE host stall: ``exposed`` is positively homogeneous, exposed(sC, sW, f) = s exposed(C, W, f))
or >= 0 and independent of s (the output head and MTP modules of the last rank, recomputation, pipeline p2p). So
with u = t_f + t_b of one micro-batch through all L layers (s = 1) without recompute, head, MTP or p2p,

    t_mb >= s u on each costed rank, so t_mb >= s_max u,   s_max = (layers on the fullest rank) / L,

and since every schedule's bubble is a non-negative multiple of t_mb (:mod:`trainsim.parallel.schedules`),

    step >= m t + bubble(t) + overhead,   t = s_max u,

for every zero stage and recompute code of the row (zero changes only the DP sync and optimizer terms, recompute
only adds). u is computed by the engine's own ``_stage`` once per distinct (tp, cp, micro-batch, ep, etp,
node_limit, schedule); it is multiplied by (1 - 1e-9) so that rounding (a few ulps) cannot lift the bound over the
engine's value.
"""
from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import numpy as np

from ..parallel.plan import Plans
from ..parallel.schedules import bubble_time
from .context import StepContext
from .memory import stage_layers
from .step import LAYER_KEY, _stage, _unique_rows, host_time, layer_costs

UNIT_KEY = LAYER_KEY + ("schedule",)   # the fields u depends on (the schedule: DualPipe's overlap of EP and host)
ROUNDING_MARGIN = 1e-9


def _groups(p: Plans, names: tuple[str, ...]) -> tuple[Any, ...]:
    """(one plan per distinct combination of the fields ``names``, the map from every plan to it), by a dense
    mixed-radix code of the fields' ranks (linear time), or :func:`~trainsim.perf.step._unique_rows` when the code
    would be large."""
    n = len(p)
    key, radix = np.zeros(n, np.int64), 1
    for name in names:
        col = getattr(p, name)
        seen = np.bincount(col) > 0 if n else np.zeros(1, bool)
        key = key * int(seen.sum()) + (np.cumsum(seen) - 1)[col]
        radix *= int(seen.sum())
        if radix > 4 * n + 1024:
            return _unique_rows(p, names)
    present = np.zeros(radix, bool)
    present[key] = True
    inv = (np.cumsum(present) - 1)[key]
    rep = np.empty(int(present.sum()), np.int64)
    rep[inv] = np.arange(n)      # any plan of a group stands for it: they agree on ``names``
    return p.take(rep), inv


class LayerTable:
    """:func:`~trainsim.perf.step.layer_costs` of the distinct ``LAYER_KEY`` rows of some plans, computed once and
    looked up by the rows' mixed-radix code: one plan search asks for the same rows' costs in its bounds and in
    each round's shared costs. Rows it does not hold are costed when asked for (and not kept)."""

    def __init__(self, ctx: StepContext, plans: Plans):
        self.ctx = ctx
        self._build(_unique_rows(plans)[0], None)

    def _build(self, reps: Plans, costs: dict[str, Any] | None) -> None:
        """Hold ``reps`` (distinct rows) with their ``costs`` (computed when None)."""
        self.reps = reps
        self.radix = [int(getattr(reps, f).max(initial=0)) + 1 for f in LAYER_KEY]
        code = self._code(reps)
        order = np.argsort(code)
        self.codes = code[order]
        costs = costs if costs is not None else layer_costs(self.ctx, reps)
        self.costs = {k: v[order] for k, v in costs.items()}
        self.reps = reps.take(order)

    def extend(self, plans: Plans) -> None:
        """Also hold the rows of ``plans`` (costed now when not held yet)."""
        reps, _ = _unique_rows(plans)
        miss = ~self._held(reps)[0]
        if miss.any():
            new = reps.take(np.nonzero(miss)[0])
            extra = layer_costs(self.ctx, new)
            self._build(Plans.concat([self.reps, new]),
                        {k: np.concatenate([v, extra[k]]) for k, v in self.costs.items()})

    def _held(self, reps: Plans) -> tuple[Any, ...]:
        code = self._code(reps)
        at = np.minimum(np.searchsorted(self.codes, code), max(len(self.codes) - 1, 0))
        held = np.ones(len(reps), bool)
        for f, r in zip(LAYER_KEY, self.radix):
            held &= getattr(reps, f) < r
        if len(self.codes):
            held &= self.codes[at] == code
        else:
            held[:] = False
        return held, at

    @classmethod
    def for_experts(cls, ctx: StepContext, p: Plans, experts: np.ndarray) -> "LayerTable":
        """The table of every row of ``p`` (plans whose experts are not chosen yet) with every candidate
        (ep, etp, node_limit) row of ``experts``: it holds every row they expand into."""
        return cls(ctx, _expert_rows(p, experts))

    def _code(self, p: Plans) -> np.ndarray:
        code = np.zeros(len(p), np.int64)
        for f, r in zip(LAYER_KEY, self.radix):
            code = code * r + np.minimum(getattr(p, f), r - 1)
        return code

    def __call__(self, reps: Plans) -> dict[str, Any]:
        """``layer_costs(ctx, reps)`` for 1-D plans ``reps``."""
        held, at = self._held(reps)
        out = {k: v[at] if len(v) else np.zeros(len(reps)) for k, v in self.costs.items()}
        if not held.all():
            miss = np.nonzero(~held)[0]
            for k, v in layer_costs(self.ctx, reps.take(miss)).items():
                out.setdefault(k, np.zeros(len(reps)))[miss] = v
        return out


_TABLES: dict[Any, Any] = {}  # the layer tables of the last few step contexts (without chips and batch), oldest first
TABLES_KEPT = 8


def _ctx_key(ctx: StepContext) -> tuple[Any, ...]:
    """What per-layer costs depend on: the step context without the chip count and the batch."""
    return (tuple(getattr(ctx, f.name) for f in fields(ctx) if f.name not in ("system", "chips", "global_batch_seqs")),
            repr(ctx.system))


def layer_table(ctx: StepContext, p: Plans, experts: np.ndarray) -> LayerTable:
    """:meth:`LayerTable.for_experts` of ``p`` x ``experts``, from a table kept for ``ctx``'s model, system and
    settings: per-layer costs do not depend on the chip count or the batch (:func:`~trainsim.perf.step.layer_costs`
    reads neither), so searches of one model on one system at several chip counts (sizing and capacity probes)
    share one table, extended with the rows each needs."""
    key = _ctx_key(ctx)
    try:
        table = _TABLES.pop(key, None)
    except TypeError:           # an unhashable setting: no sharing
        return LayerTable.for_experts(ctx, p, experts)
    if table is None:
        table = LayerTable.for_experts(ctx, p, experts)
    else:
        table.extend(_expert_rows(p, experts))
    _TABLES[key] = table
    while len(_TABLES) > TABLES_KEPT:
        _TABLES.pop(next(iter(_TABLES)))
    return table


def _expert_rows(p: Plans, experts: np.ndarray) -> Plans:
    """The distinct (tp, cp, micro-batch) rows of ``p`` x ``experts``."""
    reps, _ = _groups(p, tuple(k for k in LAYER_KEY if k not in ("ep", "etp", "node_limit")))
    return expert_choices(reps, experts)


def expert_choices(p: Plans, experts: np.ndarray) -> Plans:
    """Rows of ``p`` (plans whose experts are not chosen yet) x the candidate (ep, etp, node_limit) rows
    ``experts``, row-major."""
    e = len(experts)
    return replace(p.take(np.repeat(np.arange(len(p)), e)),
                   **{f: np.tile(experts[:, j], len(p)) for j, f in enumerate(("ep", "etp", "node_limit"))})


def unit_time(ctx: StepContext, base: Plans, experts: np.ndarray | None = None,
              table: LayerTable | None = None) -> np.ndarray:
    """u of each row of ``base`` (module docstring: t_f + t_b of one micro-batch through all L layers at share 1,
    no recompute, head, MTP or p2p), less the rounding margin; it reads only the row's ``UNIT_KEY`` fields (the
    plan costed is each group's first row, its zero and recompute set to 0). With ``experts`` (rows of candidate
    (ep, etp, node_limit)) the least over them."""
    p = replace(base, zero=np.zeros(len(base), np.int64), recompute=np.zeros(len(base), np.int64))
    if experts is None:
        reps, inv = _groups(p, UNIT_KEY)
    else:
        reps, inv = _groups(p, tuple(k for k in UNIT_KEY if k not in ("ep", "etp", "node_limit")))
        reps = expert_choices(reps, experts)
    if table is not None:
        lc = table(reps)
    else:
        r_reps, r_inv = _unique_rows(reps)
        lc = {k: v[r_inv] for k, v in layer_costs(ctx, r_reps).items()}
    st = _stage(ctx, reps, lc, 1.0, False, float(ctx.seq_len) * reps.mb / reps.cp)
    unit = st["t_f"] + st["t_b"]
    if experts is not None:
        # a candidate (ep, etp) that no valid row takes may be costed as NaN: it bounds nothing (0)
        unit = np.where(np.isnan(unit), 0.0, unit).reshape(-1, len(experts)).min(axis=1)
    return (unit * (1.0 - ROUNDING_MARGIN))[inv]


def chip_seconds_per_seq_floor(ctx: StepContext, rows: Plans, experts: np.ndarray | None = None,
                               table: LayerTable | None = None) -> float:
    """c (chip-seconds per sequence) such that every plan whose (tp, cp, micro-batch, schedule, experts) is among
    ``rows`` (and ``experts``) takes at least c / n seconds per sequence on n chips. From the step's bound (module
    docstring) with m = B / (dp mb) micro-batches and the fullest rank's share s_max >= 1 / pp:

        step / B >= m s_max u / B = s_max u / (dp mb) >= u / (pp dp mb) = u tp cp / (n mb),   n = tp pp cp dp,

    so c = min over ``rows`` of u tp cp / mb (:func:`unit_time` at pp 1, where no p2p enters u). NaN (a cost
    the engine cannot state) bounds nothing: 0."""
    if not len(rows):
        return 0.0
    try:      # kept per model, system, settings and rows, as the layer tables (sizing probes ask again)
        key = (_ctx_key(ctx), rows.tp.tobytes(), rows.cp.tobytes(), rows.mb.tobytes(), rows.schedule.tobytes(),
               None if experts is None else experts.tobytes())
        hit = _FLOORS.pop(key, None)
    except TypeError:
        key, hit = None, None
    if hit is None:
        one = np.ones(len(rows), np.int64)
        u = unit_time(ctx, replace(rows, pp=one, vpp=one, dp=one), experts, table)
        c = u * rows.tp * rows.cp / rows.mb
        hit = 0.0 if np.isnan(c).any() else max(0.0, float(c.min()))
    if key is not None:
        _FLOORS[key] = hit
        while len(_FLOORS) > TABLES_KEPT:
            _FLOORS.pop(next(iter(_FLOORS)))
    return hit


_FLOORS: dict[Any, float] = {}   # chip_seconds_per_seq_floor's answers, oldest first


def step_time_lower_bound(ctx: StepContext, base: Plans, experts: np.ndarray | None = None,
                          table: LayerTable | None = None) -> np.ndarray:
    """A lower bound (s) on the step time of every plan of each base row of ``base`` (1-D plan columns; their
    ``zero`` and ``recompute`` are ignored): m t + bubble(t) + overhead with t = s_max u (module docstring).
    ``ctx.global_batch_seqs`` may be an array (one batch per row). With ``experts`` (rows of candidate
    (ep, etp, node_limit)), ``base`` are rows whose experts are not chosen yet and u is the least over those
    candidates: a bound for every row they expand into. ``table``: layer costs already computed."""
    p = replace(base, zero=np.zeros(len(base), np.int64), recompute=np.zeros(len(base), np.int64))
    t = stage_layers(ctx, p) / ctx.arch.n_layers * unit_time(ctx, p, experts, table)
    m = ctx.global_batch_seqs / (p.dp * p.mb)
    lb = m * t + bubble_time(p.schedule, p.pp, p.vpp, t) + host_time(ctx, ctx.calib.step_overhead_s)
    return np.where(np.isnan(lb), 0.0, lb)     # a cost the engine cannot state bounds nothing
