"""Scenario kind ``pretrain-compare`` (S1): one training job on several systems (and precisions), with chips x days,
MFU, memory fit and, optionally, the count of scale-up units that finishes it in a given number of days."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field
from ...types_checked import PosFloat, PosInt, StatedChips

from ..common import make_run, plan_summary
from ..economics import training_flops
from ..sizing import size
from .base import (KindInputs, KindResult, _count_check, _flops_claimed, _input, _job_run, _listify, _model_inputs,
                   _public, _run_row, _stack_input, _system_id, family_validation, chip_name, register_kind, short_name)
from ...catalog.load import get_system


def _system_name(system) -> str:
    try:
        return short_name(get_system(_system_id(system)))
    except Exception:  # noqa: BLE001 - an inline system keeps its id
        return _system_id(system) if system is not None else ""


class Inputs(KindInputs):
    """S1's inputs: the model, the training, and the systems to compare (each ``{system, precision, chips}``)."""

    model: Any = Field(description="catalog id, config path or inline model mapping")
    training: dict = Field(description="training keys of a run spec (tokens, seq_len, batch, precision)")
    #: keys an entry of a list field must hold (base.parse_inputs)
    ENTRY_KEYS: ClassVar[dict] = {"systems": (("system",),)}
    systems: list[dict] = Field(min_length=1, description="entries {system, precision (one or a list), chips (optional), "
                                            "training (optional: training keys for this system only, with "
                                            "training_source), framework (optional: the software stack this "
                                            "system runs, with framework_source; else the file's framework, else "
                                            "the default profile)}")
    chips: StatedChips | None = Field(None, description="chips of every entry without its own 'chips' (a count, or "
                                      "'24 pods': whole scale-up domains of each entry's own system, as in a run spec)")
    claimed: dict | None = Field(None, description="the claim's figures (total_params, active_params, tokens)")
    size_for_days: PosInt | PosFloat | None = Field(None, description="if given: the count of units that finishes the run in "
                                                          "this many days (with failures)")
    size_system: Any = Field(None, description="the system that sizing uses (default: the first entry's)")
    size_precision: str | None = Field(None, description="the precision that sizing uses (default: training's)")
    fallback_system: str = Field("dgx-h100", description="system used only to resolve the model's shape when no "
                                                         "entry has a plan that fits (the FLOP count needs a run)")
    chips_note: str = Field("", description="where the chip count comes from")


def compute(inp: Inputs, base_dir: Path) -> KindResult:
    """The numbers of scenario kind S1 ``pretrain-compare`` for ``inp`` (paths from ``base_dir``), no prose."""
    doc = inp.doc()
    a = inp.assumption_set()
    tr = inp.training
    rows, entry_system = [], []     # each entry's resolved system (its default stack follows its chip's vendor)
    for entry in inp.systems:
        for prec in _listify(entry.get("precision", tr.get("precision", "bf16"))):
            run = _job_run(doc, base_dir, system=entry["system"], chips=entry.get("chips", inp.chips),
                           precision=prec, training=entry.get("training"), framework=entry.get("framework"))
            rows.append(_run_row(run, a))
        entry_system.append(run.system)
    per_system = [x for e, s_obj in zip(inp.systems, entry_system)
                  for x in ([_stack_input(f"software stack on {_system_name(e['system'])}", e, doc, system=s_obj)]
                            + ([_input(f"training on {_system_name(e['system'])}", e["training"],
                                       e.get("training_source", "scenario file"))] if e.get("training") else []))]
    fitted = [r for r in rows if r.get("_est")]
    frun = fitted[0]["_est"].run if fitted else make_run(inp.model, inp.fallback_system, 8, tr, base_dir)
    arch = frun.arch
    fl = training_flops(arch, frun.training.tokens, frun.training.seq_len)   # as the run spec parsed them ("28T")
    claimed = inp.claimed or {}
    numbers: dict[str, Any] = {
        "training_flops_6na": fl["flops_6na"],
        "training_flops_claimed_6na": _flops_claimed(claimed),
        "model_flops_incl_attention": fl["model_flops"],
        "params": _count_check(arch, claimed),
        "by_system": [_public(r) for r in rows],
    }
    sized, s_entry = None, None
    if inp.size_for_days:
        s_entry = inp.size_system if inp.size_system is not None else (rows[0]["system"] if rows else None)
        s_fw = next((e.get("framework") for e in inp.systems if _system_id(e["system"]) == _system_id(s_entry)), None)
        srun = _job_run(doc, base_dir, system=s_entry, chips=inp.chips or 1, precision=inp.size_precision,
                        framework=s_fw)
        sized = size(srun, float(inp.size_for_days), unit="system", assumptions=a)
        numbers["sizing"] = {k: v for k, v in sized.to_dict().items() if k not in ("best_plan", "probes")}
    best_row = min((r for r in rows if r.get("fits")), key=lambda r: r["chip_days"], default=None)
    facts = {"rows": [_public(r) for r in rows], "flops_6na": fl["flops_6na"], "active_params": fl["active_params"],
             "tokens": frun.training.tokens, "size_for_days": inp.size_for_days,
             "size_system": _system_id(s_entry) if s_entry is not None else None,
             "size_system_name": _system_name(s_entry),
             "sized": None if sized is None else {"feasible": sized.feasible, "units": sized.units,
                                                  "chips": sized.chips, "message": sized.message}}
    return KindResult(
        numbers=numbers, best_plan=plan_summary(best_row["_est"]) if best_row else None,
        assumptions=_model_inputs(doc) + [_input("chips", inp.chips, inp.chips_note)] + per_system + a.report(),
        validation_error=family_validation(r["_est"].run for r in rows if r.get("_est")), facts=facts)


