"""The test command's parallel run (pytest-xdist, README quick start and .ci/run) stays one command, needs the
xdist version that has its flags, and hands the slowest files out first (tests/conftest.py)."""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from types import SimpleNamespace

import conftest
from conftest import SLOW_FILES

ROOT = Path(__file__).resolve().parents[1]


def _pytest_args(text: str, starts: str, python: str) -> list[str]:
    """The arguments after ``PYTHON -m pytest`` on the one line of ``text`` that starts with ``starts``."""
    (line,) = [ln for ln in text.splitlines() if ln.lstrip().startswith(starts) and f"{python} -m pytest " in ln]
    return shlex.split(line.split(f"{python} -m pytest ", 1)[1])


def test_ci_runs_the_readme_test_command():
    """.ci/run says it runs the README's second quick-start command: the same pytest arguments, in its own venv."""
    readme = _pytest_args((ROOT / "README.md").read_text(), "python3 -m venv .venv &&", ".venv/bin/python")
    ci = _pytest_args((ROOT / ".ci" / "run").read_text(), "&& .venv-ci/bin/python", ".venv-ci/bin/python")
    assert ci == readme
    assert readme[:4] == ["-n", "auto", "--dist", "loadfile"]     # whole files per worker: module fixtures once


def test_test_extra_has_the_xdist_that_knows_the_flags():
    """--no-loadscope-reorder came with pytest-xdist 3.8.0 (its CHANGELOG.rst, 2025-06-30, #1083); .ci/lowest
    installs the lower bound, so the bound must be at least that."""
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    (bound,) = [re.fullmatch(r"pytest-xdist>=([0-9.]+)", d).group(1) for d in extra if d.startswith("pytest-xdist")]
    assert tuple(int(x) for x in bound.split(".")) >= (3, 8)


def test_slow_files_exist():
    """A renamed slow file would silently lose its place at the front of the queue."""
    assert all((ROOT / "tests" / name).is_file() for name in SLOW_FILES)


def _item(name: str):
    return SimpleNamespace(path=ROOT / "tests" / name, label=name)


def test_workers_take_the_slow_files_first():
    """On an xdist worker (``config.workerinput`` set), the collected items are reordered: SLOW_FILES in their own
    order, then every other file in collection order, each file's tests kept in order; a run without workers keeps
    the collection order."""
    names = ["test_a.py::1", "test_fuzz.py::1", "test_b.py::1", "test_accuracy.py::1", "test_fuzz.py::2",
             "test_a.py::2"]
    items = [_item(n.split("::")[0]) for n in names]
    for it, n in zip(items, names):
        it.label = n
    plain = list(items)
    conftest.pytest_collection_modifyitems(SimpleNamespace(), plain)
    assert [it.label for it in plain] == names
    on_worker = list(items)
    conftest.pytest_collection_modifyitems(SimpleNamespace(workerinput={}), on_worker)
    assert [it.label for it in on_worker] == ["test_accuracy.py::1", "test_fuzz.py::1", "test_fuzz.py::2",
                                               "test_a.py::1", "test_b.py::1", "test_a.py::2"]
