"""Scenario answers in the terminal: thin doors to the scenario renderer (:mod:`trainsim.report.scenario_render`), kept
apart from :mod:`trainsim.report.terminal`, which that renderer itself uses (no import cycle)."""
from __future__ import annotations
from ..report.scenario_render import render_result, render_summary


def render_scenario_result(r: dict, c=None, *, verbose: bool = False) -> None:
    """One scenario's numbers, tables, best plan and assumptions (:func:`trainsim.report.scenario_render.render_result`)."""
    render_result(r, c, verbose=verbose)


def render_scenario_summary(results: list[dict], c=None) -> None:
    """The one-screen summary of scenario results (:func:`trainsim.report.scenario_render.render_summary`)."""
    render_summary(results, c)
