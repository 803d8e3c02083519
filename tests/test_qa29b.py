"""QA pass 29b: small user-facing defects (each test fails on the code before its fix)."""
from __future__ import annotations

import pytest

from conftest import one_line, run_main, write_spec


# ---------------------------------------------------------------- 1. --pue has an upper bound


@pytest.mark.parametrize("value", ["100", "3.01"])
def test_a_pue_above_any_data_centre_is_bad_input(tmp_path, capsys, value):
    """`estimate --pue 100` was accepted (100x the facility energy). PUE = facility / IT energy >= 1; Uptime
    Institute's survey average is ~1.56 (2024), so anything above 3 is refused with one line naming the option."""
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path), "--pue", value)
    line = one_line(code, err, 2)
    assert line == f"error: --pue: expected a PUE between 1 and 3 (facility / IT energy), got {value}", line
    assert out == ""


def test_a_pue_of_three_is_still_accepted():
    """The bound is inclusive: 3 is an (old, inefficient) facility, not a typo."""
    from trainsim import api
    assert api.cost_inputs(pue=3.0) == {"pue": 3.0}
    assert api.cost_inputs(pue=1.0) == {"pue": 1.0}


# ---------------------------------------------------------------- 2. capacity: '1 day', not '1 days'


def test_capacity_says_one_day_not_one_days(capsys):
    """`capacity --days 1` printed '... tokens in 1 days: ...' in its answer and '... tokens in 1 days' in the
    latency row of its limits table."""
    code, out, err = run_main(capsys, "capacity", "--system", "dgx-h100", "--units", "1", "--days", "1",
                              "--family", "dense", "-q")
    flat = " ".join(out.split())
    assert code == 0, err
    assert "1 days" not in flat, flat
    assert "tokens in 1 day:" in flat


@pytest.mark.parametrize("days, text", [(1, "1 day"), (1.0, "1 day"), (0.5, "0.5 days"), (90.0, "90 days")])
def test_days_text(days, text):
    from trainsim.numfmt import days_text
    assert days_text(days) == text
