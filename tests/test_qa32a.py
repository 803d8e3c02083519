"""QA pass 32a (training side): each test fails on the code before its fix (cb7cb0c6) and names what it read."""
from __future__ import annotations

import pytest

from trainsim.cli import app
from trainsim.cli.handler import run


def _main(capsys, *args):
    code = run(app, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, line", [
    ([], "error: --units: expected a fleet size: --units N (scale-up domains) or --chips N (chips), a positive "
         "count; got neither"),
    (["--units", "0"], "error: --units: expected a positive count, got 0"),
    (["--units", "4", "--chips", "32"], "error: --units: expected one fleet size, --units or --chips, not both; "
                                        "got --units 4 and --chips 32")])
def test_capacity_without_a_count_says_what_was_expected(capsys, args, line):
    """`capacity --system hgx-h100 --days 30` (no count) answered 'got --units 0, --chips 0': two values the user
    never typed. Fix: the options default to 'not given', so the line says neither was given, and what one gives."""
    code, out, err = _main(capsys, "capacity", "--system", "hgx-h100", "--days", "30", *args)
    assert (code, out, err.strip()) == (2, "", line)
