"""One formatting layer (issue 12 item 5): plans and table numbers are formatted by ``trainsim.report.fmt`` and
every renderer that prints them goes through it. Expected strings are written out by hand below."""
from __future__ import annotations

import math

from trainsim.report import fmt

PLAN = {"tp": 8, "pp": 16, "dp": 4, "ep": 64, "zero": 1, "micro_batch": 1, "schedule": "dualpipe", "node_limit": 4,
        "extra_key": "ignored"}


def test_plan_order_node_limit_and_empty():
    assert fmt.plan(PLAN) == "tp=8 pp=16 dp=4 ep=64 zero=1 micro_batch=1 schedule=dualpipe node_limit=4"
    assert fmt.plan(PLAN, node_limit=False) == "tp=8 pp=16 dp=4 ep=64 zero=1 micro_batch=1 schedule=dualpipe"
    assert fmt.plan(None) == "-" and fmt.plan({}, empty="") == ""
    assert fmt.plan({"chips": 8, "tp": 2, "pp": 1, "dp": 4}, keys=("chips", "tp", "pp", "dp")) == "chips=8 tp=2 pp=1 dp=4"


def test_every_plan_renderer_is_the_one_formatter():
    """The terminal, the validation table, the scenario tables and the serving table print what fmt.plan does."""
    from trainsim.report.terminal import plan_text as terminal
    from trainsim.report.scenario_render import plan_text as scenario
    from trainsim.validate.runner import plan_text as validation

    assert terminal(PLAN) == validation(PLAN) == fmt.plan(PLAN)
    # scenario tables print the node limit too (the effective one the engine used: tests/test_effective_node_limit.py)
    assert scenario(PLAN) == fmt.plan(PLAN) == "tp=8 pp=16 dp=4 ep=64 zero=1 micro_batch=1 schedule=dualpipe node_limit=4"
    assert terminal({}) == validation(None) == "" and scenario(None) == "-"


def test_sweep_row_plan():
    row = {"plan.tp": 8, "plan.pp": 4, "plan.ep": 1, "plan.cp": 1, "plan.dp": 2, "plan.zero": 1,
           "plan.micro_batch": 1, "plan.schedule": "interleaved", "plan.vpp": 2, "plan.recompute": "full"}
    # the one plan format (numfmt.plan), not a compact second one ('tp8 pp4 ... z1 mb1'): qa15
    assert fmt.plan_columns(row) == ("tp=8 pp=4 vpp=2 dp=2 ep=1 cp=1 zero=1 recompute=full micro_batch=1 "
                                     "schedule=interleaved")
    assert fmt.plan_columns(row) == fmt.plan({k[5:]: v for k, v in row.items()})
    assert fmt.plan_columns({}) == "-"


def test_table_numbers():
    assert fmt.value(None) == "-" and fmt.value(True) == "yes" and fmt.value(2048) == "2,048"
    assert fmt.value(0.0) == "0" and fmt.value(math.nan) == "n/a" and fmt.value(math.inf) == "unbounded"
    assert fmt.value(0.4123) == "0.412" and fmt.value(3.14159) == "3.14" and fmt.value(54.32) == "54.3"
    assert fmt.value(512.4) == "512"
    assert fmt.value({"nominal": 2.0, "low": 1.5, "high": 3.0, "unit": "days"}) == "2 (1.5-3) days"
    assert fmt.value([("a", 1), ("b", 2)]) == "a 1, b 2"


def test_scenario_renderer_uses_the_layer():
    from trainsim.report.scenario_render import fmt as scenario_fmt, fmt_key

    for x in (None, 3, 0.5, 12.5, 2048, {"nominal": 1.0, "low": 0.5, "high": 2.0}):
        assert scenario_fmt(x) == fmt.value(x)
    assert fmt_key("cost_rental_usd", 29.2e6) == fmt.value_of_key("cost_rental_usd", 29.2e6) == fmt.money(29.2e6)
    assert fmt.money(29.2e6) == "$29.2M"


def test_headline_formats():
    assert fmt.step_time(12.3456) == "12.346 s" and fmt.pct(0.4123) == "41.2%" and fmt.gib(2**31) == "2.0 GiB"
    assert fmt.days(None) == "n/a" and fmt.days(54.32) == "54.3 days" and fmt.signed_pct(math.inf) == "no fit"


def test_gib_is_one_formatter_for_every_layer():
    """The core modules (search advice, validation, serving) print GiB through numfmt.gib, the one report.fmt
    re-exports: 80 GiB = 80 x 2^30 bytes -> '80.0 GiB'; 73.8e9 bytes / 2^30 = 68.73 -> '68.7 GiB'."""
    from trainsim import numfmt
    assert fmt.gib is numfmt.gib
    assert numfmt.gib(80 * 2**30) == "80.0 GiB" and numfmt.gib(73.8e9) == "68.7 GiB"


def test_renderers_live_under_report():
    """The domain packages hold no terminal renderers (issue 12: they moved under trainsim/report/)."""
    from pathlib import Path

    import trainsim

    pkg = Path(trainsim.__file__).parent
    assert not (pkg / "inference" / "report.py").exists() and not (pkg / "posttrain" / "report.py").exists()
    for name in ("inference", "posttrain", "validation", "sweep"):
        assert (pkg / "report" / f"{name}.py").is_file()
