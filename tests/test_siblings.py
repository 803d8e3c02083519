"""The same published recipe on sibling chips (trainsim/validate/siblings.py, scripts/sibling_ratios.py).

Published figures are Megatron-Bridge's (docs/performance-summary-archive.md at 067f987d): NeMo 25.11 table,
Llama 3 8B FP8-CS on 8 GPUs, GBS 128, MBS 2, TP 1 PP 1 CP 1: DGX-GB300 37,556, DGX-GB200 31,508, DGX-B200 30,624
tokens/s per GPU; 26.06 table, Llama 3.1 405B FP8 on 256 GPUs: GB300 at TP 4 PP 8, GB200 at TP 4 PP 16.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from trainsim.perf.calibration import calib_for
from trainsim.validate.calibrate import prepare
from trainsim.validate.siblings import compare, container_of, sibling_pairs

RUNS = Path(__file__).resolve().parent.parent / "validation" / "runs"
L8 = "megatron-bridge-2511-llama3-8b-{}-8-fp8cs"
L405 = "megatron-bridge-2606-llama31-405b-{}-256-fp8"
L70 = "megatron-bridge-260401-llama3-70b-{}-64-fp8-fsdp"


@pytest.fixture(scope="module")
def runs():
    names = [L8.format(c) for c in ("b200", "gb200", "gb300")] + [L405.format(c) for c in ("gb200", "gb300")] + \
        [L70.format(c) for c in ("gb200", "gb300")]
    return prepare([RUNS / f"{n}.yaml" for n in names])


def _names(pairs):
    return {(a.name, b.name) for a, b in pairs}


def test_one_recipe_on_three_chips_makes_three_pairs(runs):
    pairs = _names(sibling_pairs(runs))
    assert {(L8.format("b200"), L8.format("gb200")), (L8.format("b200"), L8.format("gb300")),
            (L8.format("gb200"), L8.format("gb300"))} <= pairs


def test_published_ratio_is_the_tables(runs):
    (r,) = [s for s in compare(sibling_pairs(runs), lambda r: calib_for(r.family))
            if (s.base, s.other) == (L8.format("gb200"), L8.format("gb300"))]
    assert r.published == pytest.approx(37556 / 31508)   # 1.192, NeMo 25.11 table
    assert r.excess == pytest.approx(r.published / r.predicted)


def test_different_plans_are_not_siblings(runs):
    # 405B: GB200 ran PP 16, GB300 PP 8 (26.06 table): a different recipe, not a chip comparison
    assert (L405.format("gb200"), L405.format("gb300")) not in _names(sibling_pairs(runs))


def test_offload_may_differ_per_chip(runs):
    # Llama 3 70B FP8-CS: cpu_offloading_num_layers 40 on GB200, 20 on GB300 (Megatron-Bridge v0.4.2
    # llama3_workload_base_configs.py), otherwise one recipe
    assert (L70.format("gb200"), L70.format("gb300")) in _names(sibling_pairs(runs))


def test_without_a_container_no_pair(runs):
    assert sibling_pairs(runs, containers={r.name: None for r in runs}) == []
    assert container_of(runs[0].run) == "NeMo 25.11 container"


def test_equal_catalog_entries_predict_equal_throughput(runs):
    # GB200 and GB300 list the same dense FP8 / BF16 peaks (5,000 / 2,500 TFLOP/s: NVIDIA GB200 NVL72 page,
    # Verda's GB300 table), HBM bandwidth (8 TB/s) and NVLink (1.8 TB/s); under one calibration, with the
    # activation offload hidden behind compute, the 70B FSDP recipe must be predicted equally fast on both
    (r,) = [s for s in compare(sibling_pairs(runs), lambda r: calib_for(r.family))
            if s.base == L70.format("gb200")]
    assert r.predicted == pytest.approx(1.0, abs=0.005)
