"""QA pass 30c: small output defects left by this session's QA (each test fails on the code before its fix)."""
from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from conftest import one_line, run_main, write_spec
from test_qa30a import LONG_RUN, LONG_WARNING


# ---------------------------------------------------------------- 1. a short duration never prints as "0.0" days

#: a nearest alternative of a plan search that finds no plan: 0.0125 days = 0.0125 x 1,440 min = 18.0 min
ALT = {"text": "twice the chips", "step_time_s": 1.5, "mfu": 0.4, "days": 0.0125,
       "memory_per_chip_bytes": 40 * 2**30, "plan": {"tp": 1, "pp": 1, "dp": 8}}


def test_no_plan_message_alternatives_do_not_say_zero_days():
    """search.SearchResult's 'nearest alternatives' text printed its days with one decimal ('0.0 days' for an
    alternative of 18 minutes); now numfmt.days: two significant figures and the minutes under 0.1 days."""
    from trainsim.search import SearchResult
    text = SearchResult._alternatives_text(SimpleNamespace(alternatives=[ALT]))
    assert ", 0.013 days (18.0 min)" in text and "0.0 days" not in text, text


def test_terminal_alternatives_table_does_not_say_zero_days():
    """The terminal table of nearest alternatives (report.terminal.render_search) printed '0.0' in its days
    column; now the number as numfmt.days prints it without the word: '0.013 (18.0 min)'."""
    from trainsim.report.terminal import render_search
    buf = io.StringIO()
    res = SimpleNamespace(best=None, alternatives=[ALT], no_plan_message=lambda: "no plan fits in memory",
                          plans_evaluated=1, plans_feasible=0, search_seconds=0.1, rejected={})
    render_search(res, c=Console(file=buf, width=200))
    row = next(ln for ln in buf.getvalue().splitlines() if "twice the chips" in ln)
    assert "0.013 (18.0 min)" in row and " 0.0 " not in row, row


def test_sweep_days_cells_do_not_say_zero_days():
    """`sweep --summary` printed days columns with one decimal ('0.0' for a point of 36 minutes); now numfmt.days
    without the word: 0.025 days = 36.0 min; 21.94 days stays '21.9'."""
    from trainsim.report.sweep import _fmt
    assert _fmt(0.025, "days") == "0.025 (36.0 min)"
    assert _fmt(21.94, "days") == "21.9"


# ---------------------------------------------------------------- 2. tests/test_readme_numbers.py run as a script

def test_readme_numbers_script_imports_its_own_tree(tmp_path):
    """`python tests/test_readme_numbers.py` puts tests/ (not the repository) first on sys.path, so it imported
    whichever trainsim the environment had installed: an editable install of another checkout, whose loader
    refused this tree's run files (training.hidden_dropout: unknown key), gave error rows without predictions and
    a TypeError in ascend_fragment. A decoy trainsim first on PYTHONPATH stands for that other checkout: the script
    now imports the trainsim beside it and prints the fragments (the pytest functions assert the same ones)."""
    import subprocess
    import sys
    from pathlib import Path
    decoy = tmp_path / "trainsim"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('decoy trainsim imported')\n")
    script = Path(__file__).resolve().parent / "test_readme_numbers.py"
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                       env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)}, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "LLaMA3-8B at 8K (TP 8) reaches " in p.stdout, p.stdout[-2000:]


# ---------------------------------------------------------------- 3. bad options beside a warned run: one line

@pytest.mark.parametrize("args, field", [
    (("plan", "{spec}", "--against", "tp=abc"), "--against"),
    (("plan", "{spec}", "--against", "bogus=2"), "--against"),
    (("sensitivity", "{spec}", "--factors", "0"), "--factors"),
    (("sensitivity", "{spec}", "--factors", "abc"), "--factors"),
    (("sensitivity", "{spec}", "--factors", ","), "--factors"),
    (("sensitivity", "{spec}", "--vary", "hbm"), "--vary"),
    (("sensitivity", "{spec}", "--threshold", "abc"), "--threshold"),
])
def test_plan_against_and_sensitivity_options_beside_a_warned_run_are_one_line(tmp_path, capsys, args, field):
    """Llama 3.1 8B at twice its context (a run-spec warning) with a bad --against, --factors, --vary or
    --threshold printed the warning, then the error: two stderr lines. The options are now checked before the
    run's warnings are printed (as size and compare do, qa30a): one line naming the option, exit 2."""
    spec = write_spec(tmp_path, LONG_RUN)
    code, out, err = run_main(capsys, *[a.format(spec=spec) for a in args])
    line = one_line(code, err, 2)
    assert line.startswith("error: ") and field in line, line


def test_a_good_against_beside_a_warned_run_still_warns(tmp_path, capsys):
    """The warning is still printed when the options are good (the run is then searched)."""
    spec = write_spec(tmp_path, LONG_RUN)
    code, out, err = run_main(capsys, "plan", spec, "--against", "tp=1,pp=1", "--json")
    assert LONG_WARNING in err, err


def test_html_report_sensitivity_cells_do_not_say_zero_days():
    """The HTML report's sensitivity table printed each cell's days with one decimal and 'd' ('0.0 d, +11.0%' for a
    variation of 18 minutes); now numfmt.days, as its nominal line beside it: 0.0125 days = 18.0 min."""
    from trainsim.report.run_report import _sensitivity
    sens = {"rows": [{"param": "hbm_bandwidth", "nominal": 4.8e12, "unit": "B/s",
                      "points": [{"days": 0.0125, "change_pct": 11.0}]}], "factors": [0.5], "nominal_days": 0.01125}
    html = _sensitivity({"sensitivity": sens}, None)
    assert "0.013 days (18.0 min), +11" in html and "0.0 d," not in html, html
