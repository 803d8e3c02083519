"""``trainsim model ID_OR_PATH [--seq-len N] [--json]``: parameter counts and FLOPs of one model."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from .application import app
from .csvopt import CSV
from .. import api
from ..report.terminal import console, print_json
from .csvopt import print_rows


def _b(x: float) -> str:
    return f"{x / 1e9:,.3f} B"


@app.command("model")
def model_cmd(model: str = typer.Argument(..., metavar="ID_OR_PATH",
                                          help="catalog id, or a config.json / model YAML path"),
              seq_len: str | None = typer.Option(None, "--seq-len", show_default=False,
                                          help="sequence length for attention FLOPs: 4096, '4,096' or '4K' "
                                               "(K = 1,024), as in a run spec [default: a run spec's "
                                               "training.seq_len, else 4096]"),
              json_: bool = typer.Option(False, "--json", help="print one JSON object"),
              csv_: bool = CSV) -> None:
    """Parameters (total, active, per layer kind) and training FLOPs per token of a model."""
    d = api.model(model, seq_len=seq_len, base_dir=Path.cwd(), names=api.CLI_NAMES).to_dict()
    seq_len = d["seq_len"]
    official = d.get("official")
    if csv_:
        print_rows(d)
        return
    if json_:
        print_json(d)
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{d['name']} ({d['family']})", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    # an absent part (no MTP) has no row: a row of zeros reads as a part that is there and empty
    t.add_row("total parameters" + (" (MTP excluded)" if d["mtp_params"] else ""), _b(d["total_params"]))
    lo, hi = d["active_params_range"]
    rng = f"  (range {_b(lo)} - {_b(hi)})" if hi > lo else ""
    t.add_row("active per token (head, no embedding)", _b(d["active_params"]) + rng)
    t.add_row("input embedding", _b(d["embedding_params"]))
    if d["extra_embedding_params"]:
        t.add_row("other looked-up tables", _b(d["extra_embedding_params"]))
    t.add_row("output head", _b(d["output_head_params"]) + ("  (tied)" if d["tied_embeddings"] else ""))
    if d["mtp_params"]:
        t.add_row("MTP modules", _b(d["mtp_params"]))
    f = d["flops_per_token"]
    t.add_row(f"FLOPs/token at seq {seq_len:,}", f"{f['total']:.4g}  (matmul {f['matmul']:.4g}, "
                                                   f"attention {f['attention']:.4g})")
    if f["mtp"]:
        t.add_row("MTP FLOPs/token", f"{f['mtp']:.4g}")
    if official:
        t.add_row("official total / active", f"{official.get('total_params', 0) / 1e9:g} B / "
                                             f"{official.get('active_params', 0) / 1e9:g} B")
    c = console() if sys.stdout.isatty() else Console(highlight=False, width=160)
    c.print(t)
    lt = Table(title="layer kinds")
    for col, just in (("kind", "left"), ("layers", "right"), ("params/layer", "right"),
                      ("active/layer", "right"), ("attention", "left"), ("experts", "left")):
        lt.add_column(col, justify=just)
    for row in d["layers"]:
        moe = row["moe"]
        ex = "" if moe is None else (f"{moe['experts']} top-{moe['top_k']}"
                                     + (f" +{moe['shared_experts']} shared" if moe["shared_experts"] else "")
                                     + (f" +{moe['zero_experts']} zero" if moe["zero_experts"] else ""))
        lt.add_row(row["name"], str(row["count"]), _b(row["params_per_layer"]), _b(row["active_params_per_layer"]),
                   ", ".join(row["attention"]), ex)
    c.print(lt)
    for note in d["notes"]:
        c.print(f"note: {note}")
