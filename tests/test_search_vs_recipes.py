"""The search is no better than the experts without a reason (issue 14 item 3).

For every validation run taken from a tuned recipe (Megatron-Bridge / NeMo performance tables) the plan is removed
and the whole space the recipe's software stack offers is searched. The search's best plan must not be predicted
more than 15% faster than the recipe's own plan in the same model: a larger gap means a cost the model leaves free
(or a real gain the experts missed, which then needs its reason named here). Runs where that is so today are
named known gaps, each with the reason found, and xfail strictly: closing one fails the test until it leaves the
list. Against the published tuned throughput (model error included) the median must stay within 15%.
"""
from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from trainsim.validate.recipes import check_recipe, tuned_recipe_files

RUNS = Path(__file__).resolve().parent.parent / "validation" / "runs"
LIMIT = 1.15

_MB = ("the search raises the micro-batch (4-16, with full recompute and ZeRO-3 or EP to fit) to spread the "
       "per-MoE-layer host synchronisation (moe_layer_host_s, fitted 3.3 ms per layer and micro-batch outside "
       "whole-iteration CUDA graphs) over more tokens; NVIDIA's later recipes did the same (micro-batch 4-8 with "
       "CUDA graphs, NeMo 26.04-26.06) and ran 1.3-4x faster, so part of this gain is real, part is the model "
       "rewarding large micro-batches of a small-expert MoE more than measured")

KNOWN_GAPS = {
    "megatron-bridge-perf-dsv3-h100-1024": "search keeps EP 8 inside NVLink against the recipe's EP 64 across "
        "InfiniBand, which the model predicts too slow (its dispatcher is not stated, so a copy per expert crosses "
        "InfiniBand)",
    "nemo-2502-mixtral-8x7b-b200-64-fp8": "micro-batch 4 (one micro-batch per step) against the recipe's 2: the "
        "data-parallel gradient reduce-scatter over 64 ranks and InfiniBand, which Megatron-Core's "
        "overlap_grad_reduce starts only in the last micro-batch's backward, gets the whole backward to hide "
        "behind instead of half of it (exposed 0.12 s against 0.28 s of a 1.15 s step in the model); no host "
        "synchronisation is involved (token drop with padding)",
    "megatron-bridge-2511-qwen3-30b-a3b-b200-8-fp8mx-mbs1": _MB,
    "megatron-bridge-2511-qwen3-30b-a3b-h100-16-fp8cs-pp2": _MB,   # micro-batch 1 as the shipped recipe (v0.2.0)
    "megatron-bridge-260201-qwen3-30b-a3b-h100-16-fp8-pp2": _MB,
    "megatron-bridge-260401-dsv3-b200-256-mxfp8": _MB,
    "megatron-bridge-2606-qwen3-30b-a3b-h100-16-fp8": _MB,
    "nemo-2407-nemotron-22b-h100-64-fp8": "micro-batch 4 and tp 4 against the recipe's plan (model +15% on it): "
        "micro-batch effects in the model",
    "nemo-2502-nemotron4-340b-b200-128-fp8": "tp 4 pp 16 cp 2 against the recipe's tp 8: the model predicts the "
        "recipe's plan too slow (-11% held out; tensor-parallel cost at tp 8 on B200 overstated)",
}


@pytest.fixture(scope="module")
def checks():
    out = {}
    for f in tuned_recipe_files(RUNS):
        c = check_recipe(f)
        if c is not None:
            out[c.run] = c
    return out


def test_every_tuned_recipe_is_checked(checks):
    # the Megatron-Bridge / NeMo tables in validation/runs: at least 60 recipes with a plan that fits somewhere
    assert len(checks) >= 60
    assert set(KNOWN_GAPS) <= set(checks), sorted(set(KNOWN_GAPS) - set(checks))


def test_search_median_within_15_percent_of_published(checks):
    ratios = [c.over_published for c in checks.values()]
    assert statistics.median(ratios) <= LIMIT


@pytest.mark.parametrize("name", sorted(p.stem for p in tuned_recipe_files(RUNS)))
def test_search_no_better_than_the_recipe_plan(checks, name):
    c = checks.get(name)
    if c is None or c.over_recipe_plan is None:
        pytest.skip("no steady-state throughput, or the recipe's plan fits nowhere in the model "
                    "(tests/test_published_plans_fit.py names those)")
    if name in KNOWN_GAPS:
        if c.over_recipe_plan <= LIMIT:
            pytest.fail(f"gap closed ({c.over_recipe_plan:.2f}x): remove {name} from KNOWN_GAPS")
        pytest.xfail(KNOWN_GAPS[name])
    assert c.over_recipe_plan <= LIMIT, (f"search best {c.search_best:.0f} tok/s/chip is {c.over_recipe_plan:.2f}x "
                                         f"the recipe's plan ({c.stated_plan:.0f}); best plan {c.best_plan}")
