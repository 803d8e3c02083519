"""Scenario kind ``interconnect-cut`` (S9): one MoE job on a system with a cut scale-up link vs the same chips
with the full link, each with its own best plan, beside dense models of equal active size and of equal compute."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field
from ...types_checked import StatedChips
from ...spec import chips_as_stated

from ...numfmt import days
from ...model.counts import compute_optimal_params, count, training_flops_6nd
from ..capacity import dense_shape
from ..common import best, make_run, plan_summary
from .base import KindInputs, KindResult, _input, _model_inputs, _need, family_validation, register_kind


class Inputs(KindInputs):
    """S9's inputs: the model, the training, the chip count and the two systems."""

    model: Any = Field(description="catalog id, config path or inline model mapping (the MoE)")
    model_source: str = Field("catalog", description="source of the model")
    training: dict = Field(description="training keys of a run spec")
    chips: StatedChips = Field(description="chips of both runs")
    chips_note: str = Field("scenario file", description="source of the chip count")
    restricted: Any = Field(description="the system with the cut link")
    #: keys an entry of a list field must hold (base.parse_inputs)
    ENTRY_KEYS: ClassVar[dict] = {"history": (("date", "event"),)}
    history: list[dict] = Field(default_factory=list, description="dated events of the restrictions, each "
                                                                  "{date, event, source}")
    reference: Any = Field(description="the system with the full link (the same chip, only the link restored, so "
                                        "that the difference is the cut's alone)")
    framework: str | None = Field(None, description="software-stack profile of every run (the source's stack)")
    framework_source: str = Field("scenario file", description="source of the software stack")
    optimizer: dict | None = Field(None, description="optimizer keys of a run spec (state precisions, offload)")
    published_plan: dict | None = Field(None, description="the plan the MoE run's source states; each system's "
                                                          "best plan is the faster of it and the searched one")
    published_plan_source: str = Field("scenario file", description="source of the published plan")


def _slowdown_pct(restricted, reference) -> float | None:
    """How much longer the run takes with the cut link, in percent: (days restricted / days reference - 1) x 100;
    None when either side has no plan. The one formula of the searched and the published plans' slowdowns."""
    if not restricted or not reference:
        return None
    return (restricted.days / reference.days - 1.0) * 100.0


def compute(inp: Inputs, base_dir: Path) -> KindResult:
    """The numbers of scenario kind S9 ``interconnect-cut`` for ``inp`` (paths from ``base_dir``), no prose."""
    doc = inp.doc()
    a = inp.assumption_set()
    slow, fast = _need(doc, "restricted"), _need(doc, "reference")
    # "24 pods" of the restricted system, or an integer as it is
    chips = chips_as_stated(inp.chips, slow, base_dir, f"scenario {doc.get('id', '?')}")
    tr = dict(inp.training)
    stack = {"framework": inp.framework, "optimizer": inp.optimizer}
    moe_run = make_run(doc["model"], slow, chips, tr, base_dir, name=str(doc.get("id")), **stack)
    c = count(moe_run.arch)
    C = training_flops_6nd(c.active_params, float(tr["tokens"]))
    models = {"moe": (doc["model"], tr, inp.model_source)}
    ratio = float(a["tokens_per_param"])
    n_opt = compute_optimal_params(C, ratio)
    models["dense_equal_active"] = (dense_shape(c.active_params, name="dense-equal-active"), tr,
                                    "Llama-3-like dense model with the MoE's active parameter count, same tokens")
    models["dense_chinchilla"] = (dense_shape(n_opt, name="dense-chinchilla"),
                                  {**tr, "tokens": ratio * n_opt},
                                  "Llama-3-like dense model of the same training FLOPs, Chinchilla-optimal "
                                  "(N = sqrt(C / 120), D = 20 N; Hoffmann et al. 2022)")
    rows = {}
    for key, (m, t, note) in models.items():
        r, origin, pubs = {}, {}, {}
        for label, sysv in (("restricted", slow), ("reference", fast)):
            run = make_run(m, sysv, chips, t, base_dir, name=f"{doc.get('id')}-{key}", **stack)
            r[label], origin[label] = best(run).best, "searched"
            if key == "moe" and inp.published_plan:     # the source's own plan, where the search misses it
                pub = best(make_run(m, sysv, chips, t, base_dir, name=f"{doc.get('id')}-{key}-published",
                                    plan=inp.published_plan, **stack)).best
                pubs[label] = pub
                if pub is not None and (r[label] is None or pub.days < r[label].days):
                    r[label], origin[label] = pub, "published"
        cc = count(r["restricted"].run.arch) if r["restricted"] else None
        rows[key] = {
            "note": note, "total_params": float(cc.total_params) if cc else None,
            "active_params": float(cc.active_params) if cc else None, "tokens": float(t["tokens"]),
            "training_flops_6na": training_flops_6nd(cc.active_params, float(t["tokens"])) if cc else None,
            "days_restricted": r["restricted"].days if r["restricted"] else None,
            "days_reference": r["reference"].days if r["reference"] else None,
            "slowdown_pct": _slowdown_pct(r["restricted"], r["reference"]),
            "plan_restricted": r["restricted"].plan if r["restricted"] else None,
            "plan_reference": r["reference"].plan if r["reference"] else None,
            "plan_origin": origin,
            "published_days": {k: (v.days if v is not None else None) for k, v in pubs.items()} or None,
            "published_slowdown_pct": _slowdown_pct(pubs.get("restricted"), pubs.get("reference")),
            "tp_comm_share_restricted": (r["restricted"].breakdown.get("tp_comm", 0.0) / r["restricted"].step_time_s)
            if r["restricted"] else None,
            "ep_share_restricted": (r["restricted"].breakdown.get("ep_alltoall", 0.0) / r["restricted"].step_time_s)
            if r["restricted"] else None,
            "_est": r["restricted"],
        }
    numbers = {"chips": chips, "restricted": slow, "reference": fast, "history": inp.history,
               "scale_up_gb_s": {k: make_run(doc["model"], s, chips, tr, base_dir).system.levels[0].bw / 1e9
                                 for k, s in (("restricted", slow), ("reference", fast))},
               "chip": {k: make_run(doc["model"], s, chips, tr, base_dir).system.chip.id
                        for k, s in (("restricted", slow), ("reference", fast))},
               "framework": inp.framework,
               "runs": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in rows.items()}}
    return KindResult(numbers=numbers, best_plan=plan_summary(rows["moe"]["_est"]),
                      assumptions=_model_inputs(doc) + [_input("chips", chips, inp.chips_note)]
                      + ([_input("framework", inp.framework, inp.framework_source)] if inp.framework else [])
                      + ([_input("published_plan", inp.published_plan, inp.published_plan_source)]
                         if inp.published_plan else []) + a.report(),
                      validation_error=family_validation([moe_run]),
                      facts={"total": float(c.total_params), "active": float(c.active_params)})


