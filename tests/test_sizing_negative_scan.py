"""Sizing's "no count finishes" is checked over the counts the galloping search stepped over.

Days are not monotone in the count (a plan must factor the chips and split the batch); ilv measured the S6 job at
the pessimistic FP8 end at 119.5 days on 20 SuperPoDs, 74.3 on 30 and 90.1 on 40, and the gallop 20 -> 40 said
"none up to 40" with a 90-day deadline. These tests drive :func:`trainsim.scenario.sizing.size` with a stand-in
prober whose days per count are written here, so the expected answer is read off the table by hand."""
from __future__ import annotations

import math

import pytest

import trainsim.scenario.sizing as sizing


def _fake_prober(days_of_units):
    class Fake:
        def __init__(self, run, unit_chips, assumptions=None, goodput_end="nominal"):
            self.seen: dict[int, dict] = {}
            self.no_valid: set[int] = set()     # counts with no valid plan at all: none in these tables
            self.unit_chips = unit_chips

        def __call__(self, units):
            if units not in self.seen:
                d = days_of_units(units)
                self.seen[units] = {"units": units, "chips": units * self.unit_chips, "days": d,
                                    "effective_days": d, "goodput": 1.0 if math.isfinite(d) else None,
                                    "fits": math.isfinite(d), "batch_seqs": 1, "estimate": None}
            return self.seen[units]

        def probes(self):
            return [dict(p) for _, p in sorted(self.seen.items())]
    return Fake


class _Run:
    chips = 20 * 8

    class training:
        batch_seqs = 1


@pytest.fixture
def unit_of_8(monkeypatch):
    monkeypatch.setattr(sizing, "unit_size", lambda run, unit: 8)


def test_a_count_the_gallop_skips_is_found(monkeypatch, unit_of_8):
    # 150 days everywhere but 30 and 32 units (74 and 71 days): only those meet 90 days; 30 is the smallest
    table = {30: 74.3, 32: 70.8}
    monkeypatch.setattr(sizing, "_Prober", _fake_prober(lambda u: table.get(u, 150.0 - u)))
    res = sizing.size(_Run(), 90.0, max_units=40)
    assert res.feasible and res.units == 30


def test_none_is_said_only_after_every_skipped_count_fails(monkeypatch, unit_of_8):
    seen = {}
    fake = _fake_prober(lambda u: 150.0 - u)       # 40 units: 110 days, the fastest; nothing meets 90 days
    monkeypatch.setattr(sizing, "_Prober", fake)
    res = sizing.size(_Run(), 90.0, max_units=40)
    assert not res.feasible and "no count up to 40" in res.message
    seen = {p["units"] for p in res.probes}
    # every plan-friendly count from half the fastest (20) to the cap (40) was probed: 20..32, 34, 36, 38, 40
    assert set(range(20, 33)) | {34, 36, 38, 40} <= seen


def test_a_bound_that_rules_out_every_count_answers_without_a_search(monkeypatch, unit_of_8):
    """150 - u days at u units, a 90-day deadline: no count up to 40 finishes. A lower bound of 0.9 x those days
    (a variant at most 1 / 0.9 times faster, as S6's precision ends) is above 90 days below 50 units, so it rules
    out every count up to the cap: the answer is the full search's ("none finishes") with no count probed. S6
    probed 4 x 32 such counts before s31. Where the bound leaves one count open (the 30 of the first test, 74 days)
    the search runs and finds it."""
    calls = []

    def days(u):
        calls.append(u)
        return 150.0 - u

    monkeypatch.setattr(sizing, "_Prober", _fake_prober(days))
    full = sizing.size(_Run(), 90.0, max_units=40)
    assert not full.feasible and calls                  # the full search probes counts to say so
    calls.clear()
    skip = lambda u: 0.9 * (150.0 - u) > 90.0           # noqa: E731 - a bound: days >= 0.9 x (150 - u)
    res = sizing.size(_Run(), 90.0, max_units=40, scan_skip=skip)
    assert (res.feasible, res.units, res.effective_days) == (full.feasible, full.units, full.effective_days)
    assert calls == [] and res.probes == []
    assert "no count up to 40" in res.message
    table = {30: 74.3}
    monkeypatch.setattr(sizing, "_Prober", _fake_prober(lambda u: table.get(u, 150.0 - u)))
    res = sizing.size(_Run(), 90.0, max_units=40, scan_skip=lambda u: u not in table and 0.9 * (150.0 - u) > 90.0)
    assert res.feasible and res.units == 30
