"""Usage mistakes (issue 19, item 1): one line on stderr with the command's usage, exit 2, never a traceback.

Each case runs the installed command by subprocess (``python -m trainsim``, the same entry point as the
``trainsim`` script), so the test sees what a user of a fresh install sees, whichever click typer brings.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "runs" / "llama31-405b-h100x16384.yaml"


def trainsim(*args):
    return subprocess.run([sys.executable, "-m", "trainsim", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, needle, usage", [
    ((), "missing command", "trainsim [OPTIONS] COMMAND"),
    (("catalog",), "missing command", "trainsim catalog [OPTIONS] COMMAND"),
    (("--bogus",), "--bogus", "trainsim [OPTIONS] COMMAND"),
    (("nosuchcmd",), "nosuchcmd", "trainsim [OPTIONS] COMMAND"),
    (("plan", str(RUN), "--top", "abc"), "--top", "trainsim plan [OPTIONS]"),
    (("size", str(RUN)), "--days", "trainsim size [OPTIONS]"),
    (("estimate",), "missing argument", "trainsim estimate [OPTIONS]"),
    (("estimate", str(RUN), "--bogus"), "--bogus", "trainsim estimate [OPTIONS]"),
    (("catalog", "show"), "missing argument", "trainsim catalog show"),
    (("sweep", "--workers", "x"), "--workers", "trainsim sweep [OPTIONS]"),
])
def test_usage_error_is_one_line_exit_2(args, needle, usage):
    r = trainsim(*args)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert needle.lower() in lines[0].lower() and usage in lines[0] and "--help" in lines[0], lines[0]


def test_help_still_works():
    r = trainsim("size", "--help")
    assert r.returncode == 0 and "--days" in r.stdout


@pytest.mark.parametrize("cmd", ["estimate", "plan", "size", "report", "infer", "posttrain", "sweep", "model",
                                 "sensitivity", "validate", "scenario", "capacity"])
def test_every_command_rejects_an_unknown_option_in_one_line(cmd):
    r = trainsim(cmd, "--no-such-option")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and f"trainsim {cmd}" in lines[0], r.stderr
