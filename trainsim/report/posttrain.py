"""Terminal rendering of ``trainsim posttrain`` results (numbers come from :mod:`trainsim.posttrain.timeline`)."""
from __future__ import annotations


from .fmt import signed_pct
from .terminal import console, table, wide_console


def _bytes(b: float) -> str:
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= f:
            return f"{b / f:.2f} {unit}"
    return f"{b:.0f} B"


def _wall(hours: float) -> str:
    """The whole job's wall time in a unit that shows it: seconds under a minute, minutes under an hour, else hours
    (one 2.6 s step printed as '0.00 h', a value rounded away)."""
    sec = hours * 3600.0
    if sec < 60.0:
        return f"{sec:.1f} s"
    if hours < 1.0:
        return f"{sec / 60.0:.1f} min"
    return f"{hours:,.2f} h"


def render_posttrain(res: dict) -> None:
    """``trainsim posttrain`` as tables: the step's phases, traffic per link, timeline and totals."""
    c = console()
    t = table(title=f"{res['name']}: {res['kind']} ({res['mode']}), one step")
    for col in ("phase", "stage", "where", "seconds", "bytes"):
        t.add_column(col, justify="right" if col in ("seconds", "bytes") else "left")
    for p in res["phases"]:
        where = p.get("cluster") or p.get("link", "")
        moved = (_bytes(p["bytes"]) if p.get("bytes") else
                 f"{_bytes(p['bytes_per_chip'])} per chip" if p.get("bytes_per_chip") else "")
        t.add_row(p["name"], p["stage"], str(where), f"{p['seconds']:.2f}", moved)
    c.print(t)
    for w in res.get("warnings") or []:
        c.print(f"warning: {w}")
    for p in res["phases"]:
        d = p.get("detail") or {}
        # the GEMM rate generation / scoring ran at, and why, as `trainsim infer` shows it (gemm_peak_basis): FP4 on
        # a chip without FP4 tensor cores runs at its FP8 (or BF16) rate
        if d.get("gemm_peak_basis"):
            c.print(f"{p['name']}: GEMM peak used {d['gemm_peak_flops'] / 1e12:,.0f} TFLOP/s ({d['gemm_peak_basis']})")
        # the RL framework's measured training-loop cost inside the phase (posttrain/loops.py train_loop_cost)
        if d.get("train_loop_s"):
            c.print(f"{p['name']}: {d['train_loop_s']:.1f} s of it the RL framework's MoE trainer-loop cost "
                    "(measured, mechanism unnamed: trainsim/posttrain/data/train_loops.yaml)")
        idle = d.get("idle_chips") or 0
        if idle:
            c.print(f"{p['name']}: {idle:,} of {p['chips']:,} chips idle (fewer sequences than serving instances)")
    stages: dict[str, float] = {}
    for p in res["phases"]:
        key = "WAN" if p.get("link") else p["stage"]
        stages[key] = stages.get(key, 0.0) + p["seconds"]
    names = {"weights": "refit", "offload": "host offload", "rollout": "generation", "scoring": "teacher scoring", "logprobs": "log-probs",
             "train": "training"}
    c.print("timeline: " + " | ".join(f"{names.get(k, k)} {v:.1f} s" for k, v in stages.items()))
    c.print(f"step {res['step_time_s']:.1f} s (bound by {res['bound_by']}; dependency chain {res['dependency_chain_s']:.1f} s), "
            f"{res['steps']:,} step{'' if res['steps'] == 1 else 's'} -> {_wall(res['wall_time_h'])}")
    c.print("utilisation (chip-time working / chips x step): "
            + ", ".join(f"{k} {v:.0%}" for k, v in res["utilisation"].items()))
    if res["wan_bytes_per_step"]:
        c.print("WAN per step: " + ", ".join(f"{k} {_bytes(v)}" for k, v in res["wan_bytes_per_step"].items())
                + f"; {res['wan_bytes_per_generated_token']:.1f} bytes per generated token; total {_bytes(res['wan_bytes_total'])}")


def posttrain_csv_rows(res: dict) -> list[dict]:
    """``trainsim posttrain SPEC --csv``: the step as one row (``role`` step: step time, bound, wall time, traffic,
    utilisation) and then each phase of its timeline as a row (``role`` phase: name, stage, seconds, cluster or
    link, bytes, detail as dotted columns), as ``plan --csv`` lists its plans with a ``role`` column. As one
    flattened row the answer dropped its phases, the timeline the command is for (qa32b)."""
    step = {"role": "step", **{k: v for k, v in res.items() if k != "phases"}}
    return [step] + [{"role": "phase", **ph} for ph in res["phases"]]


def render_rl_errors(rows: list[dict], summ: dict) -> None:
    """The whole-step check: published vs predicted RL step time, with the predicted timeline per stage."""
    c = wide_console(160)   # piped: 160 columns, so the run names are not cut to 'nemo…'
    t = table(title="post-training model vs published RL step times (seconds per step)")
    for col in ("run", "mode", "reported", "predicted", "error", "refit", "offload", "generation", "log-probs",
                "training"):
        t.add_column(col, justify="left" if col in ("run", "mode") else "right")
    for r in rows:
        if r["error"] is None:
            t.add_row(r["name"], "", f"{r['reported']:.1f}", "-", "no plan", "", "", "", "", "")
            continue
        st = r["stages_s"]
        t.add_row(r["name"], r["mode"], f"{r['reported']:.1f}", f"{r['predicted']:.1f}", signed_pct(r["error"] * 100, 1),
                  f"{st.get('weights', 0):.1f}", f"{st.get('offload', 0):.1f}", f"{st.get('rollout', 0):.1f}",
                  f"{st.get('logprobs', 0):.1f}", f"{st.get('train', 0):.1f}")
    c.print(t)
    if summ.get("points"):
        c.print(f"{summ['points']} runs ({summ['failed']} without a plan): median |error| "
                f"{summ['median_abs_error'] * 100:.1f}%, max {summ['max_abs_error'] * 100:.1f}%, mean signed "
                f"{summ['mean_signed_error'] * 100:+.1f}%; {summ['within_20pct']} within 20%")
