"""Issue 18, serving set: which published points count, and the data behind two corrected specs.

Hand derivations from the sources only (DeepSeek's day-6 statistics, TensorRT-LLM's published recipe); nothing here is
read back from the model's output.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from trainsim.inference.spec import load_serving
from trainsim.inference.validate import summary

REPO = Path(__file__).resolve().parents[1]
SERVING = REPO / "validation" / "inference"


def test_summary_counts_saturated_points_only():
    # errors +10% and -20% are counted; a production average at +100% is listed, not counted:
    # median |error| of (0.1, 0.2) = 0.15, max 0.2, mean signed (0.1 - 0.2) / 2 = -0.05
    rows = [{"error": 0.1, "counted": True}, {"error": -0.2, "counted": True}, {"error": 1.0, "counted": False}]
    sm = summary(rows)
    assert sm["points"] == 2 and sm["not_counted"] == 1
    assert sm["median_abs_error"] == pytest.approx(0.15)
    assert sm["max_abs_error"] == pytest.approx(0.2)
    assert sm["mean_signed_error"] == pytest.approx(-0.05)


def test_deepseek_production_figures_are_fleet_time_averages():
    """DeepSeek's day-6 overview: 608B input tokens and 168B output tokens in 24 h; ~73.7k input tokens/s per prefill
    node and ~14.8k output tokens/s per decode node; a 24-hour average of 226.75 inference nodes (peak 278).
    The node-time these rates imply adds up to the fleet's average node count, so each per-node rate is the day's
    tokens over every deployed node's time (idle and partly filled batches included), not a saturated rate."""
    day_s = 24 * 3600
    prefill_nodes = 608e9 / day_s / 73.7e3     # 95.5
    decode_nodes = 168e9 / day_s / 14.8e3      # 131.4
    assert prefill_nodes + decode_nodes == pytest.approx(226.75, rel=0.01)
    for name in ("deepseek-h800-prefill-production.yaml", "deepseek-h800-decode-production.yaml"):
        assert load_serving(SERVING / name).reported.measurement == "production_average"
    # the profile points of the same disclosure are counted
    for name in ("deepseek-h800-prefill-profile.yaml", "deepseek-h800-decode-profile.yaml"):
        assert load_serving(SERVING / name).reported.measurement == "saturated"


def test_production_averages_are_a_small_minority():
    files = sorted(SERVING.glob("*.yaml"))
    marked = [f.name for f in files if load_serving(f).reported.measurement != "saturated"]
    assert len(files) - len(marked) >= 30
    assert set(marked) == {"deepseek-h800-prefill-production.yaml", "deepseek-h800-decode-production.yaml"}


@pytest.mark.parametrize("name", ["mlperf51-deepseek-r1-b200x8-offline.yaml",
                                  "mlperf51-deepseek-r1-gb200x72-offline.yaml"])
def test_mlperf_deepseek_r1_cap_is_the_published_recipe(name):
    # TensorRT-LLM's DeepSeek-R1 max-throughput recipe on 8 B200: --max_batch_size 384 per rank with attention
    # data parallelism, --concurrency 3072 = 384 x 8 running sequences per 8-GPU instance
    sv = load_serving(SERVING / name)
    assert sv.chips == 8
    assert sv.serving.max_batch == 384 * 8
    lo, hi = sv.uncertain["max_batch"]
    assert lo <= sv.serving.max_batch <= hi
