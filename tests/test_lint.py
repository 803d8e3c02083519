"""ruff (the package, its tests, scripts, benchmarks and examples) and mypy (strict on model/, parallel/, perf/) as configured in pyproject.toml; each
skips, saying why, where it is not installed (``pip install -e '.[test]'`` installs both)."""
from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINTED = ("trainsim", "tests", "scripts", "benchmarks", "examples")


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(tool) is None:
        pytest.skip(f"{tool} is not installed (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_ruff_passes():
    r = _run("ruff", "check", *LINTED)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_mypy_strict_passes():
    r = _run("mypy")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
