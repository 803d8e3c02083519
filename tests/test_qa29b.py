"""QA pass 29b: small user-facing defects (each test fails on the code before its fix)."""
from __future__ import annotations

import pytest

from conftest import one_line, run_main, write_spec


# ---------------------------------------------------------------- 1. --pue has an upper bound


@pytest.mark.parametrize("value", ["100", "3.01"])
def test_a_pue_above_any_data_centre_is_bad_input(tmp_path, capsys, value):
    """`estimate --pue 100` was accepted (100x the facility energy). PUE = facility / IT energy >= 1; Uptime
    Institute's survey average is ~1.56 (2024), so anything above 3 is refused with one line naming the option."""
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path), "--pue", value)
    line = one_line(code, err, 2)
    assert line == f"error: --pue: expected a PUE between 1 and 3 (facility / IT energy), got {value}", line
    assert out == ""


def test_a_pue_of_three_is_still_accepted():
    """The bound is inclusive: 3 is an (old, inefficient) facility, not a typo."""
    from trainsim import api
    assert api.cost_inputs(pue=3.0) == {"pue": 3.0}
    assert api.cost_inputs(pue=1.0) == {"pue": 1.0}


# ---------------------------------------------------------------- 2. capacity: '1 day', not '1 days'


def test_capacity_says_one_day_not_one_days(capsys):
    """`capacity --days 1` printed '... tokens in 1 days: ...' in its answer and '... tokens in 1 days' in the
    latency row of its limits table."""
    code, out, err = run_main(capsys, "capacity", "--system", "dgx-h100", "--units", "1", "--days", "1",
                              "--family", "dense", "-q")
    flat = " ".join(out.split())
    assert code == 0, err
    assert "1 days" not in flat, flat
    assert "tokens in 1 day:" in flat


@pytest.mark.parametrize("days, text", [(1, "1 day"), (1.0, "1 day"), (0.5, "0.5 days"), (90.0, "90 days")])
def test_days_text(days, text):
    from trainsim.numfmt import days_text
    assert days_text(days) == text


# ---------------------------------------------------------------- 3. an invalid value in a plan list is refused

TP_RUN = ("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
          "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512}\nplan: {tp: %s}\n")


@pytest.mark.parametrize("tp, item", [("3", "3"), ("[8, 3]", "3"), ("[3, 8]", "3"), ("[5, 8, 6]", "5")])
def test_a_plan_list_holding_an_invalid_value_is_refused_as_the_value_alone(tmp_path, capsys, tp, item):
    """`plan: {tp: 3}` was refused (Llama 3.1 8B: 32 attention heads, 8 key/value heads; 3 divides neither) but
    `plan: {tp: [8, 3]}` silently searched tp 8 only. Now both are one line naming plan.tp and the value, exit 2."""
    code, out, err = run_main(capsys, "plan", write_spec(tmp_path, TP_RUN % tp), "-q")
    line = one_line(code, err, 2)
    assert "plan.tp: tp must divide the attention heads and the key/value heads" in line, line
    assert "32 attention heads, 8 key/value heads" in line and f"got {item}" in line, line


def test_a_plan_list_of_valid_values_is_still_searched(tmp_path, capsys):
    """tp 2 and 8 both divide 32 and 8 heads: the list is searched, not refused."""
    code, out, err = run_main(capsys, "plan", write_spec(tmp_path, TP_RUN % "[2, 8]"), "-q")
    assert code == 0, err


# ---------------------------------------------------------------- 4. training seq_len above the model's context

LONG_RUN = ("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
            "training: {tokens: 100B, seq_len: %d, global_batch_seqs: 64}\n")


@pytest.mark.parametrize("command", ["estimate", "plan"])
def test_a_training_seq_len_past_the_context_is_warned_not_refused(tmp_path, capsys, command):
    """seq_len 262,144 on Llama 3.1 8B (max_position_embeddings 131,072, its HF config.json) was priced without a
    word. Long-context extension trains past the base context on purpose, so: one warning line on stderr naming
    the field, the value and the context, and the answer still printed."""
    spec = write_spec(tmp_path, LONG_RUN % 262144)
    code, out, err = run_main(capsys, command, spec, "--json")
    warns = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warns) == 1, err
    assert warns[0].startswith(f"warning: {spec}: training.seq_len: 262,144 is more than llama-3.1-8b's context "
                               "of 131,072"), warns[0]
    assert out.strip().startswith("{")       # the answer is still printed (--json on stdout)


def test_a_training_seq_len_at_the_context_is_not_warned():
    from trainsim import api
    doc = {"model": "llama-3.1-8b", "system": "dgx-h100", "chips": 64,
           "training": {"tokens": "100B", "seq_len": 131072, "global_batch_seqs": 64}}
    assert api.run_warnings(api.as_run(doc)) == []
    doc["training"]["seq_len"] = 131072 * 2
    assert len(api.run_warnings(api.as_run(doc))) == 1
