"""capacity / S6 answers a sceptical analyst would question (each test fails without its fix):

1. more SuperPoDs gave fewer FLOP (S6: 1.11e26 on 10 Atlas 950 SuperPoDs, 1.03e26 on 20): capacity now maximises
   training compute (6 N_active D) over the sizes that reach their token budget, and a smaller fleet's answer is
   the floor of a larger one's;
2. the MoE shape rule gave one 3.08B-active model for every target from 3.6B to 3.9B active;
3. ``--fix node_limit=3`` was accepted with the EP group inside one node;
4. the 6 N D product was written inline in the scenario kinds instead of in one place.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import one_line
from fuzz.specs import run_in_process
from trainsim.api import scenarios
from trainsim.assumptions import Assumptions
from trainsim.catalog.resolve import resolve_system
from trainsim.errors import TrainsimError
from trainsim.model.counts import compute_optimal_params, training_flops_6nd
from trainsim.parallel.enumerate import ep_domains, node_limit_ok
from trainsim.scenario.capacity import (OBJECTIVE, CapacityResult, _counts, _depth_counts, _moe_doc, capacity,
                                        moe_shape)

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- 4. one 6 N D formula
def test_six_n_d_by_hand():
    # DeepSeek-V3: 37B active x 14.8T tokens (arXiv 2412.19437) = 6 x 37e9 x 14.8e12 = 3.2856e24 FLOP
    assert training_flops_6nd(37e9, 14.8e12) == pytest.approx(3.2856e24, rel=1e-12)
    # Chinchilla (Hoffmann et al. 2022): 70B on 1.4T tokens = 20 tokens per parameter; C = 6 x 70e9 x 1.4e12
    # = 5.88e23 FLOP, and N = sqrt(C / (6 x 20)) = sqrt(4.9e21) = 7.0e10
    assert compute_optimal_params(5.88e23, 20.0) == pytest.approx(7.0e10, rel=1e-9)


def test_no_inline_six_n_d_in_scenarios():
    """The scenario code forms 6 x N x D only through model.counts.training_flops_6nd (and its inverse)."""
    inline = re.compile(r"\b6(\.0)?\s*\*\s*[A-Za-z_(]")
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
            for p in sorted((ROOT / "trainsim" / "scenario").rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if inline.search(line.split("#")[0]) and '"""' not in line]
    assert not hits, hits


# ---------------------------------------------------------------- 1. more chips never give less
def _s6_capacity(units: int, at_least=None):
    """S6's capacity question as scenarios/S6.yaml asks it: Atlas 950 SuperPoDs, 90 days, FP8, mindspeed-2026, a
    DeepSeek-V3-like MoE at the lean frontier model's sparsity (10T / 300B), 5 sizes tried."""
    s = resolve_system("atlas-950-superpod")
    a = Assumptions().with_overrides({"moe_sparsity": 10e12 / 300e9})
    return capacity(s, units * s.scale_up_size, 90.0, a, family="deepseek-v3", precision="fp8", max_evals=5,
                    plan_counts=False, framework="mindspeed-2026", at_least=at_least)


def test_s6_twenty_superpods_train_at_least_what_ten_do():
    """Before: 10 SuperPoDs 1.11e26 FLOP, 20 SuperPoDs 1.03e26 (the largest size that reached its budget, 203B
    active, not the most compute). 20 SuperPoDs hold 10 (they can leave half idle), so they cannot train less."""
    r10 = _s6_capacity(10)
    r20 = _s6_capacity(20, at_least=r10)
    for r in (r10, r20):
        # the FLOP reported is 6 x active x tokens, and the model reaches 400 tokens per active parameter
        assert r.training_flops == pytest.approx(6.0 * r.active_params * r.tokens, rel=1e-12)
        assert r.tokens >= 400.0 * r.active_params
        assert r.chips_used <= r.chips
    assert r20.training_flops >= r10.training_flops
    assert r20.objective == OBJECTIVE and "6 N_active D" in r20.message


@pytest.mark.parametrize("family", ["dense", "deepseek-v3"])
def test_capacity_never_falls_with_more_pods(family):
    """Property over pod counts (8-GPU DGX H100 servers, 7 days): each count's answer is the next one's floor, and
    the training compute never falls as servers are added."""
    s = resolve_system("dgx-h100")
    a = Assumptions()
    prev = None
    flops = []
    for units in (1, 2, 3, 4, 6, 8, 12, 16):
        r = capacity(s, units * s.scale_up_size, 7.0, a, family=family, max_evals=4, plan_counts=False,
                     at_least=prev)
        assert r.training_flops == pytest.approx(6.0 * r.active_params * r.tokens, rel=1e-12)
        # no chip trains above its BF16 dense peak: C <= chips x 989e12 FLOP/s x 7 days x 86,400 s
        assert r.training_flops <= units * 8 * 989e12 * 7 * 86400
        flops.append(r.training_flops)
        prev = r
    assert all(b >= a_ for a_, b in zip(flops, flops[1:])), flops


