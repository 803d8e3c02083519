"""Plan-search speed on the three reference cases (issue 4). Run: python benchmarks/bench_search.py

Prints, per case: plans evaluated, feasible, whole-search seconds (median of 5), plans per second, and the
best plan. Measured on the machine it runs on (CI-class: 2 cores); not a test.
"""
from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import trainsim

HERE = Path(__file__).parent / "runs"
CASES = ["longcat2-class-cm384x65.yaml", "longcat2-class-cm384x65-64m.yaml", "deepseek-v3-h800x2048.yaml", "llama31-405b-h100x16384.yaml"]


def main(repeats: int = 5) -> None:
    print(f"{'case':34s} {'plans':>9s} {'feasible':>9s} {'search s':>9s} {'plans/s':>11s} {'peak MiB':>9s}  best plan")
    for name in CASES:
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
        med = statistics.median(times)
        best = res.best.plan if res.best else None
        desc = (f"tp{best['tp']} pp{best['pp']} vpp{best['vpp']} ep{best['ep']} cp{best['cp']} dp{best['dp']} "
                f"z{best['zero']} {best['recompute']} mb{best['micro_batch']} {best['schedule']}") if best else "-"
        print(f"{name[:-5]:34s} {res.plans_evaluated:9,d} {res.plans_feasible:9,d} {med:9.3f} "
              f"{res.plans_evaluated / med:11,.0f} {peak:9.0f}  {desc}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
