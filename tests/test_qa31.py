"""QA pass 31: defects found using the CLI as a compute-policy analyst and as an ML-infrastructure engineer would
(each test fails on the code before its fix)."""
from __future__ import annotations

from types import SimpleNamespace


# ---------------------------------------------------------------- 1. days of 1,000 or more keep their separator

def test_days_of_a_thousand_or_more_are_grouped():
    """numfmt.days printed ``f"{d:.1f}"``: a sweep point of 1,234.5 days read '1234.5' beside every other count's
    separators ('24,960 chips'); now '1,234.5 days', and '1,234.5' in a `sweep --summary` days cell."""
    from trainsim.numfmt import days
    from trainsim.report.sweep import _fmt
    assert days(1234.5) == "1,234.5 days"
    assert days(1234.5, unit=False) == "1,234.5"
    assert _fmt(1234.5, "days") == "1,234.5"
    assert days(54.26) == "54.3 days"


def test_interconnect_cut_verdict_prints_days_as_numfmt_does():
    """S9's verdict formatted its days itself (``:.1f``): 1,234.5 days read '1234.5'. Now numfmt.days, as every
    other days figure: 1,234.5 and 1,000.0 days with their separators."""
    from trainsim.scenario.kinds import interconnect_cut as ic
    run = {"slowdown_pct": 23.45, "days_restricted": 1234.5, "days_reference": 1000.0,
           "plan_restricted": {"tp": 1, "ep": 64, "pp": 16}, "plan_reference": {"tp": 1, "ep": 64, "pp": 16},
           "tp_comm_share_restricted": 0.0, "ep_share_restricted": 0.1,
           "published_slowdown_pct": 10.0, "published_days": {"restricted": 1100.0, "reference": 1000.0}}
    dense = {"slowdown_pct": None}
    res = SimpleNamespace(numbers={"runs": {"moe": run, "dense_equal_active": dense, "dense_chinchilla": dense},
                                   "scale_up_gb_s": {"reference": 450.0, "restricted": 200.0}, "chips": 2048},
                          facts={"total": 671e9, "active": 37e9})
    text = " ".join(ic.verdict(res))
    assert "takes 1,234.5 vs 1,000.0 days" in text, text
    assert "(1,100.0 vs 1,000.0 days" in text, text
