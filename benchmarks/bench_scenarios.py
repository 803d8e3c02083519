"""``trainsim scenario --all`` as a user runs it (issue 15: <= 5 s). Run: python benchmarks/bench_scenarios.py [N] [--readme]

Measures on the machine it runs on, as the median of ``N`` runs (default 3), interleaved so that every figure
sees the same load and the ratios hold on a shared machine:

* ``python -c "import numpy"``: the floor every numpy program pays (the reference for the ratios);
* a whole ``trainsim scenario --all`` process (the scenarios in two processes, as shipped), cold: nothing of a
  previous run is reused (no result is cached on disk; only the catalog's parsed tables are, as for every
  command);

and once, in one child process with each scenario's plan searches not shared with the others (as in one of the
two workers), where the CPU time goes: per scenario its CPU seconds, plan searches and the seconds inside them.

Wall time on a shared machine depends on its load, so CPU seconds are printed next to it. With ``--readme`` the
table is written into README.md between ``<!-- scenario-bench:begin -->`` and ``<!-- scenario-bench:end -->``.
Not a test: no figure here is asserted.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _bench import repeats_arg, timed_child, write_readme

HERE = Path(__file__).parent
REPEATS = 3
PY = sys.executable


BREAKDOWN_CHILD = """
import importlib, json, time
import trainsim.scenario.common as C
from trainsim.scenario.run import scenario_files, run_file
S = importlib.import_module("trainsim.search")
inside = [0.0]
orig = S.search
def timed(*a, **k):
    t = time.process_time()
    try:
        return orig(*a, **k)
    finally:
        inside[0] += time.process_time() - t
C.search = timed
out = []
for p in scenario_files():
    C.clear_cache(); inside[0] = 0.0
    t = time.process_time()
    run_file(p)
    out.append([p.stem, time.process_time() - t, C.STATS["searches"], inside[0]])
print(json.dumps(out))
"""


def measure(repeats: int = REPEATS) -> dict:
    cases = {"numpy": [PY, "-c", "import numpy"], "scenarios": [PY, "-m", "trainsim", "scenario", "--all"]}
    timed_child(cases["scenarios"])            # the catalog's parsed tables are cached from here on, as for any user
    runs: dict[str, list] = {k: [] for k in cases}
    for _ in range(repeats):
        for k, cmd in cases.items():
            runs[k].append(timed_child(cmd))
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in runs.items()}
    med["best_wall"] = {k: min(r[0] for r in v) for k, v in runs.items()}   # the closest to a quiet machine
    out = subprocess.run([PY, "-c", BREAKDOWN_CHILD], check=True, capture_output=True, text=True)
    med["breakdown"] = json.loads(out.stdout)
    med["env"] = f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    return med


def table(m: dict, repeats: int) -> str:
    nw, nc = m["numpy"]
    w, c = m["scenarios"]
    lines = [
        f"Measured by `python benchmarks/bench_scenarios.py {repeats} --readme` ({m['env']} at the end; median of "
        f"{repeats}, interleaved):",
        "",
        "| what | wall | CPU | ratio to `import numpy` (wall / CPU) |",
        "|---|---:|---:|---:|",
        f'| `python -c "import numpy"` | {nw:.2f} s | {nc:.2f} s | 1.0x / 1.0x |',
        f"| whole `trainsim scenario --all` process (two worker processes), cold | {w:.1f} s | {c:.1f} s | "
        f"{w / nw:.0f}x / {c / nc:.0f}x |",
        "",
        f"Least wall time of the {repeats} runs (the closest to a quiet machine): `import numpy` "
        f"{m['best_wall']['numpy']:.2f} s, `scenario --all` {m['best_wall']['scenarios']:.1f} s.",
        "",
        "Where the CPU time goes (one process, each scenario's searches not shared with the others):",
        "",
        "| scenario | CPU | plan searches | in the searches |",
        "|---|---:|---:|---:|",
    ]
    tot = [0.0, 0, 0.0]
    for sid, cpu, n, inside in m["breakdown"]:
        lines.append(f"| {sid} | {cpu:.2f} s | {n} | {inside:.2f} s |")
        tot = [tot[0] + cpu, tot[1] + n, tot[2] + inside]
    lines.append(f"| all | {tot[0]:.1f} s | {tot[1]} | {tot[2]:.1f} s |")
    return "\n".join(lines)


def main() -> None:
    repeats = repeats_arg(REPEATS)
    text = table(measure(repeats), repeats)
    print(text)
    if "--readme" in sys.argv:
        write_readme(text, "scenario-bench")


if __name__ == "__main__":
    main()
