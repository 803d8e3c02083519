"""The run spec a command reads, with its warnings: the one place every command that takes a run-spec file
(``estimate``, ``plan``, ``report``, ``compare``, ``size``, ``sensitivity``; ``check`` after its own checks) loads
it and prints :func:`trainsim.api.run_warnings` (a ``training.seq_len`` above the model's context, qa29) on stderr;
the answer is still printed. ``report``, ``compare``, ``size``, ``sensitivity`` and ``check`` said nothing of such
a run (qa30a)."""
from __future__ import annotations

import sys
from pathlib import Path

from .. import api


def load_run_warned(path: Path) -> api.Run:
    """The run spec at ``path`` (:func:`trainsim.api.load_run`), each of its warning lines printed on stderr."""
    r = api.load_run(path)
    print_warnings(r)
    return r


def print_warnings(r: api.Run) -> None:
    """Each warning line of run ``r`` on stderr; a command whose options need the run to be checked (``plan
    --against``) loads it with :func:`trainsim.api.load_run`, checks them, then calls this, so that bad input
    stays one line (qa30c)."""
    for line in api.run_warnings(r):   # legal but likely a mistake: stderr, the answer still printed
        print(line, file=sys.stderr)
