"""Whole-run economics of an :class:`~trainsim.estimate.Estimate` with ``training.tokens``.

* time: ideal days (the engine), effective days (ideal / goodput, :mod:`trainsim.scenario.goodput`), chip-hours
  paid = chips x effective hours;
* energy: ``power_per_chip_w`` (System, all-in IT power with its source) x PUE x chips x hours;
* cost as **capex**: system price per chip x chips, amortised straight-line over ``life_years`` for the run's
  effective duration, plus energy x ``electricity_usd_per_kwh``;
* cost as **rental**: chip-hours x ``rental_usd_per_chip_hour`` of the chip; a chip without a rental market gets a
  rental-equivalent = (hourly amortised price + hourly power cost) x ``rental_markup``;
* cost per unit of compute: USD per 1e24 model FLOP (6 x active parameters x tokens).

Ranges: ``low`` puts every uncertain cost input at its cheap end together (low price, long life, low power,
low PUE, cheap electricity, low rental), ``high`` at its expensive end; time is held at the given estimate (see
:mod:`trainsim.scenario.ranges` for the range of days).
"""
from __future__ import annotations

import math

from ..cost import (HOURS_PER_YEAR, amortised_capex_usd, energy_mwh, hourly_cost_recovery,  # noqa: F401 (re-exported)
                    range_of as _range, rental_rate, source_text)
from ..assumptions import Assumptions
from ..model.counts import count, training_flops_6nd


def training_flops(arch, tokens: float, seq_len: int = 4096) -> dict:
    """Training compute of ``tokens`` tokens: the ``6 N_active D`` convention (the seed claims' unit) and the
    engine's model FLOPs (matmuls incl. the output head + causal attention, used for MFU)."""
    c = count(arch, seq_len)
    return {
        "total_params": float(c.total_params),
        "active_params": float(c.active_params),
        "flops_6na": training_flops_6nd(c.active_params, tokens),
        "model_flops": c.flops_per_token * tokens,
    }


def _source(system, name: str) -> str:
    return source_text(system, name) or "not given"


def economics(est, a: Assumptions, *, goodput=None, tokens: float | None = None) -> dict:
    """Days, chip-hours, energy and cost of the run of ``est`` (see the module docstring)."""
    run = est.run
    system = run.system
    chips = run.chips
    tokens = run.training.tokens if tokens is None else tokens
    ideal_days = est.days
    frac = goodput.fraction if goodput is not None else 1.0
    eff_days = None if ideal_days is None or frac <= 0 else ideal_days / frac
    hours = None if eff_days is None else eff_days * 24.0
    chip_hours = None if hours is None else hours * chips
    fl = training_flops(run.arch, tokens or 0.0, run.training.seq_len)

    power = _range(system, "power_per_chip_w", system.power_per_chip_w)
    price = _range(system, "price_per_chip_usd", system.price_per_chip_usd)
    life = a.bounds("life_years")
    pue = a.bounds("pue")
    kwh = a.bounds("electricity_usd_per_kwh")

    def energy(i):  # MWh at the i-th end (0 low, 1 nominal, 2 high)
        if power[i] is None or chip_hours is None:
            return None
        return energy_mwh(power[i], chips, hours, pue[i])

    e = [energy(i) for i in range(3)]
    power_cost = [None if e[i] is None else e[i] * 1000.0 * kwh[i] for i in range(3)]
    cluster_capex = [None if price[i] is None else price[i] * chips for i in range(3)]
    amort = [None if price[i] is None or eff_days is None
             else amortised_capex_usd(price[i], chips, eff_days, life[2 - i]) for i in range(3)]
    capex_total = [None if amort[i] is None or power_cost[i] is None else amort[i] + power_cost[i] for i in range(3)]
    rate = rental_rate(system, a)
    rental = {k: (None if rate[k] is None or chip_hours is None else rate[k] * chip_hours)
              for k in ("low", "nominal", "high")}

    def per_1e24(x):
        return None if x is None or not fl["flops_6na"] else x / (fl["flops_6na"] / 1e24)

    tri = lambda v: {"low": v[0], "nominal": v[1], "high": v[2]}  # noqa: E731
    return {
        "chips": chips,
        "ideal_days": ideal_days,
        "goodput": frac,
        "effective_days": eff_days,
        "chip_hours": chip_hours,
        "training_flops_6na": fl["flops_6na"],
        "model_flops": fl["model_flops"],
        "power_per_chip_w": {**tri(power), "source": _source(system, "power_per_chip_w")},
        "energy_mwh": tri(e),
        "cluster_capex_usd": {**tri(cluster_capex), "source": _source(system, "price_per_chip_usd")},
        "capex_amortised_usd": tri(amort),
        "power_cost_usd": tri(power_cost),
        "cost_capex_usd": tri(capex_total),
        "rental_usd_per_chip_hour": rate,
        "cost_rental_usd": {k: rental[k] for k in ("low", "nominal", "high")},
        "usd_per_1e24_flop_capex": tri([per_1e24(x) for x in capex_total]),
        "usd_per_1e24_flop_rental": {k: per_1e24(rental[k]) for k in ("low", "nominal", "high")},
    }


def finite(x) -> bool:
    """Whether ``x`` is a finite int or float."""
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)
