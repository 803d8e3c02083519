"""QA pass 30a: user-facing defects found using the CLI as a compute-policy analyst would (each test fails on the
code before its fix)."""
from __future__ import annotations

import pytest

from conftest import SMALL_RUN, one_line, run_main, write_spec


# ---------------------------------------------------------------- 1. seq_len above the context: every command says it

#: Llama 3.1 8B (max_position_embeddings 131,072 in its HF config.json) trained at twice its context
LONG_RUN = ("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
            "training: {tokens: 100B, seq_len: 262144, global_batch_seqs: 64}\n")
LONG_WARNING = "training.seq_len: 262,144 is more than llama-3.1-8b's context of 131,072"


def _warnings(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("warning:")]


@pytest.mark.parametrize("command, extra", [("report", ["--json", "--no-sweeps", "-q"]),
                                            ("size", ["--days", "30", "--json"]),
                                            ("sensitivity", ["--vary", "hbm_bandwidth", "--factors", "0.5", "--json"]),
                                            ("check", ["--json"])])
def test_report_and_size_warn_of_a_seq_len_past_the_context(tmp_path, capsys, command, extra):
    """`estimate` and `plan` warned of seq_len 262,144 on Llama 3.1 8B (context 131,072); `report`, `size`,
    `sensitivity` and `check` of the same file said nothing. Now the one warning line, naming the file, on every
    command that reads a run spec."""
    spec = write_spec(tmp_path, LONG_RUN)
    code, out, err = run_main(capsys, command, spec, *extra)
    warns = _warnings(err)
    assert warns == [f"warning: {spec}: {LONG_WARNING} (max_position_embeddings); priced as stated, as "
                     "long-context extension training with scaled RoPE"], err
    assert out.strip().startswith("{")        # the answer is still printed


def test_compare_warns_for_the_one_run_past_its_context(tmp_path, capsys):
    """compare of a 4,096-token run and the 262,144-token one: one warning, naming the second file only."""
    short = write_spec(tmp_path, SMALL_RUN, "short.yaml")
    long_ = write_spec(tmp_path, LONG_RUN, "long.yaml")
    code, out, err = run_main(capsys, "compare", short, long_, "--json")
    warns = _warnings(err)
    assert len(warns) == 1 and warns[0].startswith(f"warning: {long_}: {LONG_WARNING}"), err
    assert out.strip().startswith("{")


# ---------------------------------------------------------------- 2. assumptions: {pue: 100} is bounded as --pue is

#: a 7B dense model on 64 H100 (tests/test_report.py's small scenario), with one assumption overridden
SCENARIO = ("id: T1\nkind: pretrain-feasibility\nclaim: 'A 7B dense model on 1T tokens on 64 H100 in 60 days'\n"
            "question: 'How many days'\n"
            "model: {name: t7b, layers: 32, hidden: 4096, heads: 32, ffn: 11008, ffn_act: swiglu, vocab: 32000}\n"
            "model_source: inline\ntraining: {tokens: 1e12, seq_len: 4096, global_batch_seqs: 256, precision: bf16}\n"
            "training_source: test\nsystem: dgx-h100\nchips: 64\ndeadline_days: 60\nassumptions: {pue: %s}\n")


@pytest.mark.parametrize("value, shown", [("100", "100"), ("0.5", "0.5"), ("3.5", "3.5"),
                                          ("{value: 1.2, low: 1.1, high: 30}", "30")])
def test_a_scenario_pue_outside_one_to_three_is_bad_input(tmp_path, capsys, value, shown):
    """`assumptions: {pue: 100}` priced the run at 100x its facility energy (3,171 MWh for the 7B run) while
    `--pue 100` is refused (qa29b: PUE = facility / IT energy >= 1; Uptime Institute's survey average ~1.56, so
    above 3 is a typo). The scenario field takes the same bound and the same line, naming file and field."""
    spec = write_spec(tmp_path, SCENARIO % value, "t1.yaml")
    code, out, err = run_main(capsys, "scenario", spec, "-q")
    line = one_line(code, err, 2)
    assert line == (f"error: {spec}: assumptions.pue: expected a PUE between 1 and 3 (facility / IT energy), "
                    f"got {shown}"), line


def test_a_scenario_pue_of_three_is_still_accepted():
    """The bound is inclusive at both ends, as --pue's."""
    from trainsim.assumptions import defaults
    assert defaults().with_overrides({"pue": 3})["pue"] == 3
    assert defaults().with_overrides({"pue": {"value": 1.0, "low": 1.0, "high": 3.0}})["pue"] == 1.0


# ---------------------------------------------------------------- 4. a plan list's error names the one bad value

LIST_RUN = ("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
            "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512}\nplan: {%s: %s}\n")


@pytest.mark.parametrize("field, value, bad, expected", [
    ("schedule", "[1f1b, zb]", "'zb'", "Input should be '1f1b', 'interleaved', 'zero-bubble', 'dualpipe' or 'afab'"),
    ("schedule", "[1f1b, interleaved, 7]", "7", "Input should be '1f1b', 'interleaved', 'zero-bubble', 'dualpipe' "
                                                "or 'afab'"),
    ("tp", "[8, x]", "'x'", "Input should be a valid integer")])
