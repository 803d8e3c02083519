"""The cost options every answer-giving command shares (``--price-per-chip-hour``, ``--pue``,
``--electricity``); the cost itself is :func:`trainsim.cost.run_cost`, rendered by :func:`trainsim.report.terminal.cost_rows`)."""
from __future__ import annotations

import typer

from ..errors import TrainsimError

PRICE = typer.Option(None, "--price-per-chip-hour", help="rental USD per chip-hour (default: the catalog's, with "
                                                         "source)")
PUE = typer.Option(None, "--pue", help="power usage effectiveness, facility / IT energy (default 1.2, sourced)")
ELECTRICITY = typer.Option(None, "--electricity", help="electricity price in USD per kWh (default 0.08, sourced)")


def cost_inputs(price: float | None, pue: float | None, electricity: float | None) -> dict:
    """Validated overrides for :func:`trainsim.cost.run_cost`."""
    for name, v, lo in (("--price-per-chip-hour", price, 0.0), ("--pue", pue, 1.0), ("--electricity", electricity, 0.0)):
        if v is not None and not v >= lo:
            raise TrainsimError(f"expected a number >= {lo:g}, got {v:g}", field=name)
    out = {}
    if price is not None:
        out["price_per_chip_hour"] = price
    if pue is not None:
        out["pue"] = pue
    if electricity is not None:
        out["electricity_usd_per_kwh"] = electricity
    return out
