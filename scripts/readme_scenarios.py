#!/usr/bin/env python3
"""Regenerate the README's generated tables: the seed scenarios from `trainsim scenario --all --json` and the
software-stack profiles from trainsim/catalog/data/framework_schedules.yaml, the serving stacks from
trainsim/inference/data/serving_stacks.yaml, the DeepSeek-V3 whole-run
check and the published plans' memory (what a reader sees comes from the
engine and its data, never typed by hand).

Usage: python scripts/readme_scenarios.py [SCENARIOS.json]   (without a file, runs the scenarios itself)
       python scripts/readme_scenarios.py --frameworks-only
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from trainsim.validate.calibrate import replace_section

ROOT = Path(__file__).resolve().parents[1]


def _cell(text: str) -> str:
    return " ".join(str(text or "").split()).replace("|", "/")


def table(results: list[dict]) -> str:
    """The README's scenario table: every cell is a scenario's own output (claim, verdict class, deciding
    assumption, headline) from ``trainsim scenario --all --json``; ``tests/test_scenarios.py`` fails when the
    README and a fresh run disagree."""
    lines = ["| id | claim | verdict | deciding assumption | headline (generated) |", "|---|---|---|---|---|"]
    for r in results:
        claim = _cell(r.get("claim", ""))
        claim = claim if len(claim) <= 90 else claim[:90].rsplit(" ", 1)[0] + " ..."
        lines.append(f"| {r['id']} | {claim} | {_cell(r['verdict_class'])} | "
                     f"{_cell(r.get('deciding_assumption'))} | {_cell(r.get('headline') or r['verdict'])} |")
    return "\n".join(lines)


def frameworks_table() -> str:
    from trainsim.frameworks import _doc, default_for_vendors, frameworks

    default = _doc()["default_framework"]
    lines = ["| profile | schedules | ZeRO | recompute | EP | CP | precisions | defaults for unstated fields | source |",
             "|---|---|---|---|---|---|---|---|---|"]
    for fw, p in frameworks().items():
        on = default_for_vendors(fw)     # a spec that names no stack: its chip vendor's (default_framework_by_vendor)
        name = (f"**{fw}** (default on {', '.join(on)}{'; elsewhere' if fw == default else ''})" if on
                else f"**{fw}** (default)" if fw == default else fw)
        d = p.get("defaults") or {}
        dtext = (", ".join(f"{k} {v}" for k, v in d.items()) + f" ({p['defaults_source'].replace('|', '/')})"
                 if d else "none stated: searched")
        lines.append(f"| {name} | {', '.join(p['schedules'])} | {', '.join(map(str, p['zero']))} | "
                     f"{', '.join(p['recompute'])} | {'yes' if p['expert_parallel'] else 'no'} | "
                     f"{'yes' if p['context_parallel'] else 'no'} | {', '.join(p['precisions'])} | {dtext} | {p['source'].replace('|', '/')} |")
    return "\n".join(lines)


def stacks_table() -> str:
    """The README's serving-stack table: each profile of trainsim/inference/data/serving_stacks.yaml (and its
    release eras) with what the serving model reads from it and the sources, as the file states them."""
    from trainsim.inference.stacks import _doc, profile, vendor_stack

    doc = _doc()

    def car(p: dict) -> str:
        c = p["custom_all_reduce"]
        if c is None:
            return "none: the library's all-reduce"
        text = f"{', '.join(map(str, c['world_sizes']))} ranks, under {c['max_bytes']:,} B"
        if c.get("max_bytes_at_most_2_ranks"):
            text += f" ({c['max_bytes_at_most_2_ranks']:,} B at 2 ranks)"
        if c.get("max_bytes_amd"):
            text += f" ({c['max_bytes_amd']:,} B on AMD)"
        return text

    def cap(p: dict) -> str:
        m = p["max_running"]
        if m is None:
            return "none stated: the KV cache's"
        if m.get("large_gpu_value"):
            return (f"{m['large_gpu_value']:,} on chips of {m['large_gpu_min_bytes'] / 2**30:g} GiB or more "
                    f"(not {', '.join(m.get('large_gpu_excludes') or [])}), else {m['value']:,}")
        return f"{m['value']:,}"

    def budget(p: dict) -> str:
        m = p["max_batched_tokens"]
        if m is None:
            return "none stated"
        text = (f"{m['large_gpu_value']:,} on chips of {m['large_gpu_min_bytes'] / 2**30:g} GiB or more"
                + (f" (not {', '.join(m['large_gpu_excludes'])})" if m.get("large_gpu_excludes") else "")
                + f", else {m['value']:,}") if m.get("large_gpu_value") else f"{m['value']:,}"
        if m.get("at_least_context"):
            text = f"max(model context, {m['value']:,})"
        return text + ("; decodes count first" if m["counts_decode"] else "; prefill only")

    def overlap(p: dict) -> str:
        return "not stated (spec default: overlapped)" if p["host_overlap"] is None else \
            "overlapped" if p["host_overlap"] else f"synchronous ({p['host_loop']})"

    defaults = {}
    for vendor, sid in doc.vendor_default.items():
        defaults.setdefault(sid, []).append(vendor)
    lines = ["| stack | custom all-reduce | running requests per scheduler (unstated) | tokens per step and "
             "scheduler (unstated) | host loop (unstated) | sources |", "|---|---|---|---|---|---|"]
    for sid, prof in doc.stacks.items():
        rows = [(sid, profile(sid))] + [(f"{sid} < {v.before}", profile(sid, _before(v.before)))
                                        for v in prof.versions]
        for label, p in rows:
            name = f"**{label}** ({p['name']}; default on {', '.join(defaults[sid])})" if sid in defaults and \
                label == sid else f"**{label}** ({p['name']})"
            src = " ".join(_cell(p[f"{k}_source"]) for k in ("custom_all_reduce", "max_running", "max_batched_tokens",
                                                             "host_overlap"))
            lines.append(f"| {name} | {car(p)} | {cap(p)} | {budget(p)} | {overlap(p)} | {src} |")
    assert vendor_stack("other") in doc.stacks
    return "\n".join(lines)


def _before(version: str) -> str:
    """A release just before ``version`` ('0.8.0' -> '0.7.999'), to show a profile's older era."""
    parts = [int(x) for x in version.split(".")]
    i = max(k for k, x in enumerate(parts) if x > 0)
    return ".".join(map(str, parts[:i] + [parts[i] - 1] + [999] * (len(parts) - i - 1)))


