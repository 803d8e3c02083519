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
