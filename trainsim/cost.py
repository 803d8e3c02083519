"""Chip-hours, energy and money of one run: the formulas (each in one place) and the answer every command prints.

Formulas (SI inside; money in USD):

* chip-hours = days x 24 x chips (wall-clock days: ideal days, or ideal days / goodput when failures are counted);
* energy (MWh) = power per chip (W, the system's all-in IT power) x PUE x chips x hours / 1e6 -- the facility
  energy definition of PUE (The Green Grid, White Paper #49, "PUE: a comprehensive examination of the metric",
  2012: PUE = total facility energy / IT equipment energy);
* rental cost = chip-hours x rental USD per chip-hour;
* capex amortisation = system price per chip x chips x (days / 365.25) / life in years (straight-line
  depreciation over the useful life, as in the hyperscalers' 10-K filings cited in ``assumptions.yaml``);
  electricity cost = energy x 1000 x USD per kWh; capex cost = amortisation + electricity;
* cost recovery per chip-hour = price / (life x 8766 h) + power x PUE x USD per kWh / 1000 (the hourly rate that
  pays back the system over its life plus its power; used as the rental-equivalent for chips with no market).

:func:`run_cost` applies these to an :class:`~trainsim.estimate.Estimate`. Every input comes from the catalog
(``systems.yaml``: power and price per chip, with source) or the assumption table
(``scenario/data/assumptions.yaml``: PUE, $/kWh, life, rental prices, with source), and each may be overridden
(``--price-per-chip-hour``, ``--pue``, ``--electricity``); the answer names each input's source and whether
failures are counted ("without failures", or the goodput model by name).
"""
from __future__ import annotations

import math

from .assumptions import Assumptions
from .numfmt import fraction
from .errors import TrainsimError

HOURS_PER_YEAR = 8766.0   # 365.25 days
WITHOUT_FAILURES = "without failures"
GOODPUT_MODEL = "checkpoint/restart goodput (Young 1974 interval, Daly 2006 exponential failures; scenario/goodput.py)"


def chip_hours(days: float, chips: int) -> float:
    """Chip-hours of ``chips`` chips held for ``days`` wall-clock days: days x 24 x chips."""
    return days * 24.0 * chips


def energy_mwh(power_per_chip_w: float, chips: int, hours: float, pue: float = 1.0) -> float:
    """Energy in MWh: power per chip (W) x PUE x chips x hours / 1e6 (The Green Grid WP#49 definition of PUE)."""
    return power_per_chip_w * pue * chips * hours / 1e6


def amortised_capex_usd(price_per_chip_usd: float, chips: int, days: float, life_years: float) -> float:
    """Straight-line amortisation of the cluster's price over ``life_years`` for a run of ``days``:
    price x chips x (days / 365.25) / life."""
    return price_per_chip_usd * chips * (days / 365.25) / life_years


def hourly_cost_recovery(price: float | None, power_w: float | None, life_years: float, pue: float,
                         usd_per_kwh: float) -> float | None:
    """USD per chip-hour that pays back the chip's system price over its life plus its power:
    price / (life x 8766 h) + power (kW) x PUE x USD/kWh."""
    if price is None or power_w is None:
        return None
    return price / (life_years * HOURS_PER_YEAR) + power_w / 1000.0 * pue * usd_per_kwh


def source_text(system, name: str) -> str | None:
    """A system field's sources, confidence and note as one line (None when the catalog gives none)."""
    s = system.sources.get(name)
    if s is None:
        return None
    src = ", ".join(s.source) or "none"
    return f"{src} ({s.confidence}){': ' + s.note if s.note else ''}"


def _catalog_source(system, name: str) -> str:
    t = source_text(system, name)
    return "not given in the catalog" if t is None else f"catalog systems.yaml {system.id}.{name}: {t}"


def _assumption_source(a, key: str) -> str:
    e = a.get(key)
    return f"assumptions.yaml {key}: {e.source}"


def range_of(system, name: str, nominal):
    """(low, nominal, high) of a system value: its catalog range where one is given, else the nominal three times."""
    r = system.ranges.get(name)
    if nominal is None:
        return None, None, None
    if r is None:
        return nominal, nominal, nominal
    return r.low, nominal, r.high