def deepseek_check() -> str:
    """DeepSeek-V3's published plan against its reported whole-run GPU-hours (a whole-run average, failures
    included, so it is reported apart from the steady-state calibration set)."""
    from trainsim.estimate import estimate
    from trainsim.spec import load_run

    run = load_run(ROOT / "validation" / "runs" / "deepseek-v3-paper-h800-2048.yaml")
    est = estimate(run)
    reported_h = run.reported.chip_hours
    reported_tps = run.training.tokens / (reported_h * 3600.0)
    pred_h = est.chip_hours
    return (f"DeepSeek-V3 reports {reported_h / 1e6:.3f}M H800 GPU-hours for {run.training.tokens / 1e12:.1f}T "
            f"pre-training tokens: {reported_tps:,.0f} tokens/s per GPU averaged over the whole run, failures and "
            f"batch ramp-up included. With the plan the report states "
            f"(`validation/runs/deepseek-v3-paper-h800-2048.yaml`) trainsim predicts {est.tokens_per_s_per_chip:,.0f} "
            f"tokens/s per GPU steady state, {est.memory_per_chip_bytes / 2**30:.0f} GiB per GPU, i.e. "
            f"{pred_h / 1e6:.2f}M GPU-hours without failures ({pred_h / reported_h - 1:+.0%}).")


PLANS_FIT = (
    ("deepseek-v3-paper-h800-2048", "DeepSeek-V3's published plan (pp 16 DualPipe, ep 64, ZeRO-1, RMSNorm and MLA "
     "up-projection recomputed, SwiGLU inputs cached in FP8, BF16 Adam moments, EMA in host memory)"),
    ("llama3-paper-405b-h100-16384-8k", "Llama 3 405B on 16,384 H100 (tp 8, pp 16 interleaved, no activation "
     "checkpointing, the first model chunk holding only the embedding and the last only the loss)"),
    ("llama3-paper-405b-h100-8192-8k", "Llama 3 405B on 8,192 H100 (the same plan at the paper's first stage)"),
)


def plans_fit() -> str:
    """Memory per chip of the large published runs under the plans their papers state (``estimate`` with the
    run spec's plan), against the chip's HBM."""
    from trainsim.errors import NoPlanError
    from trainsim.estimate import estimate
    from trainsim.spec import load_run

    parts = []
    for stem, what in PLANS_FIT:
        run = load_run(ROOT / "validation" / "runs" / f"{stem}.yaml")
        try:
            est = estimate(run, advise=False)
            need, verdict = est.memory_per_chip_bytes, "fits" if est.fits else "does not fit"
        except NoPlanError as e:   # the stated fields leave only plans that do not fit: the smallest of them
            need, verdict = e.result.smallest_memory_bytes, "does not fit"
        parts.append(f"{what}: {need / 2**30:.1f} GiB per chip of {run.system.chip.hbm_bytes / 2**30:.1f} "
                     f"({verdict})")
    return "; ".join(parts) + "."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` and a mistyped flag exit here, before any README is written)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="?", type=Path, help="`trainsim scenario --all --json` output (default: run "
                                                          "the scenarios)")
    ap.add_argument("--frameworks-only", action="store_true", help="regenerate only the framework profile, "
                                                                   "DeepSeek-V3 and plans-fit sections")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    readme = ROOT / "README.md"
    readme.write_text(replace_section(readme.read_text(), frameworks_table(), tag="frameworks"))
    readme.write_text(replace_section(readme.read_text(), stacks_table(), tag="serving-stacks"))
    readme.write_text(replace_section(readme.read_text(), deepseek_check(), tag="dsv3"))
    readme.write_text(replace_section(readme.read_text(), plans_fit(), tag="plans-fit"))
    print("README: framework profile table regenerated")
    if args.frameworks_only:
        return
    if args.results is not None:
        results = json.loads(args.results.read_text())
    else:
        out = subprocess.run([sys.executable, "-m", "trainsim", "scenario", "--all", "--json"], cwd=ROOT,
                             capture_output=True, text=True, check=True)
        results = json.loads(out.stdout)
    readme.write_text(replace_section(readme.read_text(), table(results), tag="scenarios"))
    print(f"README: scenario table regenerated ({len(results)} scenarios)")


if __name__ == "__main__":
    main()