def verdict(res: KindResult) -> tuple[str, str, str]:
    """Scenario kind S9 ``interconnect-cut``'s (verdict class, headline, details) from its computed result."""
    n, f = res.numbers, res.facts
    rows = n["runs"]
    mo = rows["moe"]
    if mo["slowdown_pct"] is None:
        return "not supported", "The MoE run does not fit on one of the systems.", \
            "the MoE run does not fit on one of the systems"
    text = (f"NVLink {n['scale_up_gb_s']['reference']:.0f} -> {n['scale_up_gb_s']['restricted']:.0f} "
            f"GB/s per direction: {f['total'] / 1e9:.0f}B/{f['active'] / 1e9:.0f}B MoE on {n['chips']:,} chips "
            f"takes {days(mo['days_restricted'], unit=False)} vs {days(mo['days_reference'])} ({mo['slowdown_pct']:+.1f}%) "
            f"with the best plan for each")
    if mo.get("published_slowdown_pct") is not None:
        pd = mo["published_days"]
        text += (f" ({days(pd['restricted'], unit=False)} vs {days(pd['reference'])}, {mo['published_slowdown_pct']:+.1f}%, "
                 f"with the plan its source published)")
    for k in ("dense_equal_active", "dense_chinchilla"):
        d = rows[k]
        if d["slowdown_pct"] is not None:
            text += (f"; {d['note'].split(',')[0]} ({d['total_params'] / 1e9:.0f}B, "
                     f"{d['tokens'] / 1e12:.1f}T tokens): {d['slowdown_pct']:+.1f}%")
    pr, pf = mo["plan_restricted"], mo["plan_reference"]
    og = mo.get("plan_origin") or {}
    tag = lambda k: " as published" if og.get(k) == "published" else ""  # noqa: E731
    text += (f". Best H800-side plan: tp={pr['tp']} ep={pr['ep']} pp={pr['pp']}{tag('restricted')} "
             f"(tensor-parallel traffic {mo['tp_comm_share_restricted']:.0%} and expert all-to-all "
             f"{mo['ep_share_restricted']:.0%} of the step), vs tp={pf['tp']} ep={pf['ep']} pp={pf['pp']}"
             f"{tag('reference')} with full NVLink on the same chip"
             + (f"; software stack {n['framework']}" if n.get("framework") else "") + ". History: "
             + "; ".join(f"{h['date']}: {h['event']}" for h in n.get("history") or [])
             + ". Only the interconnect was cut; FLOPs and HBM are the full chip's")
    dense_max = max((abs(rows[k]["slowdown_pct"]) for k in ("dense_equal_active", "dense_chinchilla")
                     if rows[k]["slowdown_pct"] is not None), default=None)
    loss = lambda x: "little" if x < 10 else "a noticeable share of throughput"  # noqa: E731
    text += f"; with plans chosen for the cut the MoE loses {loss(abs(mo['slowdown_pct']))}"
    if dense_max is not None:
        text += f", the dense models {loss(dense_max)} (up to {dense_max:.1f}%)"
    dense = rows.get("dense_chinchilla") or {}
    head = (f"The H800 was not the first: the A800 (an A100 with NVLink cut from 600 to 400 GB/s, Nov 2022) came "
            f"first, the H800 followed in 2023, and the Oct 2023 rule restricted both. The H800's cut costs a "
            f"DeepSeek-V3-class run {mo['slowdown_pct']:+.1f}% "
            + ("with the plan DeepSeek published for it" if og.get("restricted") == "published"
               else "with a plan chosen for it")
            + (f" (a dense model of the same compute {dense['slowdown_pct']:+.1f}%)" if dense.get("slowdown_pct")
               is not None else "") + ".")
    res.facts["deciding"] = (f"history: the A800 came first (Nov 2022); the cut costs {mo['slowdown_pct']:+.1f}% "
                             f"with a good plan")
    return "not supported", head, text


handle = register_kind("interconnect-cut", Inputs, compute, verdict)
