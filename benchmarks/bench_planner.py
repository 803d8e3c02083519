"""The planner's speed as a user sees it (issue 15). Run: python benchmarks/bench_planner.py [--scenarios]

Measures, on the machine it runs on, each as the median of ``REPEATS`` runs:

* ``python -c "import numpy"``: the floor every numpy program pays (the reference for the ratios);
* ``python -c "import trainsim.cli"``: trainsim's start-up;
* a whole ``trainsim plan RUN --json`` process for the 1.6T MoE on 24,960 chips (65 CloudMatrix 384 pods) with a
  64M-token batch (``runs/longcat2-class-cm384x65-64m.yaml``), search included;
* the search alone in this process: plans evaluated, wall and CPU seconds, plans per CPU-second, peak memory
  (``ru_maxrss`` of a child process doing only that search);
* with ``--scenarios``: ``trainsim scenario --all``.

Wall time on a shared machine depends on its load, so CPU seconds are printed next to it. Not a test.
"""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
CASE = HERE / "runs" / "longcat2-class-cm384x65-64m.yaml"
REPEATS = 5
PY = sys.executable
TRAINSIM = [PY, "-m", "trainsim"]


def _timed(cmd: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the child) for one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _median(cmd: list[str], repeats: int) -> tuple[float, float]:
    runs = [_timed(cmd) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


SEARCH_CHILD = """
import resource, sys, time, trainsim
run = trainsim.load_run(sys.argv[1])
t0 = time.perf_counter(); c0 = time.process_time()
res = trainsim.search(run)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
b = res.best
print(res.plans_evaluated, res.plans_feasible, wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      b.used, b.run.training.batch_seqs, b.mfu)
"""


def main(repeats: int = REPEATS, scenarios: bool = False) -> None:
    env_note = f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    print(f"# bench_planner on {env_note}; median of {repeats}")
    numpy_w, numpy_c = _median([PY, "-c", "import numpy"], repeats)
    print(f"python -c 'import numpy'            wall {numpy_w:6.3f} s  cpu {numpy_c:6.3f} s  (reference: 1.0x)")
    imp_w, imp_c = _median([PY, "-c", "import trainsim.cli"], repeats)
    print(f"python -c 'import trainsim.cli'     wall {imp_w:6.3f} s  cpu {imp_c:6.3f} s  "
          f"({imp_w / numpy_w:.1f}x / {imp_c / numpy_c:.1f}x)")
    plan_w, plan_c = _median(TRAINSIM + ["plan", str(CASE), "--json"], repeats)
    print(f"trainsim plan (1.6T MoE, 24,960 chips, 64M batch) wall {plan_w:6.3f} s  cpu {plan_c:6.3f} s  "
          f"({plan_w / numpy_w:.1f}x / {plan_c / numpy_c:.1f}x)")
    out = subprocess.run([PY, "-c", SEARCH_CHILD, str(CASE)], check=True, capture_output=True, text=True)
    n, fit, wall, cpu, rss, used, batch, mfu = out.stdout.split()
    n, wall, cpu = int(n), float(wall), float(cpu)
    print(f"search: {n:,} plans ({int(fit):,} fit), wall {wall:.3f} s, cpu {cpu:.3f} s, "
          f"{n / cpu / 1e6:.2f} M plans per CPU-second ({n / wall / 1e6:.2f} M/s wall), peak memory "
          f"{float(rss):.0f} MiB; best plan uses {int(used):,} chips, batch {int(batch):,} seqs, MFU {float(mfu):.1%}")
    if scenarios:
        sc_w, sc_c = _median(TRAINSIM + ["scenario", "--all"], 1)
        print(f"trainsim scenario --all              wall {sc_w:6.1f} s  cpu {sc_c:6.1f} s")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else REPEATS, scenarios="--scenarios" in sys.argv)
