"""Scenario kind ``posttrain_multicluster`` (seed scenario S7): K domain teachers RL-trained on K separate clusters
and distilled on-policy into one student, versus the same post-training on one cluster with the summed chips.

The scenario file gives (each input with ``source``)::

    inputs:
      student: {value: qwen3-30b-a3b, source: ...}        # catalog id, config path or inline mapping
      teacher: {value: qwen3-30b-a3b, source: ...}        # default: the student (same-origin teachers)
      domains: {value: 4, source: ...}
      cluster: {system: cloudmatrix-384, chips: 384, source: ...}   # every domain cluster
      wan: {bandwidth: "10 Gb/s", latency: "30 ms", source: ...}   # between any two clusters, each direction
      teacher_rl: {prompts: 512, samples_per_prompt: 16, prompt_len: 1024, rollout_len: 16384, steps: 200,
                   mode: async, source: ...}              # one domain's RL job (post-training `step:` keys)
      distillation: {..., logprobs: sampled, source: ...} # the multi-teacher OPD job
      precision: {value: bf16, source: ...}               # training precision (rollouts: rollout_precision)
      tolerance: {value: 0.10, source: ...}               # "almost trivial" = within this of one big cluster
      wan_range: {value: ["1 Gb/s", "100 Gb/s"], source: ...}   # optional: bandwidths for the range
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..catalog.load import require_usable
from ..catalog.resolve import resolve_system
from ..errors import TrainsimError, readable_count, refuse_unknown_keys, short
from ..model.counts import count
from ..model.load import resolve_model
from ..scenario.registry import register
from ..spec import chips_as_stated
from ..types_checked import MAX_CHIPS
from ..units import bytes_per_s_to_gbit as _gbit, gbit_to_bytes_per_s, parse_fraction, parse_int_count
from .multicluster import MultiClusterCase, compare, multi_cluster, single_summed
from .spec import ROLLOUT_PRECISIONS, LinkPart, StepPart
from ..frameworks import PRECISIONS
from ..inference.calib import constant_sources
from .timeline import LOGPROB_BYTES, ID_BYTES
from ..inference.validate import held_out_summary
from ..scenario.kinds.base import family_validation
from .validate import error_table as rl_errors, summary as rl_summary
from .multicluster import _bisect

_STEP_KEYS = set(StepPart.model_fields)


def _entry(inputs: dict, key: str, default=None, required: bool = True):
    if key not in inputs:
        if required and default is None:
            raise TrainsimError("missing input", field=f"inputs.{key}")
        return default, "trainsim default"
    e = inputs[key]
    if isinstance(e, dict) and "value" in e:
        return e["value"], str(e.get("source", ""))
    if isinstance(e, dict):
        return {k: v for k, v in e.items() if k not in ("source", "note")}, str(e.get("source", ""))
    return e, ""


def _step(d: dict, field: str) -> StepPart:
    bad = set(d) - _STEP_KEYS
    if bad:
        raise TrainsimError(f"unknown key(s) {sorted(bad)}; expected {sorted(_STEP_KEYS)}", field=field)
    try:
        return StepPart.model_validate(d)
    except Exception as exc:  # pydantic ValidationError
        raise TrainsimError(str(exc).splitlines()[-1].strip(), field=field) from None


#: the top-level keys and the ``inputs`` of a ``posttrain_multicluster`` scenario (what build_case,
#: _student_table and posttrain_multicluster read)
TOP_KEYS = ("id", "kind", "claim", "question", "inputs")
INPUT_KEYS = ("student", "teacher", "domains", "cluster", "wan", "wan_range", "teacher_rl", "distillation",
              "precision", "rollout_precision", "tolerance", "student_sizes")


def check_keys(doc: dict) -> None:
    """Refuse a key outside :data:`TOP_KEYS` and, under ``inputs``, :data:`INPUT_KEYS` (notes and sources free)."""
    refuse_unknown_keys(doc, TOP_KEYS, reads="posttrain_multicluster reads")
    inp = doc.get("inputs") or {}
    if isinstance(inp, dict):
        refuse_unknown_keys(inp, INPUT_KEYS, prefix="inputs.", reads="posttrain_multicluster reads")


def _bandwidth(value, field: str) -> float:
    """A WAN bandwidth as the post-training spec's links take it (:class:`.spec.LinkPart`: units parsed, finite,
    > 0), in bytes/s."""
    try:
        return float(LinkPart.model_validate({"bandwidth": value}).bandwidth)
    except ValidationError as exc:
        raise TrainsimError(exc.errors()[0]["msg"].removeprefix("Value error, "), field=field) from None


def _mapping(value, field: str, keys: tuple[str, ...], required: str, hint: str) -> None:
    """Refuses a scenario input that is not a mapping of ``keys`` (+ ``source``) holding ``required``: one line
    naming ``field`` (a typo such as ``latncy:`` is an unknown key, not ignored)."""
    if not isinstance(value, dict):
        raise TrainsimError(f"expected a mapping {{{', '.join(keys)}, source}}, got {short(value)}", field=field)
    refuse_unknown_keys(value, keys, prefix=field + ".")
    if required not in value:
        raise TrainsimError(f"missing key; expected {required}: ({hint})", field=f"{field}.{required}")


def _wan_link(wan) -> tuple[float, float]:
    """(bandwidth bytes/s, latency s) of ``inputs.wan``, validated as a post-training spec's link
    (:class:`.spec.LinkPart`: bandwidth > 0 and required, latency >= 0, units parsed; other keys refused). A
    bandwidth of 0 exited 3 (ZeroDivisionError), a negative one or a negative latency was evaluated, a missing
    bandwidth exited 3 (KeyError) and ``latncy:`` was ignored (qa21)."""
    _mapping(wan, "inputs.wan", ("bandwidth", "latency"), "bandwidth", "each direction, e.g. '10 Gb/s'")
    try:
        link = LinkPart.model_validate(wan)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise TrainsimError(e["msg"].removeprefix("Value error, "),
                            field="inputs.wan." + ".".join(str(x) for x in e["loc"])) from None
    return float(link.bandwidth), float(link.latency)


def wan_range(doc: dict) -> tuple[float, float]:
    """The ``inputs.wan_range`` ends (bytes/s; default 1 and 100 Gb/s): exactly two bandwidths, each as
    :func:`_bandwidth` takes it, low <= high. A single string was indexed character by character ('10 Gb/s'[0]
    = '1' byte/s), a 0 exited 3, a NaN was evaluated and a middle value was ignored (qa21)."""
    wr, _ = _entry(doc.get("inputs") or {}, "wan_range", ["1 Gb/s", "100 Gb/s"], required=False)
    field = "inputs.wan_range"
    if not isinstance(wr, (list, tuple)) or len(wr) != 2:
        raise TrainsimError(f"expected [low, high], two bandwidths such as ['1 Gb/s', '100 Gb/s'], got {short(wr)}",
                            field=field)
    lo, hi = (_bandwidth(v, f"{field}[{i}]") for i, v in enumerate(wr))
    if lo > hi:
        raise TrainsimError(f"expected [low, high] with low <= high, got {short(list(wr))}", field=field)
    return lo, hi


def build_case(doc: dict, base_dir: Path) -> tuple[MultiClusterCase, list[dict]]:
    """The :class:`MultiClusterCase` a ``posttrain_multicluster`` scenario's ``inputs`` describe (paths
    relative to ``base_dir``), with the assumption rows recording each input and its source; a key outside
    :data:`TOP_KEYS` / :data:`INPUT_KEYS` is refused."""
    check_keys(doc)
    inp = doc.get("inputs") or {}
    assumptions: list[dict] = []

    def note(key, value, source, note_=""):
        d = {"key": key, "value": value, "source": source or "scenario file", "confidence": "scenario input"}
        if note_:
            d["note"] = note_
        assumptions.append(d)

    student_v, src = _entry(inp, "student")
    student = resolve_model(student_v, base_dir, field="inputs.student")
    note("student", student_v if isinstance(student_v, str) else student.name, src)
    teacher_v, src = _entry(inp, "teacher", student_v, required=False)
    teacher = resolve_model(teacher_v, base_dir, field="inputs.teacher")
    note("teacher", teacher_v if isinstance(teacher_v, str) else teacher.name, src)
    k, src = _entry(inp, "domains")
    k = parse_int_count(k, "inputs.domains.value")     # 'abc' or '1.5K' exited 3 through int()
    if k < 1:
        raise TrainsimError(f"expected at least one domain, got {k}", field="inputs.domains.value")
    note("domains (K teachers = K clusters)", k, src)
    cl, src = _entry(inp, "cluster")
    _mapping(cl, "inputs.cluster", ("system", "chips"), "system", "a catalog id or an inline mapping")
    system = resolve_system(cl["system"], base_dir, field="inputs.cluster.system")
    require_usable(system.chip)
    chips = parse_int_count(chips_as_stated(cl.get("chips"), system, base_dir, None, "inputs.cluster.chips"),
                            "inputs.cluster.chips")           # 384, '384', '1 pod
    if not 1 <= chips <= MAX_CHIPS:      # -1 reached the plan search's factorisation (exit 3)
        raise TrainsimError(f"expected 1 to {MAX_CHIPS:,} chips, got {readable_count(chips)}",
                            field="inputs.cluster.chips")
    note("cluster (each domain)", {"system": system.id, "chips": chips}, src)
    wan, src = _entry(inp, "wan")
    bw, lat = _wan_link(wan)
    note("WAN link between clusters (each direction)", {"bandwidth_gbit_s": _gbit(bw), "latency_s": lat}, src)
    rl_d, src = _entry(inp, "teacher_rl")
    rl = _step(rl_d, "inputs.teacher_rl")
    note("teacher RL job (per domain)", rl.model_dump(), src)
    od_d, src = _entry(inp, "distillation")
    od = _step(od_d, "inputs.distillation")
    note("multi-teacher on-policy distillation", od.model_dump(), src)
    prec, src = _entry(inp, "precision", "bf16", required=False)
    if prec not in PRECISIONS:      # else a pydantic ValidationError deep in the case (exit 3)
        raise TrainsimError(f"expected one of {', '.join(PRECISIONS)}, got {prec!r}", field="inputs.precision.value")
    note("training precision", prec, src)
    rprec, src = _entry(inp, "rollout_precision", "bf16", required=False)
    if rprec not in ROLLOUT_PRECISIONS:
        raise TrainsimError(f"expected one of {', '.join(ROLLOUT_PRECISIONS)}, got {rprec!r}",
                            field="inputs.rollout_precision.value")
    note("rollout / scoring precision", rprec, src)
    tol, src = _entry(inp, "tolerance", 0.10, required=False)
    tol = parse_fraction(tol, "inputs.tolerance.value")
    note("'almost trivial' tolerance vs one summed-chip cluster", tol, src)
    case = MultiClusterCase(student=student, teacher=teacher, domains=int(k), system=system, chips_per_cluster=chips,
                            wan_bandwidth=bw, wan_latency=lat, rl_step=rl, opd_step=od, precision=str(prec),
                            rollout_precision=str(rprec), tolerance=float(tol))
    return case, assumptions


def _model_assumptions() -> list[dict]:
    out = [{"key": f"inference constant {k}", "value": v.split(" (", 1)[0], "source": v.split(" (", 1)[1][:-1]
            if " (" in v else "", "confidence": "model constant"} for k, v in constant_sources().items()]
    out += [
        {"key": "bytes per token crossing the WAN", "value": {"token id": ID_BYTES, "sampled log-prob": LOGPROB_BYTES},
         "source": "shared/data/posttraining-inference.md sec. 1.4 (TML / Qwen3-style reverse-KL OPD: one log-prob "
                   "per sampled token; full-vocabulary logits impractical over WAN, AsyncOPD)",
         "confidence": "derived"},
        {"key": "teacher scoring = one prefill over prompt + response (no teacher decoding)",
         "value": True, "source": "Thinking Machines 'On-Policy Distillation' (2025); Qwen3 report sec. 4.5",
         "confidence": "secondary"},
        {"key": "async mode = one-step off-policy (rollout of step i+1 overlaps scoring and training of step i)",
         "value": 1, "source": "slime, AReaL, LongCat DORA (posttraining-inference.md sec. 1.3)",
         "confidence": "secondary"},
        {"key": "teachers stay where they were trained; the student trains on cluster 0",
         "value": True, "source": "posttraining-inference.md sec. 1.4 'Implications for a geographically split MOPD'",
         "confidence": "design choice"},
        {"key": "extra student forward pass per step (old-policy log-probs)", "value": 1,
         "source": "GRPO/PPO practice (recompute log-probs at learner time, AsyncOPD)", "confidence": "assumption"},
    ]
    return out


def _inference_validation(chip_families=()) -> dict:   # family names or (system, chips) pairs
    """The held-out errors S7's answer rests on: the serving model's leave-one-out error (rollouts, teacher
    scoring), the whole RL step check against published step times (validation/rl/, nothing fitted to it) and the
    training model's error on the clusters' chip family (the student's and teachers' updates)."""
    out: dict[str, Any] = {"inference_model": held_out_summary()
                           or {"note": "no leave-one-out figure in inference.yaml (run scripts/calibrate_inference.py)"}}
    try:
        sm = rl_summary(rl_errors())
        out["rl_whole_step"] = {**sm, "basis": f"whole RL steps of {sm.get('points')} published runs "
                                               f"(validation/rl/; nothing fitted to them)"}
    except Exception as exc:  # noqa: BLE001 - the validation folder may be absent in an installed package
        out["rl_whole_step"] = {"note": f"not available: {exc}"}
    out.update({f"training_model ({fam})": v for fam, v in family_validation(chip_families).items()})
    return out


def _plateau(case: MultiClusterCase, cmp_: dict) -> dict:
    """The gap at unlimited WAN bandwidth and the bandwidth (Gb/s) that comes within one percentage point of it:
    beyond it more WAN bandwidth no longer helps (a plain number even where no bandwidth meets the tolerance)."""
    summed = cmp_["single_summed"]["wall_time_s"]
    gap_inf = multi_cluster(case, 1e13)["wall_time_s"] / summed
    bw = _bisect(lambda b: multi_cluster(case, b)["wall_time_s"] / summed <= gap_inf + 0.01, 1e3, 1e13)
    return {"multi_over_summed_unlimited_wan": gap_inf, "wan_gbit_s_within_1pt_of_unlimited": _gbit(bw)}


def _student_table(doc: dict, case: MultiClusterCase, base_dir: Path, gbs) -> list[dict]:
    """The same comparison for each student size of ``inputs.student_sizes`` (teachers the same model as the
    student, same-origin as MOPD's): wall time, ratio to one summed cluster, and the WAN bandwidth needed to stay
    within the tolerance, in plain numbers."""
    sizes, _ = _entry(doc.get("inputs") or {}, "student_sizes", [], required=False)
    rows = []
    for i, m in enumerate(sizes or []):
        arch = resolve_model(m, base_dir, field=f"inputs.student_sizes[{i}]")
        c2 = MultiClusterCase(**{**case.__dict__, "student": arch, "teacher": arch})
        try:
            cmp2 = compare(c2)
        except TrainsimError as exc:
            rows.append({"student": m if isinstance(m, str) else arch.name, "total_params": float(count(arch).total_params),
                         "message": str(exc)})
            continue
        near = cmp2["near_single_bandwidth_gbit_s"]
        finite = near is not None and near == near and near != float("inf")
        rows.append({"student": m if isinstance(m, str) else arch.name,
                     "total_params": float(count(arch).total_params),
                     "active_params": float(count(arch).active_params),
                     "multi_cluster_h": cmp2["multi_cluster"]["wall_time_h"],
                     "single_summed_h": cmp2["single_summed"]["wall_time_h"],
                     "multi_over_summed": cmp2["multi_over_summed"],
                     "wan_gbit_s_within_tolerance": near if finite else None,
                     "wan_needed": gbs(near) if finite else "none is enough",
                     "wan_tb_total": cmp2["multi_cluster"]["wan_bytes_total"] / 1e12,
                     **_plateau(c2, cmp2)})
    return rows


@register("posttrain_multicluster")
def posttrain_multicluster(doc: dict, base_dir: Path) -> dict[str, Any]:
    """The scenario kind ``posttrain_multicluster``: multi-cluster against single-cluster post-training
    (:func:`compare`) of the case ``doc`` describes, as a result with its verdict, numbers and assumptions."""
    case, inputs = build_case(doc, Path(base_dir))
    cmp_ = compare(case)
    multi, summed, alone = cmp_["multi_cluster"], cmp_["single_summed"], cmp_["single_alone"]
    ratio = cmp_["multi_over_summed"]
    near, be = cmp_["near_single_bandwidth_gbit_s"], cmp_["break_even_bandwidth_gbit_s"]
    bw_g = _gbit(case.wan_bandwidth)
    tol = case.tolerance
    k = case.domains
    opd_share_multi = multi["mopd"]["wall_time_s"] / multi["wall_time_s"]
    traffic_tb = multi["wan_bytes_total"] / 1e12
    per_tok = multi["wan_bytes_per_distilled_token"]
    unlimited = multi_cluster(case, 1e13)["wall_time_s"] / summed["wall_time_s"]
    sync_case = MultiClusterCase(**{**case.__dict__, "opd_step": case.opd_step.model_copy(update={"mode": "sync"}),
                                    "rl_step": case.rl_step.model_copy(update={"mode": "sync"})})
    ms, ss = multi_cluster(sync_case), single_summed(sync_case)
    sync_ratio = ms["wall_time_s"] / ss["wall_time_s"]
    caveat = (f" At unlimited WAN bandwidth the gap is still {unlimited - 1:+.1%} (the student's update is confined "
              f"to one cluster); with synchronous steps it is {sync_ratio - 1:+.1%}. Only time and traffic are "
              f"modelled, not the engineering effort 'trivial' also implies.")
    pl = multi["mopd_placements"]
    local = pl["rollouts on the student's cluster"]
    wan_note = ""
    if multi["mopd_rollouts"] == "on each teacher's cluster":
        wan_note = (f"; mostly the student's weights sent to the rollout clusters each step -- keeping rollouts on the "
                    f"student's cluster needs only {local['wan_bytes_per_distilled_token']:.1f} B per token but "
                    f"takes {local['mopd_wall_h']:.1f} h instead of {multi['mopd']['wall_time_h']:.1f} h for OPD")
    import math

    gbs = lambda x: f"{x:.3g} Gb/s" if x is not None and math.isfinite(x) else "no finite bandwidth"  # noqa: E731
    if ratio <= 1.0 + tol:
        cls = "supported"
        text = (f"{k} domain clusters of {case.chips_per_cluster} {case.system.chip.name.split(' (')[0]} joined by "
                f"{bw_g:g} Gb/s "
                f"finish teacher RL + multi-teacher OPD in {multi['wall_time_h']:.1f} h, {ratio - 1:+.1%} vs one "
                f"cluster with the summed {k * case.chips_per_cluster} chips ({summed['wall_time_h']:.1f} h) and "
                f"{cmp_['alone_over_multi']:.1f}x faster than one cluster alone; the WAN carries "
                f"{per_tok:.1f} B per distilled token ({traffic_tb:.2f} TB in all{wan_note}). It stays within {tol:.0%} of one "
                f"big cluster down to {gbs(near)} and beats one cluster alone down to {gbs(be)}." + caveat)
    elif cmp_["alone_over_multi"] > 1.0:
        cls = "depends on WAN bandwidth"
        text = (f"at {bw_g:g} Gb/s the {k}-cluster plan takes {multi['wall_time_h']:.1f} h, {ratio - 1:+.1%} vs one "
                f"summed-chip cluster (needs {gbs(near)} or more to be within {tol:.0%}); it still beats one cluster "
                f"alone ({alone['wall_time_h']:.1f} h) above {gbs(be)}." + caveat)
    else:
        cls = "not supported"
        text = (f"at {bw_g:g} Gb/s the {k}-cluster plan ({multi['wall_time_h']:.1f} h) is slower than one cluster "
                f"alone ({alone['wall_time_h']:.1f} h); break-even needs {gbs(be)}." + caveat)
    ranges = {}
    lo, hi = wan_range(doc)
    for b in (lo, gbit_to_bytes_per_s(bw_g), hi):
        m = multi_cluster(case, b)
        ranges[f"{_gbit(b):g} Gb/s"] = {"multi_cluster_h": m["wall_time_h"],
                                        "multi_over_summed": m["wall_time_s"] / summed["wall_time_s"],
                                        "mopd_rollouts": m["mopd_rollouts"]}
    ranges["all steps synchronous"] = {"multi_cluster_h": ms["wall_time_h"], "single_summed_h": ss["wall_time_h"],
                                       "multi_over_summed": ms["wall_time_s"] / ss["wall_time_s"]}
    numbers = {
        "multi_cluster_wall_h": multi["wall_time_h"],
        "single_summed_wall_h": summed["wall_time_h"],
        "single_alone_wall_h": alone["wall_time_h"],
        "multi_over_summed": ratio,
        "multi_over_summed_unlimited_wan": unlimited,
        "multi_over_summed_sync": sync_ratio,
        "alone_over_multi": cmp_["alone_over_multi"],
        "teacher_rl_wall_h": multi["teacher_rl"]["wall_time_h"],
        "teacher_rl_step_s": multi["teacher_rl"]["step_time_s"],
        "mopd_wall_h_multi": multi["mopd"]["wall_time_h"],
        "mopd_wall_h_summed": summed["mopd"]["wall_time_h"],
        "mopd_step_s_multi": multi["mopd"]["step_time_s"],
        "mopd_share_of_multi_wall": opd_share_multi,
        "mopd_rollouts_multi": multi["mopd_rollouts"],
        "mopd_placements_multi": multi["mopd_placements"],
        "mopd_bound_by_multi": multi["mopd"]["bound_by"],
        "utilisation_multi": multi["utilisation"],
        "wan_bytes_total": multi["wan_bytes_total"],
        "wan_bytes_per_opd_step": multi["wan_bytes_per_opd_step"],
        "wan_bytes_per_distilled_token": per_tok,
        "checkpoint_shipping_s": multi["checkpoint_shipping_s"],
        "break_even_wan_gbit_s": be,
        "within_tolerance_wan_gbit_s": near,
        "wan_gbit_s": bw_g,
        "student_params": count(case.student).total_params,
        "teacher_params": count(case.teacher).total_params,
    }
    by_student = _student_table(doc, case, Path(base_dir), gbs)
    if by_student:
        numbers["by_student_size"] = by_student
    best = min((multi, summed, alone), key=lambda r: r["wall_time_s"])
    chip = case.system.chip.name.split(" (")[0]
    head = (f"{k} domain clusters of {case.chips_per_cluster} {chip} joined by {bw_g:g} Gb/s finish teacher RL and "
            f"multi-teacher distillation {ratio - 1:+.0%} vs one cluster with all their chips; the split stays within "
            f"{tol:.0%} down to {gbs(near)}.")
    if cls != "supported":
        head = (f"At {bw_g:g} Gb/s the {k}-cluster plan is {ratio - 1:+.0%} vs one cluster with all their chips; "
                f"within {tol:.0%} needs {gbs(near)}.")
    if by_student:
        ok_s = [r for r in by_student if r.get("multi_over_summed") is not None and r["multi_over_summed"] <= 1 + tol]
        no_s = [r for r in by_student if r.get("multi_over_summed") is not None and r["multi_over_summed"] > 1 + tol]
        if no_s:
            big = no_s[0]
            lim = (f"{big['wan_needed']} keeps it within {tol:.0%}" if big["wan_gbit_s_within_tolerance"] else
                   f"even unlimited WAN leaves {big['multi_over_summed_unlimited_wan'] - 1:+.0%} (more than "
                   f"{big['wan_gbit_s_within_1pt_of_unlimited']:.3g} Gb/s no longer helps)")
            head = (f"Supported for students up to {max([r['total_params'] for r in ok_s] or [0]) / 1e9:.0f}B "
                    f"(within {tol:.0%} of one cluster with all the chips from {gbs(near)} of WAN up); not for the frontier "
                    f"students the seed means: from {big['total_params'] / 1e9:,.0f}B on the split plan is "
                    f"{big['multi_over_summed'] - 1:+.0%} at {bw_g:g} Gb/s and {lim}.")
            if ok_s and max(r["total_params"] for r in ok_s) > big["total_params"]:
                # not ordered by size: a larger student within tolerance than a smaller one outside it (each size
                # trains with its own best plan), so no size bound is claimed
                head = (f"Within {tol:.0%} of one cluster with all the chips for the {_sizes(ok_s)} students (from "
                        f"{gbs(near)} of WAN up for the {ok_s[0]['total_params'] / 1e9:,.0f}B one), not for the "
                        f"{_sizes(no_s)} ones: the {big['total_params'] / 1e9:,.0f}B student's split plan is "
                        f"{big['multi_over_summed'] - 1:+.0%} at {bw_g:g} Gb/s and {lim}. Size alone does not decide "
                        f"it: each student's best plan on its cluster does.")
            if ok_s and cls == "supported":
                cls = "depends on the student size"
            elif not ok_s:
                cls = "not supported"
        else:
            big = by_student[-1]
            head += (f" A {big['total_params'] / 1e12:.1f}T student is {big['multi_over_summed'] - 1:+.0%} and needs "
                     f"{big['wan_needed']}.")
    ve = _inference_validation([(case.system, case.chips_per_cluster * case.domains)])
    rl = ve.get("rl_whole_step") or {}
    if rl.get("median_abs_error") is not None:   # how far the hours can be trusted
        inf_med = ve["inference_model"].get("median_abs_error")
        text = text.rstrip(". ") + (
            f". Trust: whole RL steps are predicted within a median {rl['median_abs_error']:.0%} (max "
            f"{rl['max_abs_error']:.0%}, mean signed {rl['mean_signed_error']:+.0%}) of {rl['points']} published runs"
            + (f", serving within {inf_med:.0%} (leave-one-out)" if inf_med is not None else "")
            + ", so the hours are uncertain by about that much.")
    out = {"id": doc.get("id"), "kind": doc.get("kind"), "claim": doc.get("claim", ""),
           "question": doc.get("question", ""), "verdict_class": cls, "verdict": f"{cls}: {head}",
           "headline": head, "details": text,
           "deciding_assumption": (_student_assumption(by_student, tol, gbs(near))
                                   if cls == "depends on the student size" else
                                   f"WAN bandwidth: within {tol:.0%} down to {gbs(near)}"),
           "numbers": numbers, "ranges": ranges,
           "best_plan": {"plan": best["plan"], "wall_time_h": best["wall_time_h"],
                         "multi_cluster": {"teacher_rl": multi["teacher_rl"], "mopd": multi["mopd"],
                                           "mopd_rollouts": multi["mopd_rollouts"]},
                         "single_summed": {"teacher_rl": summed["teacher_rl"], "mopd": summed["mopd"]},
                         "single_alone": {"teacher_rl": alone["teacher_rl"], "mopd": alone["mopd"]}},
           "assumptions": inputs + _model_assumptions(),
           "validation_error": ve}
    return out


def _sizes(rows: list[dict]) -> str:
    """The students' total parameters as the headline names them: '31B, 1,573B'."""
    return ", ".join(f"{r['total_params'] / 1e9:,.0f}B" for r in rows)


def _student_assumption(by_student: list[dict], tol: float, near: str) -> str:
    """The deciding assumption of a scenario whose verdict depends on the student size: the students within
    ``tol`` and those that stay above it, said as a size bound only where the sizes order them."""
    ok_s = [r for r in by_student if r.get("multi_over_summed") is not None and r["multi_over_summed"] <= 1 + tol]
    no_s = [r for r in by_student if r.get("multi_over_summed") is not None and r["multi_over_summed"] > 1 + tol]
    never = all(not r["wan_gbit_s_within_tolerance"] for r in no_s)
    if ok_s and no_s and max(r["total_params"] for r in ok_s) > min(r["total_params"] for r in no_s):
        return (f"student size and its plan: within {tol:.0%} for the {_sizes(ok_s)} students, the "
                f"{_sizes(no_s)} ones stay above {tol:.0%}" + (" at any WAN bandwidth" if never else ""))
    return (f"student size: within {tol:.0%} up to 30B-class students at {near} or more; frontier students stay "
            f"above {tol:.0%}" + (" at any WAN bandwidth" if never else ""))


#: what `trainsim check` validates of such a scenario without running it
posttrain_multicluster.validate = check_keys  # type: ignore[attr-defined]
