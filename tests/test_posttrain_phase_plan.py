"""teach29: a post-training phase is a fixed job per step, so its serving plan is the one that finishes the step's
sequences first, not the one of most tokens/s per chip (issue 18 item 5).

The hand derivations take the engine's one-round time of a prefill (:func:`trainsim.inference.step.step_time`, the
per-step formula every plan is timed with) as their input and build the phase's time from it by hand: a sequence
is not split across instances, nor across an instance's data-parallel replicas, and a pipeline fills and drains
once per job.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fuzz.specs import run_in_process
from trainsim.catalog import get_system
from trainsim.inference.serve import setup_for
from trainsim.inference.step import ServePlans, step_time
from trainsim.model.load import resolve_model
from trainsim.posttrain.phases import prefill_job, scoring_time

SEQ_LEN = 1024 + 16384            # the two-cluster OPD example's prompt + response (phys28)
CHIPS = 256


@pytest.fixture(scope="module")
def teacher():
    arch, system = resolve_model("qwen3-30b-a3b"), get_system("hgx-h800")
    return arch, system, setup_for(arch, system, "bf16", "bf16")


def _plan(chips, tp, pp, ep=1):
    return ServePlans(np.array([float(chips)]), np.array([float(tp)]), np.array([float(pp)]), np.array([float(ep)]))


def _round_s(s, plan, prompts):
    """The engine's time for one prefill round of ``prompts`` sequences per instance (below one per micro-batch:
    chunks of each), log-probs of every token (a teacher's scoring pass)."""
    rnd, _ = step_time(s, plan, np.array([float(prompts)]), SEQ_LEN, "prefill", input_len=SEQ_LEN, all_logits=True)
    return float(rnd[0])


def test_eight_sequences_are_scored_on_the_plan_that_finishes_first(teacher):
    """8 sequences of 17,408 tokens on 256 H800 (QA's phys28 case). By hand from the engine's round times:

    * 1-chip instances (the plan of most tokens/s per chip, which scoring took): 8 of 256 busy, each scores one
      sequence alone: the phase is one round of one sequence on one chip, T1 (0.46 s);
    * 8-chip tp 8 instances: 8 of 32 busy, one sequence each: one round of one sequence on 8 chips, T8.

    T8 < T1 (tensor parallelism splits the one sequence's work over 8 chips; its all-reduces cost less than the
    7 chips of compute it adds), so the phase must take at most T8 -- the tokens/s-per-chip choice took T1."""
    arch, system, s = teacher
    t1 = _round_s(s, _plan(1, 1, 1), 1)
    t8 = _round_s(s, _plan(8, 8, 1), 1)
    assert t8 < t1 / 2
    sec, tps, plan, rate = scoring_time(arch, system, CHIPS, 8, SEQ_LEN)
    assert sec <= t8 * (1 + 1e-9)
    assert plan["chips"] > 1
    # the phase's own numbers agree with each other: at pp 1 (no fill), the busy chips at the reported rate score
    # the 8 x 17,408 tokens in the phase's time
    busy = CHIPS - rate["idle_chips"]
    assert plan["pp"] == 1
    assert sec == pytest.approx(8 * SEQ_LEN / (tps * busy), rel=1e-9)


def test_a_pipeline_fills_and_drains_once_per_job(teacher):
    """8 sequences on 256 chips as 8-chip tp 4 x pp 2 instances: each instance has pp x dp = 2 micro-batches to
    fill, so the 8 sequences go two to an instance, 4 instances busy (not 8 with one each, which would leave a
    stage's micro-batch empty). A round of b sequences (b <= 2: the grid's 1,024, 2,048 and 4,096 tokens per chip,
    b = 0.47, 0.94, 1.88 -- chunks of each sequence -- or the whole 2), cut by vLLM's 8,192-token step budget (the
    API server's on an 80 GiB GPU) into c = ceil(b / 2 x 17,408 / 8,192) steps of pp stage slots each (c = 1, 1, 2,
    3), is c x pp slots in steady state; the job runs 2 / b rounds and one fill and drain of pp - 1 = 1 slot, a
    1 / (pp x c) share of a round: T = min over b of round(b) x (2 / b + 1 / (2 c)). The whole-2 round (0.221 s)
    gives 0.221 x (1 + 1/6) = 0.258 s, the least; b = 0.47 gives 0.055 x (2 / 0.47 + 1/2) = 0.261 s. (The fill
    was half a round whatever c, 0.221 x 1.5 = 0.331 s for the whole 2: qa32b.)"""
    _, _, s = teacher
    p = _plan(8, 4, 2)
    bs = [tpc * 8 / SEQ_LEN for tpc in (1024, 2048, 4096)] + [2.0]
    steps = [math.ceil(b / 2 * SEQ_LEN / 8192 - 1e-9) for b in bs]
    assert steps == [1, 1, 2, 3]
    want = min(_round_s(s, p, b) * (2.0 / b + 1.0 / (2 * c)) for b, c in zip(bs, steps))
    sec, tps, busy = prefill_job(s, p, CHIPS, 8, SEQ_LEN, all_logits=True)
    assert float(busy[0]) == 4 * 8
    assert float(sec[0]) == pytest.approx(want, rel=1e-9)
    assert float(sec[0]) == pytest.approx(_round_s(s, p, 2.0) * (1 + 1 / 6), rel=1e-9)


def test_a_plan_with_more_replicas_than_sequences_is_not_a_candidate(teacher):
    """64-chip tp 4 instances have 16 data-parallel replicas; 8 sequences leave 8 of them without one (a replica
    schedules its own requests: the engine's even split of a round over its replicas would time 8 sequences as
    half a sequence each). Not a candidate: its time is infinite."""
    _, _, s = teacher
    sec, tps, busy = prefill_job(s, _plan(64, 4, 1, 64), CHIPS, 8, SEQ_LEN, all_logits=True)
    assert math.isinf(float(sec[0])) and math.isnan(float(tps[0]))


def test_many_sequences_keep_every_chip_busy(teacher):
    """4,096 sequences on 256 chips: 16 to a chip at 1-chip instances; the job is the tokens over all chips' rate
    (pp = 1, no fill): 4,096 x 17,408 / (tok/s/chip x 256), no chip idle -- the all-chips formula of phys28."""
    arch, system, _ = teacher
    sec, tps, plan, rate = scoring_time(arch, system, CHIPS, 4096, SEQ_LEN)
    assert rate["idle_chips"] == 0 and plan["pp"] == 1
    assert sec == pytest.approx(4096 * SEQ_LEN / (tps * CHIPS), rel=1e-9)


# ---------------------------------------------------------------- RL / OPD lengths against the model's context

OPD = Path(__file__).resolve().parents[1] / "examples" / "posttrain-opd-two-clusters.yaml"


def _one_line(rc, out, err, want_rc):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == want_rc and len(lines) == 1 and "Traceback" not in err, (rc, out[:200], err[-400:])
    return lines[0]


def _opd(tmp_path, prompt_len, rollout_len, tail=1.0):
    """The two-cluster OPD example (student and teachers Qwen3-30B-A3B: context 40,960 tokens, config.json
    max_position_embeddings) with one prompt and the given lengths."""
    text = (OPD.read_text().replace("prompts: 512", "prompts: 1")
            .replace("prompt_len: 1024", f"prompt_len: {prompt_len}")
            .replace("rollout_len: 16384", f"rollout_len: {rollout_len}\n  tail_factor: {tail}"))
    spec = tmp_path / "opd.yaml"
    spec.write_text(text)
    return spec


def test_a_mean_sample_longer_than_the_context_is_refused(tmp_path):
    """1,024 + 40,000 = 41,024 tokens on a 40,960-token student: vLLM stops every sample at max_model_len, so the
    stated mean cannot happen -- refused, one line naming the field and the room left, 40,960 - 1,024 = 39,936."""
    line = _one_line(*run_in_process(["posttrain", str(_opd(tmp_path, 1024, 40000))]), 2)
    assert "step.rollout_len" in line and "41,024" in line and "40,960" in line and "39,936" in line, line


def test_a_prompt_longer_than_the_context_is_refused(tmp_path):
    """A 50,000-token prompt on the 40,960-token student: vLLM refuses the prompt itself."""
    line = _one_line(*run_in_process(["posttrain", str(_opd(tmp_path, 50000, 100))]), 2)
    assert "step.prompt_len" in line and "50,000" in line and "40,960" in line, line


def test_a_longest_sample_past_the_context_is_priced_truncated(tmp_path):
    """Mean 16,384, tail 3: the longest would be 1,024 + 49,152 = 50,176 tokens, past the 40,960 context; vLLM
    stops it at 40,960, 39,936 generated, so the rollout is priced with tail factor 39,936 / 16,384 = 2.4375 and
    the output says so (--json ``warnings``)."""
    rc, out, err = run_in_process(["posttrain", str(_opd(tmp_path, 1024, 16384, 3.0)), "--json"])
    assert rc == 0, err[-400:]
    res = json.loads(out)
    assert len(res["warnings"]) == 1 and "50,176" in res["warnings"][0] and "39,936" in res["warnings"][0]
    tails = [p["detail"]["tail_factor"] for p in res["phases"] if p["stage"] == "rollout"]
    assert tails and tails == [pytest.approx(39936 / 16384, rel=1e-12)] * len(tails)
    rc, out, err = run_in_process(["posttrain", str(_opd(tmp_path, 1024, 16384, 2.0)), "--json"])
    assert rc == 0 and json.loads(out)["warnings"] == []        # 1,024 + 32,768 = 33,792 fits
