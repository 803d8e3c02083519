"""Saved tensors of a MoE layer's dispatch that the activation memory model counts per chip (perf/activations.py):
the dispatched rows gathered over the expert tensor-parallel group, and the all-gather dispatcher's probability
scale input, against hand derivations on the MindSpeed Mixtral 8x7B row (tp = etp = 8, ep 1, cp 2)."""
from __future__ import annotations

from dataclasses import replace as dreplace

import pytest

from test_sequential_experts import _mixtral  # the MindSpeed Mixtral row's run, context, plan and MoE layer
from trainsim.perf.memory import layer_activation_bytes
MIB = 2.0**20
# seq 32768 / cp 2 = 16384 tokens per tp group and micro-batch; top-2; hidden 4096; BF16
TOKENS, K, H, TP = 16384, 2, 4096, 8
ROWS_BUFFER = TOKENS * K * H * 2          # 268,435,456 B = 256 MiB: all 32768 routed rows in full hidden width


def _full(ctx, p, lk) -> float:
    return float(layer_activation_bytes(lk, ctx, p, float(TOKENS))[1][0])


def test_row_runs_the_allgather_dispatcher_at_etp_8():
    _, ctx, p, _ = _mixtral()
    assert ctx.moe_dispatcher == "allgather"
    assert (int(p.tp[0]), int(p.etp[0]), int(p.ep[0])) == (8, 8, 1)


def test_dispatched_rows_are_gathered_over_etp():
    """The experts' fc1 saves the permuted buffer, every one of the 16384 x 2 routed rows on each of the 8 chips
    (Megatron-Core core_r0.6.0 SequentialMLP: each expert's input is a view of it): 256 MiB, not 256 / 8 = 32 MiB.
    The same layer at etp 1 (experts replicated, each chip its own tokens' rows) keeps 32 MiB: 224 MiB less."""
    _, ctx, p, lk = _mixtral()
    a2a = dreplace(ctx, moe_dispatcher="alltoall")   # no probability-scale tensor: isolates the dispatched rows
    assert ROWS_BUFFER == 256 * MIB
    assert _full(a2a, p, lk) - _full(a2a, dreplace(p, etp=p.etp * 0 + 1), lk) == pytest.approx(
        ROWS_BUFFER * (1 - 1 / TP), rel=1e-12)
    assert ROWS_BUFFER * (1 - 1 / TP) == 224 * MIB


def test_allgather_scale_keeps_the_unpermuted_outputs():
    """allgather_token_unpermutation (Ascend/MindSpeed e6ea2117; Megatron-LM core_r0.6.0 likewise) multiplies the
    [32768, 4096] BF16 unpermuted expert outputs by the routing probabilities, which carry a gradient, so autograd
    keeps that input: 256 MiB more per layer and micro-batch than the alltoall count. Recomputing the ``moe``
    module drops it with the rest of the layer's expert tensors."""
    _, ctx, p, lk = _mixtral()
    a2a = dreplace(ctx, moe_dispatcher="alltoall")
    assert _full(ctx, p, lk) - _full(a2a, p, lk) == pytest.approx(ROWS_BUFFER, rel=1e-12)


def test_stage_zero_holds_32_layer_micro_batches_of_it():
    """1F1B's first stage holds pp = 4 micro-batches of its 32 / 4 = 8 layers: 32 x (256 + 256 - 32) MiB =
    15,360 MiB = 15.0 GiB more activations than a count with the dispatched rows split over tp and no scale
    input; the row's total stays under the 910B2's 64 GB."""
    run, ctx, p, lk = _mixtral()
    per_layer = 2 * ROWS_BUFFER - ROWS_BUFFER / TP
    assert 32 * per_layer / 2.0**30 == pytest.approx(15.0, rel=1e-12)
    from trainsim.estimate import estimate
    est = estimate(run, advise=False)
    assert est.memory["total"] < 64e9
    assert est.memory["activations"] >= 32 * per_layer
