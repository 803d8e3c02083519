"""The cost options every answer-giving command shares (``--price-per-chip-hour``, ``--pue``,
``--electricity``); the cost itself is :func:`trainsim.cost.run_cost`, rendered by :func:`trainsim.report.terminal.cost_rows`)."""
from __future__ import annotations

import typer
from .. import api

PRICE = typer.Option(None, "--price-per-chip-hour", help="rental USD per chip-hour (default: the catalog's, with "
                                                         "source)")
PUE = typer.Option(None, "--pue", help="power usage effectiveness, facility / IT energy (default 1.2, sourced)")
ELECTRICITY = typer.Option(None, "--electricity", help="electricity price in USD per kWh (default 0.08, sourced)")


def cost_inputs(price: float | None, pue: float | None, electricity: float | None) -> dict:
    """Validated overrides for :func:`trainsim.cost.run_cost` (:func:`trainsim.api.cost_inputs`)."""
    return api.cost_inputs(price, pue, electricity, names=api.CLI_NAMES)