def test_a_bad_item_of_a_plan_list_is_named_alone(tmp_path, capsys, field, value, bad, expected):
    """`plan: {schedule: [1f1b, zb]}` said "...; got ['1f1b', 'zb']": the whole list, not which item is wrong.
    Now the one bad item (zb is no schedule name: parallel/schedules.py lists 1f1b, interleaved, zero-bubble,
    dualpipe, afab), with the field and the line."""
    spec = write_spec(tmp_path, LIST_RUN % (field, value))
    code, out, err = run_main(capsys, "plan", spec, "-q")
    line = one_line(code, err, 2)
    assert line.startswith(f"error: {spec}: plan.{field}: {expected}"), line
    assert line.endswith(f"; got {bad} (line 5)"), line


# ---------------------------------------------------------------- 5. .ci/lowest prints its pass count

def test_ci_lowest_runs_pytest_quiet_once():
    """pyproject.toml's addopts already holds -q; .ci/lowest passed -q again, and pytest at -qq prints no
    'N passed' line (measured: `pytest -q tests/test_ci_config.py` printed only the dots, without -q '4 passed in
    1.02s'). The job's one pytest command must add no -q of its own, so that the run is quiet once."""
    import shlex
    import tomllib
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    addopts = shlex.split(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
                          ["addopts"])
    text = (root / ".ci" / "lowest").read_text().replace("\\\n", " ")    # continuation lines joined
    (line,) = [ln for ln in text.splitlines() if " -m pytest " in ln]
    args = shlex.split(line.split(" -m pytest ", 1)[1])
    quiet = lambda opts: sum(a.count("q") for a in opts if a.startswith("-") and not a.startswith("--")  # noqa: E731
                             and set(a[1:]) == {"q"}) + opts.count("--quiet")
    assert quiet(addopts) + quiet(args) == 1, (addopts, args)


# ---------------------------------------------------------------- 3. size: durations in the project's one format

TINY_RUN = SMALL_RUN.replace("tokens: 1T", "tokens: 2B")    # Llama 3.1 8B on 2B tokens: minutes on a few servers


def test_size_of_a_run_of_minutes_does_not_say_zero_days(tmp_path, capsys):
    """`size` of Llama 3.1 8B on 2B tokens with --days 0.01 answered '30 systems (240 chips) finish in 0.0 days
    (ideal 0.0, ...)': its own one-decimal days, where every other command prints a duration under 0.1 days as two
    significant figures and the time (numfmt.days: 0.0099 days = 0.0099 x 1,440 = 14.3 min). The message and the
    probe table now print the answer's days in that format."""
    spec = write_spec(tmp_path, TINY_RUN)
    code, out, err = run_main(capsys, "size", spec, "--days", "0.01", "--json")
    import json
    res = json.loads(out)
    eff, ideal = res["effective_days"], res["days"]
    assert code == 0 and eff <= 0.01, (code, err)
    # by hand: under 0.1 days, two significant figures and the minutes (one day = 1,440 min)
    assert f"finish in {eff:.2g} days ({eff * 1440:.1f} min) (ideal {ideal:.2g} days ({ideal * 1440:.1f} min)," \
        in res["message"], res["message"]
    assert "0.0 days" not in res["message"] and "ideal 0.0," not in res["message"]
    code, out, err = run_main(capsys, "size", spec, "--days", "0.01", "-q")
    row = next(ln for ln in out.splitlines() if f" {res['chips']:,} " in ln and "│" in ln)
    assert f"{eff:.2g} ({eff * 1440:.1f} min)" in row and " 0.0 " not in row, row


def test_sensitivity_of_a_run_of_minutes_does_not_say_zero_days(tmp_path, capsys):
    """`sensitivity` of Llama 3.1 8B on 100M tokens (64 H100: minutes) printed 'nominal: 0.0 days' and cells
    '0.0 (+11%)', its own one-decimal days; now numfmt.days: two significant figures and the minutes below 0.1 days
    (one day = 1,440 min)."""
    spec = write_spec(tmp_path, SMALL_RUN.replace("tokens: 1T", "tokens: 100M"))
    args = ("sensitivity", spec, "--vary", "hbm_bandwidth", "--factors", "0.5")
    import json
    code, out, err = run_main(capsys, *args, "--json")
    d = json.loads(out)
    nominal, half = d["nominal_days"], d["params"]["hbm_bandwidth"]["rows"][0]["days"]
    assert code == 0 and nominal < 0.1 and half < 0.1, (nominal, half)
    code, out, err = run_main(capsys, *args, "-q")
    assert code == 0, err
    assert f"nominal: {nominal:.2g} days ({nominal * 1440:.1f} min)" in out, out
    assert f"{half:.2g} ({half * 1440:.1f} min)" in " ".join(out.split()), out
    assert "0.0 (" not in out and "nominal: 0.0 days" not in out


# ---------------------------------------------------------------- 6. scenario assumptions: no negative, zero or bool

