#!/usr/bin/env python3
"""Fuzz the trainsim CLI with 10,000 hostile specs, each run in its own child process with a time limit.

    python scripts/fuzz.py [--cases 10000] [--timeout 60] [--jobs 2] [--seed 0] [--show 3]

Cases come from the hypothesis strategies of ``tests/fuzz/specs.py`` (run, sweep, serving and post-training specs
mutated in values, types, structure and encoding, over estimate, plan, size, model, sweep, infer and posttrain).
Each case runs in a child forked from a process that has already imported trainsim (so 10,000 runs take minutes,
not hours); a child that runs past ``--timeout`` seconds is killed and counted as a hang. Prints the count of
each outcome (ok, no-answer, bad-input; failures: bug, traceback, multi-line, nonsense, hang) and a few examples
of every failure; exits 1 when any failure occurred.
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from fuzz.specs import COMMANDS, classify, mutations, write_case  # noqa: E402

FAILURES = ("bug", "traceback", "multi-line", "nonsense", "hang")


def generate(n: int, seed_value: int) -> list:
    cases = []

    @seed(seed_value)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutations())
    def collect(case):
        cases.append(case)

    collect()
    return cases


def start(case, folder: Path) -> tuple[int, list[str]]:
    """Fork a child that runs one case with stdout/stderr in files; returns (pid, argv)."""
    argv = write_case(folder, case)
    pid = os.fork()
    if pid == 0:  # child
        try:
            out = os.open(folder / "stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            err = os.open(folder / "stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1)
            os.dup2(err, 2)
            from trainsim.cli import app
            from trainsim.cli.handler import run

            rc = run(app, argv)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc if isinstance(rc, int) else 1)
        except BaseException:  # noqa: BLE001 - an escaped exception: print it like the interpreter would
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
            os._exit(70)  # EX_SOFTWARE: never an exit code the CLI itself uses
    return pid, argv


def warm_up() -> None:
    """Import every command's modules and fill the catalog caches once, before forking, by running each seed."""
    from fuzz.specs import SEEDS, _dump, run_in_process

    with tempfile.TemporaryDirectory() as d:
        for kind, doc in SEEDS:
            case = (kind, _dump(doc), "utf-8", None)
            for command in COMMANDS[kind]:
                run_in_process(write_case(d, case[:3] + (command,)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a case counts as a hang")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=3, help="examples printed per failure kind")
    a = ap.parse_args()

    warm_up()

    t0 = time.perf_counter()
    cases = generate(a.cases, a.seed)
    t_gen = time.perf_counter() - t0
    counts: collections.Counter = collections.Counter()
    by_cmd: collections.Counter = collections.Counter()
    examples: dict[str, list] = collections.defaultdict(list)
    slowest = (0.0, "")
    with tempfile.TemporaryDirectory(prefix="trainsim-fuzz-") as root:
        running: dict[int, tuple] = {}
        todo = list(enumerate(cases))
        while todo or running:
            while todo and len(running) < a.jobs:
                i, case = todo.pop(0)
                folder = Path(root) / str(i)
                folder.mkdir()
                pid, argv = start(case, folder)
                running[pid] = (i, case, folder, argv, time.perf_counter())
            time.sleep(0.002)
            for pid, (_i, case, folder, argv, t_start) in list(running.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                elapsed = time.perf_counter() - t_start
                if done == 0 and elapsed < a.timeout:
                    continue
                if done == 0:  # a hang
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    outcome, detail = "hang", f"over {a.timeout:g} s"
                else:
                    rc = os.waitstatus_to_exitcode(status)
                    out = (folder / "stdout").read_text(errors="replace")
                    err = (folder / "stderr").read_text(errors="replace")
                    outcome, detail = classify(None if rc in (70,) or rc < 0 else rc, out, err)
                del running[pid]
                counts[outcome] += 1
                by_cmd[argv[0]] += 1
                slowest = max(slowest, (elapsed, argv[0]))
                if outcome in FAILURES and len(examples[outcome]) < a.show:
                    examples[outcome].append((argv, case[2], case[1][:400], detail))
                shutil.rmtree(folder, ignore_errors=True)
    total = time.perf_counter() - t0
    print(f"{len(cases):,} cases in {total:.0f} s (generation {t_gen:.0f} s, {a.jobs} jobs, timeout {a.timeout:g} s); "
          f"slowest case {slowest[0]:.1f} s ({slowest[1]})")
    print("by command: " + ", ".join(f"{k} {v:,}" for k, v in sorted(by_cmd.items())))
    print("outcomes:   " + ", ".join(f"{k} {counts.get(k, 0):,}" for k in ("ok", "no-answer", "bad-input") + FAILURES))
    for kind, rows in examples.items():
        print(f"\n== {kind}")
        for argv, enc, text, detail in rows:
            print(f"trainsim {' '.join(argv)}  [{enc}]\n{text}\n-> {detail}\n")
    return 1 if any(counts.get(k) for k in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
