"""Accuracy guard: a change that breaks the model's agreement with published runs fails CI.

Bound from the validation issue: leave-one-out median |error| <= 10% of tokens/s per chip. The leave-one-out here
refits every family's GEMM efficiency without the held-out run (d0 held at the packaged value to keep CI fast;
scripts/calibrate.py refits it too).
"""
from __future__ import annotations

import pytest

from trainsim.perf.calibration import load_calibration
from trainsim.validate.calibrate import leave_one_out, prepare


@pytest.fixture(scope="module")
def runs():
    return prepare()


def test_calibration_set_is_complete(runs):
    # 47 published runs (../shared/data/runs README), all with a steady-state reference
    assert len(runs) == 47


def test_leave_one_out_median_error_under_bound(runs):
    d0 = load_calibration()["default"].gemm_d0
    loo = leave_one_out(runs, d0_grid=(d0,))
    s = loo.summary()
    assert s["runs"] == 47
    assert s["median_abs_error"] <= 0.10
    assert abs(s["bias"]) <= 0.05


def test_packaged_calibration_in_sample(runs):
    table = load_calibration()
    errs = sorted(abs(r.predict(table.get(r.family, table["default"])) / r.reported - 1) for r in runs)
    assert errs[len(errs) // 2] <= 0.10
