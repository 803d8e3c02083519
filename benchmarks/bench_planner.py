"""The planner's speed as a user sees it (issue 15). Run: python benchmarks/bench_planner.py [N] [--scenarios] [--readme]

Measures, on the machine it runs on, each as the median of ``N`` runs (default 5), interleaved so that every
figure sees the same load and the ratios hold even on a shared machine:

* ``python -c "import numpy"``: the floor every numpy program pays (the reference for the ratios);
* ``python -c "import trainsim.cli"``: trainsim's start-up;
* a whole ``trainsim plan RUN --json`` process for the 1.6T MoE on 24,960 chips (65 CloudMatrix 384 pods) with a
  64M-token batch (``runs/longcat2-class-cm384x65-64m.yaml``), search included, with the catalog cache warm (the
  normal case) and cold (a fresh ``TRAINSIM_CACHE``: the first command after an install or a catalog edit);
* the search alone in a child process (with the malloc thresholds the ``trainsim`` command sets,
  :mod:`trainsim.cli.malloc_tuning`): plans evaluated, wall and CPU seconds, plans per second, peak memory
  (``ru_maxrss`` of that child), on one thread and on two (``TRAINSIM_THREADS=2``);
* with ``--scenarios``: ``trainsim scenario --all`` (once).

The package is byte-compiled first (as an install leaves it). Wall time on a shared machine depends on its
load, so CPU seconds are printed next to it. With ``--readme`` the
table is written into README.md between ``<!-- planner-bench:begin -->`` and ``<!-- planner-bench:end -->``.
Not a test: no figure here is asserted.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _bench import repeats_arg, timed_child, write_readme
from trainsim.search import idle_cpus

HERE = Path(__file__).parent
CASE = HERE / "runs" / "longcat2-class-cm384x65-64m.yaml"
REPEATS = 5
PY = sys.executable
TRAINSIM = [PY, "-m", "trainsim"]


SEARCH_CHILD = """
import resource, sys, time, trainsim
from trainsim.cli.malloc_tuning import keep_freed_memory
keep_freed_memory()              # as the trainsim command does
run = trainsim.load_run(sys.argv[1])
t0 = time.perf_counter(); c0 = time.process_time()
res = trainsim.search(run)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
b = res.best
print(res.plans_evaluated, res.plans_feasible, wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      b.used, b.run.training.batch_seqs, b.mfu)
"""


def _search(threads: int) -> list:
    out = subprocess.run([PY, "-c", SEARCH_CHILD, str(CASE)], check=True, capture_output=True, text=True,
                         env={**os.environ, "TRAINSIM_THREADS": str(threads)})
    n, fit, wall, cpu, rss, used, batch, mfu = out.stdout.split()
    return [int(n), int(fit), float(wall), float(cpu), float(rss), int(used), int(batch), float(mfu)]


def measure(repeats: int = REPEATS, scenarios: bool = False) -> dict:
    # byte-compile the package first, as an install does: with PYTHONDONTWRITEBYTECODE set (this machine) every
    # process would otherwise compile trainsim from source, which is not what a user's start-up pays
    subprocess.run([PY, "-m", "compileall", "-q", str(HERE.parent / "trainsim")], check=True,
                   stdout=subprocess.DEVNULL)
    cold_dir = tempfile.mkdtemp(prefix="trainsim-cold-")
    cases = {
        "numpy": ([PY, "-c", "import numpy"], None),
        "import": ([PY, "-c", "import trainsim.cli"], None),
        "plan": (TRAINSIM + ["plan", str(CASE), "--json"], None),
    }
    runs: dict[str, list] = {k: [] for k in list(cases) + ["plan_cold", "search1", "search2"]}
    timed_child(cases["plan"][0])                       # the catalog cache is warm from here on
    for i in range(repeats):
        for k, (cmd, env) in cases.items():
            runs[k].append(timed_child(cmd, env))
        fresh = os.path.join(cold_dir, str(i))     # an empty cache dir: catalog validated and built again
        runs["plan_cold"].append(timed_child(cases["plan"][0], {"TRAINSIM_CACHE": fresh}))
        runs["search1"].append(_search(1))
        runs["search2"].append(_search(2))
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
           for k, v in runs.items() if k in cases or k == "plan_cold"}
    # the least wall time of the runs: the closest this shared machine comes to a quiet one
    med["best_wall"] = {k: min(r[0] for r in v) for k, v in runs.items() if k in cases or k == "plan_cold"}
    for k in ("search1", "search2"):
        v = runs[k]
        med[k] = [v[0][0], v[0][1]] + [statistics.median(r[j] for r in v) for j in (2, 3, 4)] + list(v[0][5:])
    if scenarios:
        med["scenarios"] = timed_child(TRAINSIM + ["scenario", "--all"])
    med["env"] = f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    med["threads"] = idle_cpus()    # what a `trainsim plan` process with TRAINSIM_THREADS unset uses now
    return med


def table(m: dict, repeats: int) -> str:
    nw, nc = m["numpy"]
    n, fit, w1, c1, rss1, used, batch, mfu = m["search1"]
    _, _, w2, c2, rss2, *_ = m["search2"]

    def row(name, key):
        w, c = m[key]
        return f"| {name} | {w:.2f} s | {c:.2f} s | {w / nw:.1f}x / {c / nc:.1f}x |"

    lines = [
        f"Measured by `python benchmarks/bench_planner.py {repeats}{' --scenarios' if 'scenarios' in m else ''} "
        f"--readme` ({m['env']} at the end; median of {repeats}, interleaved):",
        "",
        "| what | wall | CPU | ratio to `import numpy` (wall / CPU) |",
        "|---|---:|---:|---:|",
        row('`python -c "import numpy"`', "numpy"),
        row('`python -c "import trainsim.cli"`', "import"),
        row("whole `trainsim plan ... --json` process, search included (catalog cache warm)", "plan"),
        row("the same, catalog cache cold (first command after an install or a catalog edit)", "plan_cold"),
        f"| the search alone, one thread: {n:,} plans ({fit:,} fit) | {w1:.2f} s | {c1:.2f} s | "
        f"{n / w1 / 1e6:.1f} M plans/s wall, {n / c1 / 1e6:.1f} M per CPU-second; peak RSS {rss1:.0f} MiB |",
        f"| the search alone, two threads (`TRAINSIM_THREADS=2`) | {w2:.2f} s | {c2:.2f} s | "
        f"{n / w2 / 1e6:.1f} M plans/s wall; peak RSS {rss2:.0f} MiB |",
    ]
    if "scenarios" in m:
        w, c = m["scenarios"]
        lines.append(f"| `trainsim scenario --all` (two processes) | {w:.1f} s | {c:.1f} s | "
                     f"{w / nw:.0f}x / {c / nc:.0f}x |")
    bw = m["best_wall"]
    lines += ["", f"Best plan: {used:,} of 24,960 chips, a batch of {batch:,} sequences, MFU {mfu:.1%}. The `plan` "
              f"processes search on the CPUs the load leaves idle (`TRAINSIM_THREADS` unset; {m['threads']} at the "
              f"end of this run). Least wall time of the {repeats} runs (the closest to a quiet machine): "
              f"`import numpy` {bw['numpy']:.2f} s, `import trainsim.cli` {bw['import']:.2f} s, whole `plan` process "
              f"{bw['plan']:.2f} s ({bw['plan'] / bw['numpy']:.1f}x), cache cold {bw['plan_cold']:.2f} s."]
    return "\n".join(lines)


def main() -> None:
    repeats = repeats_arg(REPEATS)
    text = table(measure(repeats, scenarios="--scenarios" in sys.argv), repeats)
    print(text)
    if "--readme" in sys.argv:
        write_readme(text, "planner-bench")


if __name__ == "__main__":
    main()
