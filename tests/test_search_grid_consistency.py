"""The exhaustive plan search's per-plan time is perf.step.evaluate's on that plan alone (one computation).

The search costs every plan of a grid at once, with the per-layer costs and the parameters per chip computed once
per distinct combination of the fields they read (perf.step.shared_costs, LAYER_KEY / STATE_KEY). A field missing
from a key makes a plan's cost depend on which other plans share the grid: DualPipe holds two stages per rank
(DeepSeek-V3, arXiv 2412.19437, Table 2: 2x parameters) and its dp sync and optimizer time once came from a 1F1B
plan of the same layout (half), so the exhaustive and the pruned search ranked the same plans differently
(tests/test_mindspeed_fsdp2.py test_pruned_search_finds_the_exhaustive_best)."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from trainsim.frameworks import frameworks
from trainsim.perf.step import evaluate
from trainsim.plan_estimate import context
from trainsim.search import search

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_mindspeed_fsdp2 import _run  # noqa: E402


@pytest.mark.parametrize("fw,moe,chips", [
    ("megatron-bridge-2026", False, 16),   # dense, a stack without DualPipe
    ("mindspeed-2026", False, 16),         # dense, a stack with DualPipe
    ("mindspeed-2026", True, 8),           # MoE (ep, etp), DualPipe
])
def test_exhaustive_grid_time_is_evaluate_of_each_plan_alone(fw, moe, chips):
    run = _run(fw, {"micro_batch": 1}, layers=4, chips=chips, moe=moe)
    r = search(run, prune=False, with_pareto=False, keep_all=True)
    a = r.feasible_columns
    space, idx = a["space"], a["idx"]
    plans, batch = space.plans(idx), space.batch_of(idx)
    assert len(idx) > 100
    if fw == "mindspeed-2026":
        assert len(np.unique(plans.schedule)) >= 3      # DualPipe beside 1F1B and interleaved in one grid
    ctx = context(run, None)
    step, mem = np.empty(len(idx)), np.empty(len(idx))
    for i in range(len(idx)):       # each plan on its own: no other plan shares its costs
        res = evaluate(replace(ctx, global_batch_seqs=batch[i:i + 1], chips=a["used"][i:i + 1]),
                       plans.take(slice(i, i + 1)), detail=False)
        step[i], mem[i] = res.step_time_s[0], res.memory["total"][0]
    np.testing.assert_allclose(a["per_seq"] * batch, step, rtol=1e-9, atol=0)
    np.testing.assert_allclose(a["mem"], mem, rtol=1e-9, atol=0)


@pytest.mark.parametrize("fw", sorted(frameworks()))
def test_shared_costs_read_only_the_fields_of_their_keys(fw):
    """Every plan field that the shared costs' functions read is in the key they are deduplicated by (else a plan's
    cost depends on its grid, above): read by attribute access over every plan of a small MoE space of each stack."""
    from trainsim.parallel.enumerate import enumerate_space
    from trainsim.parallel.plan import INT_FIELDS, Plans
    from trainsim.perf.comm_dp import dp_sync_times, replica_sync_time
    from trainsim.perf.memory import model_state_params
    from trainsim.perf.step import LAYER_KEY, STATE_KEY, layer_costs
    from trainsim.search import _enum_args

    reads: set[str] = set()

    class Traced(Plans):
        def __getattribute__(self, k):
            if k in INT_FIELDS:
                reads.add(k)
            return object.__getattribute__(self, k)

    run = _run(fw, {"micro_batch": 1}, layers=4, chips=16, moe=True)
    args, kw = _enum_args(run, run.plan, False)
    space, _ = enumerate_space(*args[:4], **kw)
    p = space.plans()
    assert len(p) > 1000
    ctx = context(run, None)
    t = Traced(**{f: getattr(p, f) for f in INT_FIELDS})
    dense, expert = model_state_params(ctx, t)
    dp_sync_times(ctx, t, dense, expert)
    replica_sync_time(ctx, t, dense)
    assert "pp" in reads and reads <= set(STATE_KEY), reads - set(STATE_KEY)
    reads.clear()
    layer_costs(ctx, t)
    assert "tp" in reads and reads <= set(LAYER_KEY), reads - set(LAYER_KEY)
