"""Terminal rendering of ``trainsim infer`` results (numbers come from :mod:`trainsim.inference.serve`)."""
from __future__ import annotations


from .terminal import console, table, wide_console
from .fmt import gib, plan, value
# HBM in GiB, as every memory table shows it (an "80 GB" H800 holds 80 GiB: trainsim.numfmt.axis_value)
from ..inference.setup import speculative_tokens_per_step
from ..units import GIB

#: memory parts as the decode row names them (the --json keys otherwise)
_PART = {"kv_cache": "KV"}

def _plan(p: dict, moe: bool = True) -> str:
    keys = ("chips", "tp", "pp", "dp", "ep", "etp") if moe else ("chips", "tp", "pp", "dp")
    missing = [k for k in keys if k not in p]
    if missing:                     # every serving plan has them all; a missing one is a bug, not a blank
        raise KeyError(missing[0])
    return plan(p, keys=keys, node_limit=False)


def render_infer(res: dict) -> None:
    """``trainsim infer`` as a table: KV cache, decode and prefill plans, tokens/s per chip and latency."""
    c = console()
    # a MoE's routed experts may be stored in another precision than the rest (serving.expert_precision: an NVFP4
    # MoE beside FP8 attention): the experts hold most of the weights, so the title names both (qa28)
    xp = res.get("expert_precision")
    experts = f", {xp} routed experts" if xp and xp != res["precision"] else ""
    t = table(title=f"{res['name']}: {res['model']} on {res['chip']} ({res['system']}), {res['precision']} weights"
              f"{experts}", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    # the GEMM rate the numerics run at, and why: FP4 on a chip without FP4 tensor cores runs at its FP8 (or BF16)
    # rate (inference/setup.py peak_note), shown here as --json shows it (gemm_peak_basis), not only there
    t.add_row("GEMM peak used", f"{res['gemm_peak_flops'] / 1e12:,.0f} TFLOP/s ({res['gemm_peak_basis']})")
    # binary units, like the GiB of the memory row below (a per-sequence MB beside a per-chip GiB did not add up)
    t.add_row("KV cache per token", f"{res['kv_cache_bytes_per_token'] / 2**10:,.1f} KiB ({res['kv_precision']})")
    ctx = res["decode_context_len"]
    t.add_row(f"KV cache per sequence (mean decode context, {ctx:,} token{'s' if ctx != 1 else ''})",
              f"{res['kv_cache_bytes_per_sequence'] / 2**20:,.1f} MiB")
    if "decode" in res:
        d = res["decode"]
        t.add_row("decode plan", _plan(d["plan"], res.get("moe", True)))
        # 3 significant digits (fmt.value): one sequence on 4 chips is 0.250, not 0.2; on 32 chips 0.031, not 0.0
        t.add_row("decode batch per chip", value(float(d["batch_per_chip"])))
        inter = d.get("prefill_in_tpot_s") or 0.0     # aggregated serving: prompts prefilled between decode steps
        t.add_row("decode tokens/s per chip" + (" (decode steps alone)" if inter > 0 else ""),
                  f"{d['tokens_per_s_per_chip']:,.0f}")
        mtp = res.get("mtp")
        if mtp:     # the assumption the two rates rest on: tokens a step yields (speculative_tokens_per_step)
            n = mtp["draft_tokens"]
            per_step = speculative_tokens_per_step(n, mtp["acceptance"])
            t.add_row("multi-token prediction", f"{n} draft token{'s' if n != 1 else ''} at {mtp['acceptance']:.0%} "
                      f"acceptance: {per_step:.2f} tokens per sequence per decode step of "
                      f"{d['step_time_s'] * 1e3:.1f} ms")
            if res.get("draft_note"):
                t.add_row("draft cost", res["draft_note"])
        t.add_row("time per output token", f"{d['tpot_s'] * 1e3:.1f} ms ({d['tokens_per_s_per_user']:.1f} tok/s/user"
                  + (f"; {inter * 1e3:.1f} ms of it prompts prefilled between decode steps)" if inter > 0 else ")"))
        m = d["memory_per_chip_bytes"]
        parts = ", ".join(f"{_PART.get(k, k)} {v / GIB:.1f}" for k, v in m.items() if k != "total")
        t.add_row("decode memory per chip", f"{gib(m['total'])} of {gib(res['hbm_bytes'])} ({parts})")
        if d.get("expert_note"):
            t.add_row("decode experts", d["expert_note"])
    agg = res.get("aggregate") or {}
    if "decode" not in res and "note" in agg:    # one output token: no decode step (inference.serve.has_decode)
        t.add_row("time per output token", f"- ({agg['note']})")
    if "prefill" in res:
        p = res["prefill"]
        t.add_row("prefill plan", _plan(p["plan"], res.get("moe", True)))
        if p.get("expert_note"):
            t.add_row("prefill experts", p["expert_note"])
        t.add_row("prefill tokens per chip per round", f"{p['prompt_tokens_per_chip']:,.0f}")
        # the stack's per-step token budget the round is chunked to (inference/step.py prefill_chunks)
        if res.get("max_batched_tokens"):
            t.add_row("tokens per step and scheduler (budget)", f"{res['max_batched_tokens']:,}")
        t.add_row("prefill tokens/s per chip", f"{p['tokens_per_s_per_chip']:,.0f}")
        rounds, pp = p.get("rounds_to_first_token", 1.0), p["plan"].get("pp", 1)
        t.add_row("time to first token", f"{p['ttft_s']:.2f} s ("
                  + ("one round)" if rounds <= 1.0 + 1e-9 else f"{rounds:,.3g} rounds: a round is a chunk of a prompt)"
                     if pp == 1 else f"{rounds:,.3g} rounds: the prompt's pieces cross the {pp} pipeline stages in "
                     "turn)"))
    if "output_tokens_per_s_per_chip" in agg:
        t.add_row("output tokens/s per chip (prefill and decode on the same chips)",
                  f"{agg['output_tokens_per_s_per_chip']:,.1f}")
    for k, v in (res.get("error") or {}).items():
        t.add_row(f"error vs reported: {k}", f"{v:+.1%}")
    c.print(t)


def render_errors(rows: list[dict], summ: dict, latency_rows: list[dict] | None = None) -> None:
    """``trainsim infer --validate``: predicted vs published serving points, their summary and the latency-bound table."""
    c = wide_console(160)   # piped: 160 columns, so the names are not cut to 'cloudmatrix384-…' (seven rows alike)
    t = table(title="inference model vs published serving numbers (tokens/s per chip)")
    for col in ("deployment", "phase", "reported", "predicted", "range", "error"):
        t.add_column(col, justify="right" if col in ("reported", "predicted", "range", "error") else "left",
                     overflow="fold" if col == "deployment" else "ellipsis")
    for r in rows:
        rg = r.get("predicted_range")
        t.add_row(r["name"] + ("" if r.get("counted", True) else " (production average, not counted)"), r["phase"],
                  f"{r['reported']:,.0f}", f"{r['predicted']:,.0f}",
                  f"{rg[0]:,.0f}-{rg[1]:,.0f}" if rg else "", f"{r['error']:+.1%}")
    c.print(t)
    if summ.get("points"):
        c.print(f"{summ['points']} points: median |error| {summ['median_abs_error']:.1%}, "
                f"max {summ['max_abs_error']:.1%}, mean signed {summ['mean_signed_error']:+.1%}"
                + (f" ({summ['not_counted']} production averages listed, not counted)" if summ.get("not_counted")
                   else ""))
    if latency_rows:
        t = table(title="decode under a TPOT bound, batch searched (CloudMatrix384, DeepSeek-R1)")
        for col in ("TPOT bound", "reported", "published batch/chip", "predicted", "searched batch/chip", "error"):
            t.add_column(col, justify="right")
        for r in latency_rows:
            met = r["predicted"] is not None      # None: no batch meets the bound in the model (r["why"] says why)
            t.add_row(f"{r['tpot_bound_ms']:g} ms", f"{r['reported']:,.0f}", f"{r['reported_batch_per_chip'] or 0:g}",
                      f"{r['predicted']:,.0f}" if met else "none meets it",
                      f"{r['predicted_batch_per_chip']:g}" if met else "-", f"{r['error']:+.1%}" if met else "-")
        c.print(t)
        for r in latency_rows:
            if r["predicted"] is None:
                c.print(f"{r['tpot_bound_ms']:g} ms: {r['why']}")
