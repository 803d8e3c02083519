"""The AMD Primus DeepSeek-V2 runs (validation/runs/primus-2512-*): the CDNA 4 compute units their GEMMs are
quantised over and the routing their moe_router_force_load_balancing imposes, each against a hand count."""
from __future__ import annotations

from dataclasses import replace as dreplace
from pathlib import Path

import pytest

from trainsim.estimate import context
from trainsim.parallel.plan import Plans
from trainsim.perf.calibration import calib_for
from trainsim.perf.comm_ep import dispatched_rows_per_token
from trainsim.perf.compute import gemm_shape_eff
from trainsim.spec import load_run

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"
PRIMUS = sorted(RUNS.glob("primus-2512-dsv2-*.yaml"))


def test_cdna4_has_256_compute_units():
    """AMD Instinct MI350X datasheet (LE-92701-00 C 9/25): 256 GPU compute units, eight XCDs of 32; the MI355X is the
    same die. Both chips resolve to it (MI300X keeps its 304)."""
    for chip in ("amd-mi350x", "amd-mi355x"):
        c = calib_for("amd-cdna4", chip=chip)
        assert (c.compute_units, c.sm_count) == (256.0, 256.0)
    assert calib_for("amd-cdna3").compute_units == 304.0


def test_dsv2_expert_gemm_at_micro_batch_1_fills_under_half_the_cus():
    """DeepSeek-V2 at EP 8, micro-batch 1 x 4,096 tokens: 4,096 x 6 routed copies over 160 experts, 8 ranks' tokens
    per local expert = 4,096 x 6 x 8 / 160 = 1,228.8 rows; fc1 (one of gate / up) N = 1,536, K = 5,120. 128 x 128 tiles:
    ceil(1228.8 / 128) = 10 x 12 = 120 tiles, one wave of 256 CUs: 120 / 256 (it was 120 / 132 on the H100 default);
    tile term 1228.8 / 1280; K term 5120 / (5120 + 64)."""
    c = calib_for("amd-cdna4", chip="amd-mi355x")
    rows = 4096 * 6 * 8 / 160
    eff = float(gemm_shape_eff(rows, 1536, 5120, c.gemm_tile_m, c.gemm_tile_n, c.gemm_k0, c.compute_units))
    assert eff == pytest.approx((1228.8 / 1280) * (120 / 256) * (5120 / 5184), rel=1e-9)


@pytest.mark.parametrize("path", PRIMUS, ids=lambda p: p.stem)
def test_primus_runs_state_the_forced_balanced_router(path):
    """moe_router_force_load_balancing true in the recipe config: Primus's PrimusTopKRouter.routing (AMD-AGI/Primus
    b3699abf) replaces the routing map by experts (t k + j) mod E, NeMo AutoModel's FakeBalancedGate pattern."""
    run = load_run(path)
    assert run.training.moe_fake_balanced_gate is True


@pytest.mark.parametrize("stem,rows", [("primus-2512-dsv2-mi355x-32-bf16", 1.2),
                                       ("primus-2512-dsv2-lite-mi355x-8-bf16", 1.5)])
def test_deepep_rows_per_token_under_the_forced_router(stem, rows):
    """Token t takes the 6 consecutive experts from s = 6 t mod E. DeepSeek-V2: E = 160, 20 experts per EP rank;
    gcd(6, 160) = 2, so s mod 20 runs over 0, 2, .., 18 equally often and the window [s, s + 5] crosses into a second
    rank for s mod 20 in {16, 18}: 1 + 2 / 10 = 1.2 ranks. DeepSeek-V2-Lite: E = 64, 8 per rank; s mod 8 in {0, 2, 4,
    6}, crossing for {4, 6}: 1 + 2 / 4 = 1.5. A learned router under DeepSeek-V2's group limit reaches 2.77."""
    run = load_run(RUNS / f"{stem}.yaml")
    ctx = context(run)
    lk = next(lk for lk in run.arch.layers if lk.moe is not None)
    p = Plans.from_columns(tp=1, pp=1, vpp=1, ep=8, etp=1, cp=1, dp=8, zero=1, recompute=0, mb=1, schedule=0,
                           node_limit=0)
    assert ctx.moe_dispatcher == "deepep"
    assert float(dispatched_rows_per_token(lk, ctx, p)[0]) == pytest.approx(rows)
    learned = float(dispatched_rows_per_token(lk, dreplace(ctx, moe_fake_balanced_gate=False), p)[0])
    assert learned > rows