def rental_rate(system, a) -> dict:
    """Rental price per chip-hour (low, nominal, high) and its basis under the assumptions ``a``
    (:class:`trainsim.assumptions.Assumptions`): a market rate where one is sourced, else the
    cost-recovery rental-equivalent."""
    chip = system.chip.id
    lo_t, nom_t, hi_t = a.bounds("rental_usd_per_chip_hour")
    if chip in (nom_t or {}):
        return {"low": lo_t.get(chip, nom_t[chip]), "nominal": nom_t[chip], "high": hi_t.get(chip, nom_t[chip]),
                "basis": "market rental (assumptions.yaml rental_usd_per_chip_hour)"}
    price = range_of(system, "price_per_chip_usd", system.price_per_chip_usd)
    power = range_of(system, "power_per_chip_w", system.power_per_chip_w)
    life, pue, kwh, mk = (a.bounds(k) for k in ("life_years", "pue", "electricity_usd_per_kwh", "rental_markup"))
    if price[1] is None or power[1] is None:
        return {"low": None, "nominal": None, "high": None,
                "basis": f"no rental market and no {'price' if price[1] is None else 'power'} for {chip}"}
    vals = []
    for i, j in ((0, 2), (1, 1), (2, 0)):   # cheap end: low price, long life, low power ...
        vals.append(hourly_cost_recovery(price[i], power[i], life[j], pue[i], kwh[i]) * mk[i])
    return {"low": vals[0], "nominal": vals[1], "high": vals[2],
            "basis": "rental-equivalent: (system price / life + power x PUE x $/kWh) x rental_markup"}


def run_cost(est, *, price_per_chip_hour: float | None = None, pue: float | None = None,
             electricity_usd_per_kwh: float | None = None, goodput: float | None = None,
             goodput_model: str | None = None, assumptions=None) -> dict | None:
    """Chip-hours, energy and cost (rental and capex) of the whole run of ``est``; None without training.tokens.

    ``goodput`` (useful fraction of wall time) stretches ideal days to wall-clock days; without it the answer is
    labelled "without failures". Overrides replace the catalog / assumption value and are reported as the source.
    """
    if est.days is None:
        return None

    a = assumptions or Assumptions()
    run = est.run
    system, chips = run.system, run.chips
    frac = 1.0 if goodput is None else float(goodput)
    days = est.days / frac if frac > 0 else float("inf")
    hours = days * 24.0
    ch = chip_hours(days, chips)

    pue_v, pue_src = (pue, "--pue") if pue is not None else (a["pue"], _assumption_source(a, "pue"))
    kwh_v, kwh_src = ((electricity_usd_per_kwh, "--electricity") if electricity_usd_per_kwh is not None
                      else (a["electricity_usd_per_kwh"], _assumption_source(a, "electricity_usd_per_kwh")))
    life_v, life_src = a["life_years"], _assumption_source(a, "life_years")
    power = system.power_per_chip_w
    price = system.price_per_chip_usd
    energy = None if power is None else energy_mwh(power, chips, hours, pue_v)
    elec = None if energy is None else energy * 1000.0 * kwh_v
    amort = None if price is None else amortised_capex_usd(price, chips, days, life_v)
    if price_per_chip_hour is not None:
        rate, rate_src = float(price_per_chip_hour), "--price-per-chip-hour"
    else:
        r = rental_rate(system, a)
        rate = r["nominal"]
        rate_src = (f"{r['basis']}: {a.get('rental_usd_per_chip_hour').source}" if r["basis"].startswith("market")
                    else r["basis"])
    rental = None if rate is None else rate * ch
    capex = None if amort is None or elec is None else amort + elec
    if math.isfinite(days):   # a finite run whose cost overflows: an input beyond any physical range (1e308 USD)
        for what, v, given in (("energy", energy, "--pue" if pue is not None else "system.power_per_chip_w"),
                               ("electricity cost", elec, "--electricity" if electricity_usd_per_kwh is not None
                                else "system.power_per_chip_w"),
                               ("amortised capex", amort, "system.price_per_chip_usd"),
                               ("rental cost", rental, "--price-per-chip-hour")):
            if v is not None and not math.isfinite(v):
                raise TrainsimError(f"the run's {what} overflows ({ch:,.0f} chip-hours at PUE {pue_v:g}, "
                                    f"{power or 0:g} W and ${price or 0:g} per chip, ${rate or 0:g}/chip-hour, "
                                    f"${kwh_v:g}/kWh): expected a {given} within physical range", field=given)
    basis = (WITHOUT_FAILURES if goodput is None
             else f"with failures: {goodput_model or GOODPUT_MODEL}, goodput {fraction(frac)}")
    return {
        "basis": basis,
        "days": days,
        "chip_hours": ch,
        "energy_mwh": energy,
        "cost_rental_usd": rental,
        "cost_capex_usd": capex,
        "capex_amortised_usd": amort,
        "electricity_usd": elec,
        "inputs": {
            "rental_usd_per_chip_hour": {"value": rate, "source": rate_src},
            "pue": {"value": pue_v, "source": pue_src},
            "electricity_usd_per_kwh": {"value": kwh_v, "source": kwh_src},
            "power_per_chip_w": {"value": power, "source": _catalog_source(system, "power_per_chip_w")},
            "price_per_chip_usd": {"value": price, "source": _catalog_source(system, "price_per_chip_usd")},
            "life_years": {"value": life_v, "source": life_src},
        },
    }
