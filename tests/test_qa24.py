"""qa24: defects a sceptical user hits. Each regression test failed before its fix (the defect named in its
docstring); expected values are hand derivations written here, never the engine's own output."""
from __future__ import annotations

import json

from conftest import run_main, write_spec

LLAMA8_64 = ("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
             "training: {tokens: 1T, seq_len: 8192, global_batch_seqs: 512}\n")


def _one_line(code: int, err: str, want: int) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == want and len(lines) == 1, (code, err[-600:])
    return lines[0]


# ---------------------------------------------------------------- 1. size: the fastest count when none finishes

def test_size_fastest_count_is_the_valley_of_the_whole_range(tmp_path, capsys):
    """A deadline below any count's days made the first guess (chip-days / deadline) the cap, so only the run's
    own 8 servers and counts near the 125,000-server cap were probed, and `size` answered "fastest: 1.2 days on
    61,440 (491,520 chips, goodput 20%)" -- while the same run with a 0.5-day deadline finds 672 servers that finish
    in 0.5 days. The fastest count reported must be no slower than any count `size` itself finds for an easier
    deadline; the message names the unit ("4,352 systems"), as the answer does."""
    spec = write_spec(tmp_path, LLAMA8_64, "a.yaml")
    code, out, err = run_main(capsys, "size", spec, "--days", "0.5", "--json")
    assert code == 0, err[-400:]
    met = json.loads(out)
    assert met["feasible"] and met["effective_days"] <= 0.5
    code, out, err = run_main(capsys, "size", spec, "--days", "1e-9", "--json")
    assert code == 1, err[-400:]
    none = json.loads(out)
    assert not none["feasible"]
    fastest = min(p["effective_days"] for p in none["probes"] if p["effective_days"] is not None)
    assert fastest <= 0.5, none["message"]
    head = none["message"].split("fastest:")[1]
    assert " systems (" in head, none["message"]


# ---------------------------------------------------------------- 2. a ZeRO sharding group dp x cp cannot hold

def test_a_sharding_group_that_does_not_divide_dp_is_not_silently_shrunk(tmp_path, capsys):
    """training.zero_shard_group 5 on tp 2 x dp 32 was taken as gcd(32, 5) = 1 (perf/context.py
    shard_group_ranks): the optimizer states not sharded at all, 12 B x 4.015e9 parameters = 44.9 GiB of them per
    chip, priced without a word. DeepSpeed's MiCS asserts the group divides the data-parallel ranks
    (mics_utils._generate_mics_config). Now no plan (exit 1) whose dp x cp the group does not divide; a group of 8
    (dp 32 = 4 groups of 8) is kept and shards the optimizer 8 ways: 4.015e9 x 12 / 8 B = 5.6 GiB."""
    body = LLAMA8_64.replace("global_batch_seqs: 512", "global_batch_seqs: 512, zero_shard_group: 5") + \
        "framework: megatron-core-2024\nplan: {tp: 2, pp: 1, dp: 32, cp: 1, zero: 1, micro_batch: 1}\n"
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path, body, "z5.yaml"))
    assert code == 1, (code, out[-300:])
    assert "zero_shard_group" in err, err[-600:]
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path, body.replace("group: 5", "group: 8"),
                                                             "z8.yaml"), "--json")
    assert code == 0, err[-400:]
    opt_gib = json.loads(out)["memory_breakdown_bytes"]["optimizer"] / 2**30
    assert abs(opt_gib - 4.015e9 * 12 / 8 / 2**30) < 0.1, opt_gib
