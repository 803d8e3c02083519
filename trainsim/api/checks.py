"""The check door: ``trainsim check`` for any spec kind (run, serving, post-training, sweep, scenario)."""
from __future__ import annotations

from pathlib import Path
from ..errors import NoPlanError, TrainsimError
from ..io.specfile import located
from ..spec import load_run
from ..sweep import load_sweep as _load_sweep
from ..io import load_spec_file, require_file, spec_kind
from ..estimate import PLAN_FIELDS, is_complete
from ..frameworks import framework_of
from ..plan_estimate import complete_plans, plan_row
from ..model.counts import count
from ..catalog.describe import fmt
from ..numfmt import count as fmt_count, counted
from ..scenario import run as _scenario_run  # run_file; importing it registers every kind (KIND_MODULES)
from .posttraining import _posttrain_spec, posttrain as _posttrain
from .serving import _serving
from . import CheckResult


def check(path) -> CheckResult:
    """``trainsim check``: what a spec of any kind (run, serving, post-training, sweep, scenario) resolves to --
    model counts, system, plan fields fixed vs searched -- without running it (one-line error on a problem)."""
    path = Path(path)
    require_file(path, what="spec")
    doc = load_spec_file(path, None, what="spec")
    kind = spec_kind(doc)

    def model_lines(arch, seq_len: int = 4096) -> list[tuple[str, str]]:
        c = count(arch, seq_len)
        return [("model", f"{arch.name}: {fmt_count(c.total_params)} parameters, {fmt_count(c.active_params)} active, "
                          f"{arch.n_layers} layers{', MoE' if arch.is_moe else ''}")]

    def system_lines(system, chips: int | None = None) -> list[tuple[str, str]]:
        c, lv = system.chip, system.levels
        # the values the engine reads, in the catalog's units, so that a unit string can be checked
        # ("400 Gbps" is 400 Gb/s = 50 GB/s; "80 GB" of HBM is read as 80 GiB)
        hw = (f"; BF16 {fmt(c.flops('bf16'), 'flops')}, HBM {fmt(c.hbm_bytes, 'bytes')} at "
              f"{fmt(c.hbm_bw, 'bytes_per_s')}, scale-up {fmt(lv[0].bw, 'bytes_per_s')}"
              + (f", scale-out {fmt(lv[1].bw, 'bits_per_s')}" if len(lv) > 1 else "")
              + (f", inter-site {fmt(lv[2].bw, 'bits_per_s')}" if len(lv) > 2 else "") + " per chip"
              + (f" (sites of {lv[1].size:,} chips)" if len(lv) > 2 and lv[1].size else ""))
        return [("system", f"{system.id}: {c.id}, scale-up domain {system.scale_up_size:,}"
                           + (f", {chips:,} chips" if chips else "") + hw)]

    lines: list[tuple[str, str]] = [("kind", kind)]
    if kind == "run":
        r = load_run(path)
        lines += model_lines(r.arch, r.training.seq_len) + system_lines(r.system, r.chips)
        t = r.training
        lines.append(("training", f"seq_len {t.seq_len:,} tokens, batch {t.batch_seqs:,} sequences, {t.precision}"
                      + (f", {fmt_count(t.tokens)} tokens" if t.tokens else ", no token count (step time only)")))
        fixed = {f: r.plan.values(f) for f in PLAN_FIELDS if r.plan.values(f) is not None}
        # every other key the plan states (dp, recompute_modules, stage sizes, ...) as stated: 'tp=8' alone hid a
        # stated dp=16 that no 64 chips hold, and the DeepSeek-V3 example's recompute modules and balanced split
        stated = {f: getattr(r.plan, f) for f in type(r.plan).model_fields
                  if f not in PLAN_FIELDS and getattr(r.plan, f) is not None}
        lines.append(("plan fixed", ", ".join(
            [f"{k}={'|'.join(map(str, v))}" for k, v in fixed.items()]
            + [f"{k}=[{', '.join(map(str, v))}]" if isinstance(v, list) else f"{k}={v}" for k, v in stated.items()])
            or "none"))
        if is_complete(r.plan):
            # a complete plan is estimated as given: its unstated fields read as estimate reads them (its stack's
            # default at the stated ZeRO stage, else Megatron-Core's), and a plan estimate refuses is refused here
            try:
                plans, by_stack = complete_plans(r, r.plan)
            except TrainsimError as exc:   # a plan rule the stated plan breaks: name the spec, as estimate does
                raise located(exc, path) from None
            row = plan_row(r, plans, 0)
            fw = framework_of(r)
            lines.append(("plan defaulted", ", ".join(
                f"{f}={row[f]}" + (f" ({fw} at zero 3)" if f in by_stack else "")
                for f in PLAN_FIELDS if f not in fixed) or "none"))
            lines.append(("plan searched", "none"))
        else:
            lines.append(("plan searched", ", ".join(f for f in PLAN_FIELDS if f not in fixed) or "none"))
    elif kind == "serving":
        sv = _serving(path)
        s, lat = sv.serving, sv.latency
        lines += model_lines(sv.arch, s.input_len) + system_lines(sv.system, sv.chips)
        # the lengths and bounds as read ("4K" is 4,096 tokens), so that a first run can be checked
        phase = {"both": "prefill and decode", "prefill": "prefill only", "decode": "decode only"}[s.phase]
        lines.append(("serving", f"{phase}: input {s.input_len:,} tokens, output {s.output_len:,} tokens, "
                                 f"{s.precision} weights, {s.kv_precision} KV cache"
                                 + ("" if sv.chips else ", chips per instance searched")))
        bounds = [f"{k} <= {v:g} ms" for k, v in (("TPOT", lat.tpot_ms), ("TTFT", lat.ttft_ms)) if v is not None]
        lines.append(("latency", ", ".join(bounds) or "no bound"))
    elif kind == "posttrain":
        pt = _posttrain_spec(path)
        # the one code path `trainsim posttrain` answers through: links, rollout servers and plans are read as the
        # step is timed (seconds), so check refuses what posttrain refuses with the same line; a valid job that
        # nothing fits (posttrain's exit 1) is still a valid spec
        try:
            _posttrain(pt)
        except NoPlanError:
            pass
        except TrainsimError as exc:
            raise located(exc, path) from None
        lines.append(("post-training", f"{getattr(pt, 'kind', '')} job, clusters: {', '.join(doc['clusters'])}"))
    elif kind == "sweep":
        sw = _load_sweep(path)
        # the axes as the sweep read them (an empty or null axes: is the base run alone, one point)
        lines.append(("sweep", f"axes: {', '.join(a.name for a in sw.axes) or 'none'}; "
                               f"{counted(sw.n_points, 'point')}"))
    else:
        # the one code path `trainsim scenario` reads a scenario through (scenario.run.run_file): a kind reads its
        # systems, chips, training, framework and sibling files as it answers, so check answers it (seconds: the
        # plan searches are memoised) and refuses exactly what `scenario` refuses, with the same line
        res = _scenario_run.run_file(path)
        lines.append(("scenario", f"{res.get('id') or path.stem}: kind {doc['kind']}, answered "
                                  f"({res.get('verdict_class') or 'no verdict'})"))
    return CheckResult({"file": str(path), "kind": kind, "ok": True, "resolved": dict(lines)})