# ---------------------------------------------------------------- 2. the MoE size ladder
def test_neighbouring_moe_targets_get_different_shapes():
    """3.6, 3.7, 3.8 and 3.9B active all became one 3.08B-active model (widths in steps of 512, heads in steps of
    32). Each target now gets its own shape within 2% of it, with hidden a multiple of 128, heads of 16, and 3
    dense layers before an even MoE stack (odd depth)."""
    targets = [3.6e9, 3.7e9, 3.8e9, 3.9e9]
    shapes = [moe_shape(t, 18.1) for t in targets]
    active = [_counts(d)[1] for d in shapes]
    assert len(set(active)) == len(targets), active
    for t, d, act in zip(targets, shapes, active):
        assert act == pytest.approx(t, rel=0.02), (t, act)
        assert d["hidden"] % 128 == 0 and d["heads"] % 16 == 0 and d["layers"] % 2 == 1, d


@pytest.mark.parametrize("h,experts,ffn", [(1024, 384, 384), (7168, 256, 2048), (12288, 512, 1536)])
def test_depth_counts_equal_the_counted_model(h, experts, ffn):
    """The shape rule reads an odd depth's counts off 5 and 7 layers (s31: each MoE layer adds the same parameters,
    so c(L) = c(5) + (L - 5) / 2 (c(7) - c(5))); every depth it tries equals the full model's own count, and an
    even depth (not extrapolated) too. DeepSeek-V3's shape (7,168 wide, 61 layers, 256 experts of 2,048): 671B
    total / 37B active without the MTP layer (arXiv 2412.19437 sec. 4.2)."""
    for L in (5, 9, 27, 61, 63, 8):
        assert _depth_counts(h, L, experts, ffn, "x") == _counts(_moe_doc(h, L, experts, "x", ffn)), L
    if (h, experts) == (7168, 256):
        total, active = _depth_counts(h, 61, experts, ffn, "x")
        assert total == pytest.approx(671e9, rel=0.01) and active == pytest.approx(37e9, rel=0.03)


# ---------------------------------------------------------------- 3. node_limit
def test_ep_domains_by_hand():
    # DeepSeek-V3 (arXiv 2412.19437 sec. 3.2): EP 64 over 8 H800 nodes of 8 GPUs; each token to at most 4 nodes
    assert ep_domains(64, 1, 8) == 8 and node_limit_ok(64, 1, 4, 8)
    # EP 8 inside one 8-GPU node spans 1 node: a limit of 3 nodes cannot hold; with 4 expert-TP ranks apart,
    # 8 / 4 = 2 members per node, so EP 8 spans 4 nodes
    assert ep_domains(8, 1, 8) == 1 and not node_limit_ok(8, 1, 3, 8) and node_limit_ok(8, 1, 1, 8)
    assert ep_domains(8, 4, 8) == 4 and node_limit_ok(8, 4, 3, 8)
    assert not node_limit_ok(1, 1, 2, 8) and node_limit_ok(1, 1, 0, 8)


def _spec(tmp_path) -> Path:
    p = tmp_path / "moe.yaml"
    p.write_text("name: nl\nmodel: deepseek-v2-lite\nsystem: dgx-h100\nchips: 64\n"
                 "training: {tokens: 1e12, seq_len: 4096, global_batch_seqs: 512}\n")
    return p


@pytest.mark.parametrize("fix,spans", [("ep=8,etp=1,node_limit=3", "spans 1 domain"),
                                       ("ep=1,node_limit=2", "spans 0 domain")])
def test_node_limit_beyond_the_ep_group_is_refused(tmp_path, fix, spans):
    """EP 8 inside one 8-GPU node with node_limit 3 was accepted (and switched the dispatch model); ep 1 with a
    limit was a ZeroDivisionError (exit 3). Both: one line naming the field and the expectation, exit 2."""
    code, _, err = run_in_process(["plan", str(_spec(tmp_path)), "--fix", fix, "-q"])
    line = one_line(code, err, 2)
    assert "plan.node_limit" in line and spans in line and "expected 0 (no limit)" in line


def test_api_refuses_a_floor_from_another_question():
    """api.scenarios.capacity(at_least=...) takes a smaller fleet's answer to the same question only."""
    other = CapacityResult("dgx-h100", 16, 7.0, "deepseek-v3", None, None, None, None, None, None, None, None,
                           chips_used=16)
    with pytest.raises(TrainsimError, match="at_least: expected the answer for at most 8 chips of dgx-h100, dense"):
        scenarios.capacity("dgx-h100", units=1, days=7.0, family="dense", at_least=other)