@pytest.mark.parametrize("override, field, expected", [
    # divided by: 0 years of life, 0 B/s of checkpoint bandwidth ended in 'bug: unexpected ZeroDivisionError' (exit 3)
    ("life_years: 0", "life_years", "expected a number > 0 (years), got 0"),
    ("checkpoint_write_bw: 0", "checkpoint_write_bw", "expected a number > 0 (bytes/s), got 0"),
    # sqrt of a negative failure rate: 'bug: unexpected ValueError: math domain error' (exit 3)
    ("interruptions_per_chip_hour: -1", "interruptions_per_chip_hour", "expected a number >= 0 (1/(chip-hour)), "
                                                                       "got -1"),
    # a negative restart time gave goodput 1.0000286 (> 1: more than the ideal tokens in the time)
    ("restart_s: -600", "restart_s", "expected a number >= 0 (s), got -600"),
    # priced as given: a negative electricity bill, a negative rent
    ("electricity_usd_per_kwh: -1", "electricity_usd_per_kwh", "expected a number >= 0 (USD/kWh), got -1"),
    ("rental_markup: -2", "rental_markup", "expected a number > 0 (ratio), got -2"),
    ("{rental_usd_per_chip_hour: {nvidia-h100-sxm5: -1}}", "rental_usd_per_chip_hour",
     "expected a number >= 0 (USD per chip-hour), got -1"),
    # YAML's true is no number of years (it was taken as 1)
    ("life_years: true", "life_years", "expected a number, got True"),
])
def test_a_scenario_assumption_out_of_its_range_is_bad_input(tmp_path, capsys, override, field, expected):
    """Scenario assumptions are durations, rates, prices and ratios: none is negative, and a divisor (life,
    checkpoint bandwidth) is not zero. Each is now one line naming file, field, value and the bound, exit 2."""
    body = override[1:-1] if override.startswith("{") else override
    spec = write_spec(tmp_path, (SCENARIO % "1.2").replace("assumptions: {pue: 1.2}", f"assumptions: {{{body}}}"),
                      "t1.yaml")
    code, out, err = run_main(capsys, "scenario", spec, "-q")
    line = one_line(code, err, 2)
    assert line == f"error: {spec}: assumptions.{field}: {expected}", line


@pytest.mark.parametrize("override", ["interruptions_per_chip_hour: 0", "restart_s: 0", "life_years: 0.5",
                                      "electricity_usd_per_kwh: 0"])
def test_a_zero_rate_or_cost_assumption_is_still_accepted(override):
    """No failures, an instant restart, free power and a half-year life are extreme but meaningful."""
    from trainsim.assumptions import defaults
    import yaml
    key, value = next(iter(yaml.safe_load("{" + override + "}").items()))
    assert defaults().with_overrides({key: value})[key] == value


@pytest.mark.parametrize("args", [("size", "{spec}", "--days", "-1"), ("size", "{spec}", "--days", "1",
                                                                        "--unit", "pod"),
                                  ("compare", "{spec}")])
def test_bad_options_beside_a_warned_run_are_still_one_line(tmp_path, capsys, args):
    """A bad --days / --unit, or compare of one file, is one error line and exit 2 even when the run spec has a
    warning: the options are checked before the run's warnings are printed."""
    spec = write_spec(tmp_path, LONG_RUN)
    code, out, err = run_main(capsys, *[a.format(spec=spec) for a in args])
    assert one_line(code, err, 2).startswith("error: "), err


@pytest.mark.parametrize("assumptions, field, expected", [
    # each ended in 'bug: unexpected AttributeError / TypeError' (exit 3)
    ("[1]", "assumptions", "expected a mapping of assumption: value (such as {life_years: 4}), got a list"),
    ("7", "assumptions", "expected a mapping of assumption: value (such as {life_years: 4}), got a number"),
    ("{rental_usd_per_chip_hour: 3}", "assumptions.rental_usd_per_chip_hour",
     "expected a mapping such as {nvidia-h800-sxm5: 2}, got 3"),   # the first of assumptions.yaml: H800 $2 (DeepSeek-V3)
    ("{pue: {value: abc}}", "assumptions.pue", "expected a number, got 'abc'"),
    # replaced the {coef, exponent} rule by 5 without a word (exit 0)
    ("{critical_batch_tokens: 5}", "assumptions.critical_batch_tokens",
     "expected a mapping such as {coef: 0.292}, got 5"),
])
def test_a_scenario_assumptions_block_of_the_wrong_shape_is_bad_input(tmp_path, capsys, assumptions, field, expected):
    """The shapes assumptions.yaml gives: a mapping of keys; per-chip prices and the critical-batch rule are
    mappings themselves (their first key shown as the example); a {value: ...} override holds a number."""
    spec = write_spec(tmp_path, (SCENARIO % "1.2").replace("assumptions: {pue: 1.2}", f"assumptions: {assumptions}"),
                      "t1.yaml")
    code, out, err = run_main(capsys, "scenario", spec, "-q")
    line = one_line(code, err, 2)
    assert line == f"error: {spec}: {field}: {expected}", line
