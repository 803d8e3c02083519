"""QA pass 30a: user-facing defects found using the CLI as a compute-policy analyst would (each test fails on the
code before its fix)."""
from __future__ import annotations

import pytest

from conftest import SMALL_RUN, run_main, write_spec


# ---------------------------------------------------------------- 1. seq_len above the context: every command says it

#: Llama 3.1 8B (max_position_embeddings 131,072 in its HF config.json) trained at twice its context
LONG_RUN = ("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
            "training: {tokens: 100B, seq_len: 262144, global_batch_seqs: 64}\n")
LONG_WARNING = "training.seq_len: 262,144 is more than llama-3.1-8b's context of 131,072"


def _warnings(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("warning:")]


@pytest.mark.parametrize("command, extra", [("report", ["--json", "--no-sweeps", "-q"]),
                                            ("size", ["--days", "30", "--json"])])
def test_report_and_size_warn_of_a_seq_len_past_the_context(tmp_path, capsys, command, extra):
    """`estimate` and `plan` warned of seq_len 262,144 on Llama 3.1 8B (context 131,072); `report` and `size` of
    the same file priced it without a word. Now the one warning line, naming the file, on every command."""
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
