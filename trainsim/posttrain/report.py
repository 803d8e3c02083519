"""Terminal rendering of ``trainsim posttrain`` results (numbers come from :mod:`.timeline`)."""
from __future__ import annotations

from rich.table import Table

from ..report.terminal import console


def _bytes(b: float) -> str:
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= f:
            return f"{b / f:.2f} {unit}"
    return f"{b:.0f} B"


def render_posttrain(res: dict) -> None:
    c = console()
    t = Table(title=f"{res['name']}: {res['kind']} ({res['mode']}), one step")
    for col in ("phase", "stage", "where", "seconds", "bytes"):
        t.add_column(col, justify="right" if col in ("seconds", "bytes") else "left")
    for p in res["phases"]:
        where = p.get("cluster") or p.get("link", "")
        t.add_row(p["name"], p["stage"], str(where), f"{p['seconds']:.2f}", _bytes(p["bytes"]) if p.get("bytes") else "")
    c.print(t)
    c.print(f"step {res['step_time_s']:.1f} s (bound by {res['bound_by']}; dependency chain {res['dependency_chain_s']:.1f} s), "
            f"{res['steps']} steps -> {res['wall_time_h']:.2f} h")
    c.print("utilisation: " + ", ".join(f"{k} {v:.0%}" for k, v in res["utilisation"].items()))
    if res["wan_bytes_per_step"]:
        c.print("WAN per step: " + ", ".join(f"{k} {_bytes(v)}" for k, v in res["wan_bytes_per_step"].items())
                + f"; {res['wan_bytes_per_generated_token']:.1f} B per generated token; total {_bytes(res['wan_bytes_total'])}")
