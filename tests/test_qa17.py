"""Quality pass, round 6 (qa17): defects the s16 audit noticed and left, each test failing before its fix (see the
commit that adds it). Expected values come from the inputs, the catalog's sources or hand derivations, never from
the engine's own output."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_main, write_spec

# ---------------------------------------------------------------- 1. an RL step with fewer samples than servers

SMALL_RL = """
name: small-rl
kind: rl
clusters:
  main: {system: hgx-h800, chips: 64}
student:
  model: llama-3.1-8b
  cluster: main
  precision: bf16
  rollout_precision: bf16
step:
  prompts: 1
  samples_per_prompt: 4
  prompt_len: 128
  rollout_len: 1024
  steps: 1
  mode: sync
"""


def test_rl_step_with_fewer_samples_than_rollout_servers_runs_on_fewer_servers(tmp_path, capsys):
    """Llama 3.1 8B on 64 H800, 1 prompt x 4 samples: the decode search capped every server at its even share
    (4 / 64 sequences per chip), below the one sequence a server's replica needs, so every plan was refused ('no
    serving plan fits in 64 chips', exit 2) although 4 servers of the 64 chips can each generate one sample.
    Hand: 4 samples at one per server keep 4 servers busy; each decodes its sample alone, so generation takes
    rollout_len (tail factor 1) steps of the server's batch-1 step time, and the chips of the other servers are
    idle: 64 - 4 x chips per server."""
    spec = write_spec(tmp_path, SMALL_RL, "rl.yaml")
    code, out, err = run_main(capsys, "posttrain", spec, "--json")
    assert code == 0, err
    ro = next(p for p in json.loads(out)["phases"] if p["stage"] == "rollout")
    d = ro["detail"]
    c = d["plan"]["chips"]
    assert d["plan"]["pp"] * d["plan"]["dp"] == 1            # one sequence fills the server
    assert d["idle_chips"] == 64 - 4 * c
    assert d["decode_s"] == pytest.approx(1024 * d["tpot_s"], rel=1e-9)
    # tokens/s per chip counts the idle chips: 4 sequences' tokens over all 64 chips
    assert d["decode_tokens_per_s_per_chip"] == pytest.approx(4 / d["tpot_s"] / 64, rel=1e-9)
    code, out, err = run_main(capsys, "posttrain", spec)
    assert code == 0 and f"{64 - 4 * c} of 64 chips idle" in out, out


def test_idle_share_batch_hand_values_and_vectorised():
    """max(share, min(replicas, sequences)), element by element over arrays of plans: 4 samples on 64 chips with
    1-chip servers (share 1/16) run 1 each; a 16-chip server with pp x dp = 2 (share 1) runs 2; a server with
    8 replicas and only 4 samples stays below its replicas (the decode search refuses it); an even share above
    the replicas is unchanged."""
    from trainsim.inference.search import idle_share_batch
    share = np.array([1 / 16, 1.0, 4.0, 12.0])
    replicas = np.array([1.0, 2.0, 8.0, 4.0])
    got = idle_share_batch(share, replicas, 4)
    assert got.tolist() == [1.0, 2.0, 4.0, 12.0]
    assert [float(idle_share_batch(s, r, 4)) for s, r in zip(share, replicas)] == got.tolist()


def test_idle_rollout_chips_hand_values():
    """Chips with no sample: 4 samples on 64 chips, 8-chip servers at 1 each: 4 busy servers, 32 idle; 2,048
    samples over 8 one-chip servers at 256 each: none idle; 12 chips in 8-chip servers (fractional servers,
    timed as 1.5): no remainder counted idle."""
    from trainsim.posttrain.phases import idle_rollout_chips
    assert idle_rollout_chips(64, 8, 4, 1) == 32
    assert idle_rollout_chips(8, 1, 2048, 256) == 0
    assert idle_rollout_chips(12, 8, 100, 50) == 0


# ---------------------------------------------------------------- 2. a stated plan that does not fit: exit 1 everywhere

# Llama 3.1 8B (8.03B parameters, Meta's model card) with no ZeRO on 8 H100: BF16 weights (2 B), FP32 gradients
# (4 B), FP32 master weights and Adam moments (12 B) are 18 B x 8.03e9 = 134.6 GiB per chip before any
# activation, against 80 GiB of HBM: the stated plan cannot fit whatever the activations.
NOFIT = """
name: nofit
model: llama-3.1-8b
system: dgx-h100
chips: 8
training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 64, precision: bf16}
plan: {tp: 1, pp: 1, cp: 1, ep: 1, micro_batch: 1, zero: 0, recompute: none}
"""


def _one_error_line(err: str, spec) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {spec}: plan: the stated plan (tp=1 pp=1"), err
    assert "does not fit" in lines[0] and "of 80.0 GiB HBM per chip; nearest alternatives: " in lines[0], err
    return lines[0]


def test_estimate_of_a_stated_plan_that_does_not_fit_says_so_on_stderr(tmp_path, capsys):
    """`estimate --json` of a plan that does not fit exited 1 with nothing on stderr (the fixes only inside the
    JSON); now the same one line `compare` and `report` give, naming the nearest alternatives."""
    spec = write_spec(tmp_path, NOFIT)
    code, out, err = run_main(capsys, "estimate", spec, "--json")
    assert code == 1 and json.loads(out)["fits"] is False
    _one_error_line(err, spec)


def test_compare_of_a_stated_plan_that_does_not_fit_exits_1(tmp_path, capsys):
    """`compare` printed the side-by-side table with 'fits: no' and exited 0 while `estimate` of the same spec
    exits 1 (README: 'a stated plan does not fit' is no answer). Now: the table (or --json / --csv) as before,
    one stderr line per run that does not fit, exit 1; two runs that fit still exit 0."""
    bad = write_spec(tmp_path, NOFIT, "bad.yaml")
    good = write_spec(tmp_path, NOFIT.replace("zero: 0, recompute: none", "zero: 1, recompute: full"), "good.yaml")
    for fmt in ((), ("--json",), ("--csv",)):
        code, out, err = run_main(capsys, "compare", good, bad, *fmt)
        assert code == 1, (fmt, err)
        assert out.strip()                      # the comparison is still printed
        _one_error_line(err, bad)
    code, out, err = run_main(capsys, "compare", good, good)
    assert code == 0 and err == "", err


def test_report_of_a_stated_plan_that_does_not_fit_writes_the_page_and_exits_1(tmp_path, capsys):
    """`report` wrote its page and exited 0 for a plan that does not fit. Now the page is still written with its
    memory chart (issue 13: the chart is drawn even when nothing fits), stderr says the plan does not fit, exit 1
    (with --json too)."""
    spec = write_spec(tmp_path, NOFIT)
    html = tmp_path / "r.html"
    code, out, err = run_main(capsys, "report", spec, "-o", html, "--no-sweeps", "--quiet")
    assert code == 1
    _one_error_line(err, spec)
    text = html.read_text()
    assert "stacked bar of memory per chip against HBM capacity" in text and "does not fit" in text
    code, out, err = run_main(capsys, "report", spec, "--json", "--no-sweeps")
    assert code == 1 and json.loads(out)["estimate"]["fits"] is False
    _one_error_line(err, spec)


# ---------------------------------------------------------------- 3. sensitivity rows with no plan say why

# Llama 3.1 70B (70.6B parameters, Meta's model card) on 32 H100: at x0.25 HBM (80 -> 20 GiB) even ZeRO-3 over all
# 32 chips leaves 16 B x 70.6e9 / 32 = 32.9 GiB of weights, gradients and Adam states per chip: nothing fits.
SENS = """
name: sens
model: llama-3.1-70b
system: dgx-h100
chips: 32
training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 64, precision: bf16}
"""


def test_sensitivity_rows_without_a_plan_name_the_reason(tmp_path, capsys):
    """`sensitivity --vary hbm_capacity` printed 'no fit' and gave rows of nulls in --json / --csv with nothing
    saying why. Now each such row has a `note` (the search's reason: no plan fits in memory, the smallest need vs
    the scaled 20 GiB), printed under the table too; rows with a plan have none."""
    spec = write_spec(tmp_path, SENS)
    args = ("sensitivity", spec, "--vary", "hbm_capacity", "--factors", "0.25,2", "-q")
    code, out, err = run_main(capsys, *args, "--json")
    assert code == 0, err
    rows = json.loads(out)["params"]["hbm_capacity"]["rows"]
    lo, hi = rows
    assert lo["factor"] == 0.25 and lo["days"] is None and lo["plan"] is None
    assert lo["note"].startswith("no plan fits in memory") and "vs 20.0 GiB HBM" in lo["note"]
    assert hi["days"] is not None and hi["note"] is None
    code, out, err = run_main(capsys, *args, "--csv")
    assert code == 0
    import csv
    import io
    csv_rows = list(csv.DictReader(io.StringIO(out)))
    assert csv_rows[0]["note"] == lo["note"] and csv_rows[1]["note"] == ""
    code, out, err = run_main(capsys, *args)
    assert code == 0 and "no fit" in out
    assert "hbm_capacity x0.25: no plan fits in memory" in " ".join(out.split())