def _stack(r: dict) -> str:
    """', <stack>' of a row that names the software stack it ran (every computed row does)."""
    return f", {r['framework']}" if r.get("framework") else ""


def verdict(res: KindResult) -> tuple[str, str, str]:
    """Scenario kind S1 ``pretrain-compare``'s (verdict class, headline, details) from its computed result."""
    f = res.facts
    rows, sized = f["rows"], f["sized"]
    fits_all = all(r.get("fits") for r in rows)
    parts = []
    for r in rows:
        if r.get("fits"):
            parts.append(f"{r['chips']:,} x {chip_name(r['chip'])} ({r['precision']}{_stack(r)}): "
                         f"{r['days']['nominal']:.0f} days "
                         f"({r['effective_days']['nominal']:.0f} with failures), MFU {r['mfu']:.0%}")
        else:
            parts.append(f"{chip_name(r['chip'])} ({r['precision']}{_stack(r)}): does not fit "
                         f"({r.get('message', '')})")
    text = (f"the run is {f['flops_6na']:.2e} FLOP (6 x {f['active_params'] / 1e9:.1f}B active x "
            f"{f['tokens'] / 1e12:.0f}T tokens); " + "; ".join(parts))
    if sized is not None:
        text += (f"; finishing in {f['size_for_days']} days (with failures) takes {sized['units']} x "
                 f"{f['size_system_name']} ({sized['chips']:,} chips)" if sized["feasible"] else f"; {sized['message']}")
    cls = "supported" if fits_all and (sized is None or sized["feasible"]) else "not supported"
    if fits_all:
        text += ". The claim's size and schedule are consistent with these numbers (its start date is not public, " \
                "so 'by Feb 2026' is checked only as 'a few months on a cluster of this size')"
    fit = [r for r in rows if r.get("fits")]
    head = (f"The {f['flops_6na']:.1e} FLOP run (6 x {f['active_params'] / 1e9:.0f}B active x "
            f"{f['tokens'] / 1e12:.0f}T tokens) fits on every chip compared")
    if fit:
        lo = min(fit, key=lambda r: r["effective_days"]["nominal"])
        hi = max(fit, key=lambda r: r["effective_days"]["nominal"])
        head += (f" and takes {lo['effective_days']['nominal']:.0f}-{hi['effective_days']['nominal']:.0f} days "
                 f"with failures on {fit[0]['chips']:,} chips")
    if not fits_all:
        head = "The run does not fit on every chip compared"
    if sized is not None and sized["feasible"]:
        head += (f". {sized['units']} {f['size_system_name']} units ({sized['chips']:,} chips) finish it in "
                 f"{f['size_for_days']:g} days, so a finish by Feb 2026 needs only a start a few months earlier.")
    else:
        head += "."
    if fit:
        res.facts["deciding"] = (f"none within the ranges: the slowest chip needs "
                                 f"{max(r['effective_days']['high'] for r in fit):.0f} days at the pessimistic end; "
                                 f"the start date is not public")
    return cls, head, text


handle = register_kind("pretrain-compare", Inputs, compute, verdict)
