"""Fuzzing the CLI in-process: hostile run, sweep, serving and post-training specs (values, types, structure,
encodings; see ``tests/fuzz/specs.py``) must each end as an answer, a "no answer" (exit 1) or one line of bad
input (exit 2): never a traceback, a bug report (exit 3), a multi-line error or a nonsense number.

CI runs ``FUZZ_EXAMPLES`` (default 2,000) examples; ``scripts/fuzz.py`` runs 10,000 in subprocesses with a time
limit each.
"""
from __future__ import annotations

import collections
import os
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings

from fuzz.specs import classify, mutations, run_in_process, write_case

N = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
FAIL = ("bug", "traceback", "multi-line", "nonsense")
SEEN: collections.Counter = collections.Counter()


@settings(max_examples=N, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(mutations())
def test_hostile_specs_never_crash_or_lie(case):
    tmp = tempfile.mkdtemp(prefix="trainsim-fuzz-")
    try:
        argv = write_case(tmp, case)
        rc, out, err = run_in_process(argv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    outcome, detail = classify(rc, out, err)
    SEEN[outcome] += 1
    assert outcome not in FAIL, f"{outcome}: trainsim {' '.join(argv[:1])} on {case[2]} text:\n{case[1][:600]}\n" \
                                f"-> {detail}"


def test_fuzz_reached_every_outcome_kind():
    """The fuzz above is not vacuous: its cases include answers and bad inputs (runs after it in file order)."""
    if sum(SEEN.values()) < N:  # the fuzz test was deselected or failed
        return
    assert SEEN["ok"] >= N // 50 and SEEN["bad-input"] >= N // 4, dict(SEEN)
