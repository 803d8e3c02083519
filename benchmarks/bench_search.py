"""Plan-search speed on the reference cases (issues 4 and 15). Run: python benchmarks/bench_search.py [N] [--readme]

Prints, per case: plans evaluated, feasible, whole-search seconds (median of N, default 5), plans per second, peak
traced memory and the best plan. Measured on the machine it runs on (CI-class: 2 cores); not a test. With
``--readme`` the table is written into README.md between ``<!-- bench:begin -->`` and ``<!-- bench:end -->``.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import trainsim
from _bench import repeats_arg, write_readme

HERE = Path(__file__).parent / "runs"
CASES = {
    "longcat2-class-cm384x65.yaml": "1.6T/48B MoE on 24,960 Ascend 910C (65 CloudMatrix 384), 62.9M-token batch "
                                    "(5% tolerance, idle pods allowed)",
    "longcat2-class-cm384x65-64m.yaml": "the same with the 64M-token batch of issue 15",
    "deepseek-v3-h800x2048.yaml": "DeepSeek-V3 on 2,048 H800",
    "llama31-405b-h100x16384.yaml": "Llama 3.1 405B on 16,384 H100",
}


def measure(name: str, repeats: int) -> dict:
    """Median whole-search wall time of ``repeats`` searches of one case, its counts, peak traced memory, best plan."""
    run = trainsim.load_run(HERE / name)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = trainsim.search(run)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    trainsim.search(run)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    best = res.best.plan if res.best else None
    desc = (f"tp{best['tp']} pp{best['pp']} vpp{best['vpp']} ep{best['ep']} cp{best['cp']} dp{best['dp']} "
            f"z{best['zero']} {best['recompute']} mb{best['micro_batch']} {best['schedule']}") if best else "-"
    return dict(plans=res.plans_evaluated, fit=res.plans_feasible, s=statistics.median(times), peak=peak, best=desc)


def table(rows: dict, repeats: int) -> str:
    """The README table: one row per case."""
    load = os.getloadavg()[0]
    lines = [f"Measured by `python benchmarks/bench_search.py {repeats} --readme` (2 CPUs, load average {load:.1f} "
             f"at the end; median of {repeats}; the search as the library runs it, threads as `plan` chooses them):",
             "",
             "| case | plans evaluated | fit in memory | search (wall) | plans/s (wall) | peak MiB (traced) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {CASES[name]} | {r['plans']:,} | {r['fit']:,} | {r['s']:.3g} s | "
                     f"{r['plans'] / r['s'] / 1e6:.1f} M | {r['peak']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    repeats = repeats_arg(5)
    rows = {}
    for name in CASES:
        rows[name] = r = measure(name, repeats)
        print(f"{name[:-5]:34s} {r['plans']:9,d} {r['fit']:9,d} {r['s']:9.3f} {r['plans'] / r['s']:11,.0f} "
              f"{r['peak']:9.0f}  {r['best']}")
    text = table(rows, repeats)
    if "--readme" in sys.argv:
        write_readme(text, "bench")
        print("README: search-speed table regenerated")


if __name__ == "__main__":
    main()
