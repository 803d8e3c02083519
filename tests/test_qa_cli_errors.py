"""Error paths of every command that reads a spec file: hostile files and hostile run-spec values each end as ONE
line on stderr naming the file (and the field), exit 2, nothing on stdout, no traceback; a run with no plan is exit
1 with the nearest alternatives. In-process (tests/fuzz/specs.py run_in_process), a few seconds in all.

tests/test_robust.py checks `estimate` on binary, UTF-16 / Latin-1, deep, duplicate-key and alias-bomb files;
tests/test_fuzz.py mutates specs at random; this file is the deterministic matrix over the other commands."""
from __future__ import annotations

import pytest

from fuzz.specs import run_in_process

#: every command that reads a spec file, with its arguments ({f}: the file, {ok}: a valid run beside it)
COMMANDS = {
    "estimate": ["estimate", "{f}"], "plan": ["plan", "{f}", "--json"], "size": ["size", "{f}", "--days", "30"],
    "compare": ["compare", "{f}", "{ok}"], "check": ["check", "{f}"], "report": ["report", "{f}", "--json"],
    "sensitivity": ["sensitivity", "{f}"], "validate": ["validate", "{f}"], "infer": ["infer", "{f}"],
    "posttrain": ["posttrain", "{f}"], "sweep": ["sweep", "{f}", "-o", "{out}"], "scenario": ["scenario", "{f}"],
}
RUN_COMMANDS = ("estimate", "plan", "size", "compare", "check", "report", "sensitivity", "validate")

OK = "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 8\ntraining: {tokens: 1T, seq_len: 4096, global_batch_seqs: 64}\n"

#: hostile files: (name, content or a marker for a folder / a missing file, what the line says)
FILES = [
    ("empty", b"", "empty file"),
    ("blank", b"  \n\n", "empty file"),
    ("folder", "<dir>", "folder"),
    ("missing", "<missing>", "no such"),
    ("python-tag", b"name: !!python/object/apply:os.mkdir ['{marker}']\n", "could not determine a constructor"),
    ("custom-tag", b"name: !foo bar\nmodel: llama-3.1-8b\n", "could not determine a constructor for the tag '!foo'"),
    ("list", b"- a\n- b\n", "got a list"),
    ("scalar", b"42\n", "got a number"),
    ("not-utf8", b"name: \xff\xfe\nmodel: llama-3.1-8b\n", "not UTF-8"),
    ("duplicate", b"model: llama-3.1-8b\nmodel: llama-3.1-70b\n", "duplicate key 'model'"),
    ("malformed", b"model: [llama\nsystem: {\n", "not valid YAML"),
]


def _run(tmp_path, command: str, f) -> tuple:
    argv = [a.format(f=f, ok=tmp_path / "ok.yaml", out=tmp_path / "out.parquet") for a in COMMANDS[command]]
    (tmp_path / "ok.yaml").write_text(OK)
    return run_in_process(argv)


def _one_line(rc, out, err, want_rc=2) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == want_rc and not out.strip() and len(lines) == 1 and "Traceback" not in err, (rc, out[:200], err[-400:])
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name, content, needle", FILES, ids=[f[0] for f in FILES])
def test_hostile_file_is_one_line_exit_2(tmp_path, command, name, content, needle):
    """Each command refuses each hostile file with one line naming it. A YAML tag never constructs an object (the
    loader is safe: the python tag's os.mkdir does not run)."""
    marker = tmp_path / "constructed"
    if content == "<dir>":
        f = tmp_path / "a-folder"
        f.mkdir()
    elif content == "<missing>":
        f = tmp_path / "no-such.yaml"
    else:
        f = tmp_path / f"{name}.yaml"
        f.write_bytes(content.replace(b"{marker}", str(marker).encode()))
    line = _one_line(*_run(tmp_path, command, f))
    assert str(f) in line, line
    if not (command == "validate" and content == "<dir>"):   # validate reads a folder: 'no run-spec files in it'
        assert needle in line, line
    assert not marker.exists()


#: hostile values of a run spec: (edit of OK, field named, what the line says)
VALUES = [
    ("chips: 8", "chips: 8\nbogus: 1", "bogus", "unknown key"),
    ("llama-3.1-8b", "llama-9", "model", "unknown model 'llama-9'; did you mean"),
    ("dgx-h100", "dgx-h1000", "system", "unknown system 'dgx-h1000'; did you mean"),
    ("chips: 8", "chips: 8\nframework: megatron-x", "framework", "unknown framework 'megatron-x'; did you mean"),
    ("chips: 8", "chips: -8", "chips", "expected a positive number of chips, got -8"),
    ("chips: 8", "chips: 0", "chips", "expected a positive number of chips, got 0"),
    ("chips: 8", "chips: eight", "chips", "eight"),
    ("chips: 8", "chips: true", "chips", "boolean"),
    ("seq_len: 4096", "seq_len: 99999999999", "training.seq_len", "less than or equal to 100000000"),
    ("tokens: 1T", "tokens: -1T", "training.tokens", "positive"),
    ("system: dgx-h100\n", "", "system", "missing key; expected system: at the top level"),
    ("chips: 8", "chips: 8\nplan: {tp: 3}", "plan.tp", "tp must divide the attention heads"),
    ("chips: 8", "chips: 8\nplan: {pp: 2, first_stage_layers: 1, last_stage_layers: 1}", "plan.first_stage_layers",
     "30 of the 32 layers"),
]


