"""What the benchmark scripts share: timing a child process, the repeat count on the command line, and writing a
table into the repository README between its ``<!-- TAG:begin -->`` / ``<!-- TAG:end -->`` markers.

The scripts run as ``python benchmarks/bench_X.py`` (this folder first on ``sys.path``); not a test module.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from trainsim.validate.calibrate import replace_section

README = Path(__file__).resolve().parent.parent / "README.md"


def timed_child(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall s, CPU s of the child and its children) for one run of ``cmd``, its output discarded; ``env`` adds
    to (or overrides) this process's environment."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=None if env is None else {**os.environ, **env})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def repeats_arg(default: int) -> int:
    """The repeat count: the first command-line word that is not an option (``--readme`` ...), else ``default``."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    return int(args[0]) if args else default


def write_readme(text: str, tag: str) -> None:
    """Replace the README section between ``<!-- TAG:begin -->`` and ``<!-- TAG:end -->`` with ``text``."""
    README.write_text(replace_section(README.read_text(encoding="utf-8"), text, tag=tag), encoding="utf-8")
