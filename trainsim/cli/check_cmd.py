"""``trainsim check SPEC``: validate any spec kind (run, serving, post-training, sweep, scenario) and print what it
resolved -- model counts, system, plan fields fixed vs searched -- without running anything."""
from __future__ import annotations

from pathlib import Path

import typer

from .application import app
from .csvopt import CSV


def spec_kind(doc: dict) -> str:
    """run | serving | posttrain | sweep | scenario, from the keys a spec has."""
    if "axes" in doc:
        return "sweep"
    if "clusters" in doc:
        return "posttrain"
    if "serving" in doc:
        return "serving"
    if "kind" in doc:
        return "scenario"
    return "run"


def _model_lines(arch, seq_len: int = 4096) -> list[tuple[str, str]]:
    from ..model.counts import count
    from ..numfmt import count as n

    c = count(arch, seq_len)
    return [("model", f"{arch.name}: {n(c.total_params)} parameters, {n(c.active_params)} active, "
                      f"{arch.n_layers} layers{', MoE' if arch.is_moe else ''}")]


def _system_lines(system, chips: int | None = None) -> list[tuple[str, str]]:
    s = (f"{system.id}: {system.chip.id}, scale-up domain {system.scale_up_size}"
         + (f", {chips:,} chips" if chips else ""))
    return [("system", s)]


def check_spec(path: Path) -> dict:
    """What a spec resolves to (raises TrainsimError with one line on any problem)."""
    import yaml

    from ..errors import TrainsimError

    if not path.is_file():
        raise TrainsimError(f"no such file: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise TrainsimError("not valid YAML", where=str(path)) from None
    if not isinstance(doc, dict):
        raise TrainsimError("expected a mapping of spec keys", where=str(path))
    kind = spec_kind(doc)
    lines: list[tuple[str, str]] = [("kind", kind)]
    if kind == "run":
        from ..estimate import PLAN_FIELDS
        from ..numfmt import count as n
        from ..spec import load_run

        r = load_run(path)
        lines += _model_lines(r.arch, r.training.seq_len) + _system_lines(r.system, r.chips)
        t = r.training
        lines.append(("training", f"seq_len {t.seq_len}, batch {t.batch_seqs:,} sequences, {t.precision}"
                      + (f", {n(t.tokens)} tokens" if t.tokens else ", no token count (step time only)")))
        fixed = {f: r.plan.values(f) for f in PLAN_FIELDS if r.plan.values(f) is not None}
        lines.append(("plan fixed", ", ".join(f"{k}={'|'.join(map(str, v))}" for k, v in fixed.items()) or "none"))
        lines.append(("plan searched", ", ".join(f for f in PLAN_FIELDS if f not in fixed) or "none"))
    elif kind == "serving":
        from ..inference.spec import load_serving

        s = load_serving(path)
        lines += _model_lines(s.arch) + _system_lines(s.system)
    elif kind == "posttrain":
        from ..posttrain.spec import load_posttrain

        pt = load_posttrain(path)
        lines.append(("post-training", f"{getattr(pt, 'kind', '')} job, clusters: {', '.join(doc['clusters'])}"))
    elif kind == "sweep":
        from ..sweep.spec import load_sweep

        sw = load_sweep(path)
        lines.append(("sweep", f"axes: {', '.join(doc['axes'])}; {getattr(sw, 'n_points', '?')} points"))
    else:
        from ..scenario.kinds import load_doc
        from ..scenario.registry import handler

        d = load_doc(path)
        handler(d["kind"])
        lines.append(("scenario", f"{d.get('id', path.stem)}: kind {d['kind']}"))
    return {"file": str(path), "kind": kind, "ok": True, "resolved": dict(lines)}


@app.command("check")
def check_cmd(spec: Path = typer.Argument(..., help="any trainsim spec YAML (run, serving, post-training, sweep, "
                                                    "scenario)"),
              json_: bool = typer.Option(False, "--json", help="print one JSON object"),
              csv_: bool = CSV) -> None:
    """Validate a spec and print what it resolved to, without running it."""
    res = check_spec(spec)
    if csv_:
        from .csvopt import print_rows

        print_rows(res)
        return
    if json_:
        from ..report.terminal import print_json

        print_json(res)
        return
    print(f"{spec}: valid {res['kind']} spec")
    for k, v in res["resolved"].items():
        if k != "kind":
            print(f"  {k}: {v}")
