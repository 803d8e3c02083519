"""``trainsim infer SPEC.yaml [--json]``: serving throughput, latency, KV cache and best plan (issue 7).

``trainsim infer --validate`` prints the error table against the published serving numbers instead.
MFU / HFU do not apply to ``infer`` and are not reported: decode is bound by memory bandwidth, so serving is
judged by tokens/s per chip and latency (issue #16 item 3); ``mfu`` / ``mfu_at_precision`` are training outputs.
``trainsim posttrain SPEC.yaml [--json]``: one RL / on-policy-distillation job across clusters (trainsim.posttrain).
"""
from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .csvopt import CSV


@app.command("infer")
def infer_cmd(spec: Path = typer.Argument(None, help="serving-spec YAML"),
              json_: bool = typer.Option(False, "--json", help="print one JSON object"),
              csv_: bool = CSV,
              validate: bool = typer.Option(False, "--validate",
                                            help="error table vs validation/inference/*.yaml")) -> None:
    """Prefill and decode tokens/s per chip, time per output token, KV cache and the best serving plan."""
    from ..errors import TrainsimError
    from ..report.inference import render_errors, render_infer
    from ..report.terminal import print_json

    if validate:
        from ..inference.validate import error_table, summary

        from ..inference.validate import latency_bound_table

        rows = error_table([spec] if spec else None, ranges=True)
        lat = [] if spec else latency_bound_table()
        if csv_:
            from .csvopt import print_rows

            print_rows(rows)
            return
        if json_:
            print_json({"rows": rows, "summary": summary(rows), "latency_bound": lat})
        else:
            render_errors(rows, summary(rows), lat)
        return
    if spec is None:
        raise TrainsimError("give a serving-spec YAML (or --validate)", field="SPEC")
    from ..inference.serve import infer
    from ..inference.spec import load_serving

    res = infer(load_serving(spec))
    if csv_:
        from .csvopt import print_rows

        print_rows(res)
        return
    if json_:
        print_json(res)
    else:
        render_infer(res)


@app.command("posttrain")
def posttrain_cmd(spec: Path = typer.Argument(None, help="post-training spec YAML"),
                  json_: bool = typer.Option(False, "--json", help="print one JSON object"),
                  csv_: bool = CSV,
                  validate: bool = typer.Option(False, "--validate",
                                                help="step-time error table vs validation/rl/*.yaml")) -> None:
    """RL / on-policy distillation across clusters: per-step phases, traffic per link, timeline, totals."""
    from ..errors import TrainsimError
    from ..report.posttrain import render_posttrain, render_rl_errors
    from ..posttrain.spec import load_posttrain
    from ..posttrain.timeline import evaluate
    from ..report.terminal import print_json

    if validate:
        from ..posttrain.validate import error_table, summary

        rows = error_table([spec] if spec else None, ranges=True)
        if csv_:
            from .csvopt import print_rows

            print_rows(rows)
            return
        if json_:
            print_json({"rows": rows, "summary": summary(rows)})
        else:
            render_rl_errors(rows, summary(rows))
        return
    if spec is None:
        raise TrainsimError("give a post-training spec YAML (or --validate)", field="SPEC")
    res = evaluate(load_posttrain(spec))
    if csv_:
        from .csvopt import print_rows

        print_rows(res)
        return
    if json_:
        print_json(res)
    else:
        render_posttrain(res)
