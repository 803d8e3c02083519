"""qa25: defects a sceptical user hits. Each regression test failed before its fix (the defect named in its
docstring); expected values are hand derivations written here, never the engine's own output."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import run_main, write_spec

ROOT = Path(__file__).resolve().parents[1]
BBGPT = ROOT / "validation" / "runs" / "bloomberggpt-50b-512.yaml"


def _one_line(code: int, err: str, want: int) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == want and len(lines) == 1, (code, err[-600:])
    return lines[0]


# ---------------------------------------------------------------- 1. model RUN.yaml: the run's own seq_len

def test_model_of_a_run_spec_counts_attention_at_the_runs_seq_len(tmp_path, capsys):
    """`trainsim model RUN.yaml` read the run's model but counted FLOPs at the command's default 4,096 tokens, not
    the run's training.seq_len (128K here): attention 3.22e9 FLOPs/token instead of 1.03e11. Hand derivation,
    Llama 3.1 8B (32 layers, 32 heads x 128 = 4,096): causal attention averages (s + 1) / 2 keys per query, QK^T
    and AV are 2 x 2 x 4,096 FLOPs per key forward, x 3 with the backward: 6 x 32 x 4,096 x (131,072 + 1) =
    1.0308e11. --seq-len still overrides the spec's value."""
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                                "training: {tokens: 1T, seq_len: 128K, global_batch_seqs: 64}\n", "r.yaml")
    code, out, err = run_main(capsys, "model", spec, "--json")
    assert code == 0, err[-400:]
    d = json.loads(out)
    assert d["seq_len"] == 131072
    assert abs(d["flops_per_token"]["attention"] / (6 * 32 * 4096 * 131073) - 1) < 1e-9
    code, out, err = run_main(capsys, "model", spec, "--seq-len", "8K", "--json")
    assert code == 0 and json.loads(out)["seq_len"] == 8192, err[-400:]
    code, out, err = run_main(capsys, "model", "llama-3.1-8b", "--json")   # a catalog id: 4,096 as before
    assert code == 0 and json.loads(out)["seq_len"] == 4096, err[-400:]


# ---------------------------------------------------------------- 2. plan --fix zero=0 beside a sharding group

def test_plan_fix_zero_0_beside_a_sharding_group_is_refused_as_estimate_refuses_it(tmp_path, capsys):
    """BloombergGPT states training.zero_shard_group 128 (MiCS, paper sec. 3.4); `estimate` of its spec with
    plan.zero 0 is refused (spec.check_shard_group), but `plan --fix zero=0` searched 6 plans under rule 22 (dp x cp
    a multiple of 128, for an optimizer that shards nothing) and printed "no plan fits" with exit 1 -- the group
    neither refused nor ignored. Now --fix and --against refuse it the way the spec does: one line, exit 2."""
    code, out, err = run_main(capsys, "plan", BBGPT, "--fix", "zero=0")
    line = _one_line(code, err, 2)
    assert "training.zero_shard_group" in line and "--fix says zero 0" in line, line
    code, out, err = run_main(capsys, "plan", BBGPT, "--against", "zero=0")
    line = _one_line(code, err, 2)
    assert "--against says zero 0" in line, line
    body = BBGPT.read_text().replace("  zero: 3\n", "  zero: 0\n")
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path, body, "bb0.yaml"))
    assert "zero_shard_group" in _one_line(code, err, 2)