@pytest.mark.parametrize("command", RUN_COMMANDS)
@pytest.mark.parametrize("old, new, field, needle", VALUES, ids=[v[2] + ":" + v[1][-12:] for v in VALUES])
def test_bad_run_spec_value_names_file_field_and_value(tmp_path, command, old, new, field, needle):
    """Every command that reads a run spec refuses each bad value with the one line of the run spec's reader:
    file, field, value (or the key) and what was expected."""
    f = tmp_path / "run.yaml"
    f.write_text(OK.replace(old, new, 1))
    line = _one_line(*_run(tmp_path, command, f))
    assert line.startswith(f"error: {f}: {field}: "), line
    assert needle in line, line


NO_FIT = "model: llama-3.1-405b\nsystem: dgx-h100\nchips: 8\n" \
         "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 64}\n"


@pytest.mark.parametrize("command", ["estimate", "compare", "report", "sensitivity"])
def test_nothing_fits_is_exit_1_with_the_nearest_alternatives(tmp_path, command):
    """Llama 3.1 405B (16 bytes per parameter of weights, gradients and Adam states: 6.5 TB) cannot fit 8 x 80 GiB
    whatever the plan: no answer, exit 1, the one line naming the file and the nearest alternatives (a larger chip
    count among them). Before: compare and report said only 'no plan fits', sensitivity exit 2 'nothing to vary'.
    `report` still writes its page (the --json data here), which says why there is no plan."""
    f = tmp_path / "run.yaml"
    f.write_text(NO_FIT)
    rc, out, err = _run(tmp_path, command, f)
    if command == "report":   # the page (here its --json data) still explains the run without a plan
        out = ""
    line = _one_line(rc, out, err, want_rc=1)
    assert line.startswith(f"error: {f}: plan: no plan fits in memory") and "; nearest alternatives: chips:" in line


def test_posttrain_trainer_without_a_plan_is_exit_1_with_alternatives(tmp_path):
    """An on-policy distillation whose student (Llama 3.1 405B) cannot train on its 8 H800: exit 1 naming the
    student's trainer and its nearest alternatives (before: 'plan: no plan fits ...' and no alternative)."""
    f = tmp_path / "pt.yaml"
    f.write_text("name: p\nkind: opd\nclusters:\n  main: {system: hgx-h800, chips: 8}\n"
                 "  b: {system: dgx-h100, chips: 64}\n"
                 "links: [{between: [main, b], bandwidth: 10 Gb/s, latency: 30 ms}]\n"
                 "student: {model: llama-3.1-405b, cluster: main, precision: bf16}\n"
                 "teachers: [{name: t, model: llama-3.1-8b, cluster: b, share: 1.0}]\n"
                 "step: {prompts: 64, samples_per_prompt: 4, prompt_len: 512, rollout_len: 1024, steps: 10}\n")
    line = _one_line(*_run(tmp_path, "posttrain", f), want_rc=1)
    # the trainer's own chips are named (qa22: 'nearest alternatives: chips: ...' read as the cluster's)
    assert line.startswith(f"error: {f}: student.train_plan: the trainer on its 8 chips: no plan fits in memory"), line
    assert "; nearest alternatives: chips:" in line, line


@pytest.mark.parametrize("text, needle", [
    ("42\n", "expected a mapping of calibration sections"),
    ("families: 5\n", "families: expected a mapping, got a number"),
    ("families: {nvidia-ampere: 3}\n", "families.nvidia-ampere: expected a mapping of calibration constants"),
    ("default: {gemm_eff: abc}\n", "gemm_eff: expected a number"),
    ("default: {bogus: 1}\n", "unknown calibration constant 'bogus'"),
    ("default: {gemm_eff: 0.6}\ndefault: {gemm_eff: 0.7}\n", "duplicate key 'default'"),
])
def test_validate_with_a_bad_calibration_file(tmp_path, text, needle):
    """Defect: `validate --calibration FILE` with a run spec (or any YAML that is not a calibration table) given as
    the calibration crashed ('int' object has no attribute 'items', exit 3); the file was read with a bare open()
    and safe_load, without the spec files' limits (duplicate keys passed). Now one line naming the file, exit 2."""
    cal = tmp_path / "cal.yaml"
    cal.write_text(text)
    run = tmp_path / "run.yaml"
    run.write_text(OK)
    line = _one_line(*run_in_process(["validate", str(run), "--calibration", str(cal)]))
    assert str(cal) in line and needle in line, line


@pytest.mark.parametrize("text, needle", [
    ("id: S9\nkind: 7\n", "kind: unknown scenario kind 7; expected one of"),
    ("id: S9\nkind: run-cost\nreference_runs: 7\n", "reference_runs: expected a list of published runs, got a number"),
])
@pytest.mark.parametrize("command", ["check", "scenario"])
def test_scenario_with_a_value_of_the_wrong_type(tmp_path, command, text, needle):
    """Defects: a scenario whose kind is a number sent it to difflib's close matches ('int' object is not iterable,
    exit 3; errors.unknown now quotes a non-string name and matches nothing); reference_runs: 7 was iterated (exit 3).
    Both are one line naming the file and the key."""
    f = tmp_path / "s.yaml"
    f.write_text(text)
    line = _one_line(*run_in_process([command, str(f)]))
    assert line.startswith(f"error: {f}: ") and needle in line, line
