"""phys28: three physics defects QA found (issues 18 / sanity), each checked against a hand derivation.

1. Teacher scoring spread a few sequences over every teacher chip (a sequence cannot be split across instances).
2. Speculative decoding with more than one draft token credited ``1 + d x a`` tokens per step instead of the
   expected accepted prefix plus the verified token, ``1 + a + ... + a^d`` (Leviathan et al. 2023, eq. 1).
3. A serving request longer than the model's context was priced instead of refused.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fuzz.specs import run_in_process
from trainsim.catalog import get_system
from trainsim.inference.search import evaluate_decode
from trainsim.inference.serve import setup_for
from trainsim.inference.setup import speculative_tokens_per_step
from trainsim.inference.spec import MTPSpec
from trainsim.inference.step import ServePlans
from trainsim.model.load import resolve_model
from trainsim.posttrain.phases import scoring_time

ROOT = Path(__file__).resolve().parents[1]
OPD = ROOT / "examples" / "posttrain-opd-two-clusters.yaml"


def _one_line(rc, out, err, want_rc):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == want_rc and len(lines) == 1 and "Traceback" not in err, (rc, out[:200], err[-400:])
    return lines[0]


# ---------------------------------------------------------------- 1. teacher scoring: one sequence per instance

def test_few_sequences_are_scored_one_per_instance_the_other_chips_idle(tmp_path):
    """QA's repro: the two-cluster OPD example with 1 prompt x 16 samples, half to the 'math' teacher on 256 H800:
    8 sequences of 1,024 + 16,384 = 17,408 tokens. Scoring was timed as 8 x 17,408 tokens over all 256 chips
    (14.5 ms); a sequence is one instance's prefill, so at most 8 instances work and the phase takes one
    sequence's prefill, 17,408 / (tok/s/chip x chips per instance) (0.46 s on one chip at 37,557 tok/s), with
    256 - 8 x chips per instance idle."""
    spec = tmp_path / "opd.yaml"
    spec.write_text(OPD.read_text().replace("prompts: 512", "prompts: 1"))
    rc, out, err = run_in_process(["posttrain", str(spec), "--json"])
    assert rc == 0, err[-400:]
    ph = next(p for p in json.loads(out)["phases"] if p["stage"] == "scoring" and p["cluster"] == "math")
    d = ph["detail"]
    c = d["plan"]["chips"]
    seq_len = 1024 + 16384
    one_sequence_s = seq_len / (d["prefill_tokens_per_s_per_chip"] * c)
    assert ph["seconds"] == pytest.approx(one_sequence_s, rel=1e-9)
    assert d["idle_chips"] == 256 - 8 * c
    # the old answer, every chip sharing the 8 sequences, is 256 / (8 c) times shorter
    assert ph["seconds"] > 8 * seq_len / (d["prefill_tokens_per_s_per_chip"] * 256) * 1.5


def test_scoring_keeps_every_instance_busy_when_sequences_outnumber_them():
    """4,096 sequences on 256 chips (more sequences than instances): every chip works, the time is the tokens over
    all chips' rate, and no chip is idle; 3 sequences: 3 instances, each one sequence."""
    arch, system = resolve_model("qwen3-30b-a3b"), get_system("hgx-h800")
    s, tps, plan, rate = scoring_time(arch, system, 256, 4096, 17408)
    assert s == pytest.approx(4096 * 17408 / (tps * 256), rel=1e-9) and rate["idle_chips"] == 0
    s3, tps3, plan3, rate3 = scoring_time(arch, system, 256, 3, 17408)
    assert s3 == pytest.approx(17408 / (tps3 * plan3["chips"]), rel=1e-9)
    assert rate3["idle_chips"] == 256 - 3 * plan3["chips"]


# ---------------------------------------------------------------- 2. speculative decoding's yield

@pytest.mark.parametrize("draft, acc, want", [
    (3, 0.8, 1 + 0.8 + 0.64 + 0.512),        # 2.952 (1 + 3 x 0.8 = 3.4 before)
    (1, 0.85, 1.85),                          # DeepSeek-V3 MTP, d = 1: 1 + a either way
    (2, 0.5, 1.75),                           # 1 + 1/2 + 1/4
    (4, 1.0, 5.0),                            # every draft accepted: d + 1
    (0, 0.7, 1.0),                            # no drafts: the verified token only
])
def test_speculative_tokens_per_step_is_the_accepted_prefix_plus_one(draft, acc, want):
    """Leviathan, Kalman & Matias 2023 eq. (1): E[tokens per step] = (1 - a^(d+1)) / (1 - a)."""
    assert speculative_tokens_per_step(draft, acc) == pytest.approx(want, rel=1e-12)


def test_decode_time_per_token_divides_the_step_by_the_expected_yield():
    """DeepSeek-V3 (it has an MTP module) on 8 H200, 3 drafts: the verification step costs the same
    whatever is accepted, so TPOT at a = 0 (1 token per step) over TPOT at a = 0.8 is the yield,
    1 + 0.8 + 0.64 + 0.512 = 2.952 (it was 1 + 3 x 0.8 = 3.4)."""
    arch = resolve_model("deepseek-v3")
    p = ServePlans(np.array([8]), np.array([8]), np.array([1]), np.array([8]))
    sysm = get_system("hgx-h200")
    ev = [evaluate_decode(setup_for(arch, sysm, "fp8", mtp=MTPSpec(draft_tokens=3, acceptance=a)), p, 4096,
                          batch_per_chip=16.0) for a in (0.0, 0.8)]
    assert float(ev[0].latency_s[0] / ev[1].latency_s[0]) == pytest.approx(2.952, rel=1e-9)


def test_a_yield_within_the_output_is_answered(tmp_path):
    """3 drafts at 0.8 on requests of 3 output tokens: 2.952 tokens per step fit the 3 (1 + 3 x 0.8 = 3.4 was
    refused as more than the output); at 0.9, 1 + 0.9 + 0.81 + 0.729 = 3.439 is refused, naming serving.mtp."""
    spec = tmp_path / "s.yaml"
    base = "name: t\nmodel: llama-3.1-8b\nsystem: dgx-h100\nserving: {{input_len: 100, output_len: 3, mtp: {mtp}}}\n"
    spec.write_text(base.format(mtp="{draft_tokens: 3, acceptance: 0.8}"))
    rc, out, err = run_in_process(["infer", str(spec)])
    assert rc == 0, err[-400:]
    spec.write_text(base.format(mtp="{draft_tokens: 3, acceptance: 0.9}"))
    line = _one_line(*run_in_process(["infer", str(spec)]), 2)
    assert "3.439 tokens per decode step" in line and "output_len 3" in line, line


# ---------------------------------------------------------------- 3. a request longer than the model's context

LONG = "name: t\nmodel: {model}\nsystem: dgx-h100\nserving: {{{serving}}}\n"


def test_a_prompt_longer_than_the_context_is_refused(tmp_path):
    """Llama 3.1 8B's context is 131,072 tokens (config.json max_position_embeddings; Meta: 128K). A 200,000-token
    prompt was priced as one prefill round (exit 0); refused: one line naming the file, the field, the value and
    the limit, exit 2."""
    spec = tmp_path / "long.yaml"
    spec.write_text(LONG.format(model="llama-3.1-8b", serving="input_len: 200000, output_len: 1"))
    line = _one_line(*run_in_process(["infer", str(spec)]), 2)
    assert "long.yaml" in line and "serving.input_len" in line and "200,000" in line and "131,072" in line, line


def test_the_output_counts_toward_the_context(tmp_path):
    """130,000 prompt tokens + 2,000 output = 132,000 > 131,072: refused naming serving.output_len. A prompt of
    exactly the context still gets its one token from the prefill (vLLM v1 check_stop ends a request at num_tokens
    >= max_model_len after sampling): 131,072 + 1 answered, 131,072 + 2 refused."""
    spec = tmp_path / "s.yaml"
    spec.write_text(LONG.format(model="llama-3.1-8b", serving="input_len: 130000, output_len: 2000"))
    line = _one_line(*run_in_process(["infer", str(spec)]), 2)
    assert "serving.output_len" in line and "132,000" in line and "131,072" in line, line
    spec.write_text(LONG.format(model="llama-3.1-8b", serving="input_len: 131072, output_len: 2"))
    line = _one_line(*run_in_process(["infer", str(spec)]), 2)
    assert "serving.output_len" in line and "131,074" in line, line
    spec.write_text(LONG.format(model="llama-3.1-8b", serving="input_len: 131072, output_len: 1"))
    rc, out, err = run_in_process(["infer", str(spec)])
    assert rc == 0, err[-400:]


def test_the_high_end_of_an_uncertain_length_counts_toward_the_context(tmp_path):
    """The validation table prices each end of an uncertain range as a stated input (inference/validate.py
    predicted_range), so an end past the context is refused at load as a stated one is: input_len 1,000 with
    uncertain [500, 140,000] + output_len 100 puts 140,100 tokens against Llama 3.1 8B's 131,072 (was exit 0);
    an output range [50, 131,000] after 1,000 prompt tokens is 132,000; [50, 130,000] is 131,000 and answered."""
    spec = tmp_path / "u.yaml"
    base = LONG.format(model="llama-3.1-8b", serving="input_len: 1000, output_len: 100")
    spec.write_text(base + "uncertain: {input_len: [500, 140000]}\n")
    line = _one_line(*run_in_process(["infer", str(spec)]), 2)
    assert "uncertain.input_len" in line and "140,100" in line and "131,072" in line, line
    spec.write_text(base + "uncertain: {output_len: [50, 131000]}\n")
    line = _one_line(*run_in_process(["infer", str(spec)]), 2)
    assert "uncertain.output_len" in line and "132,000" in line, line
    spec.write_text(base + "uncertain: {output_len: [50, 130000]}\n")
    rc, out, err = run_in_process(["infer", str(spec)])
    assert rc == 0, err[-400:]


def test_catalog_contexts_come_from_the_configs():
    """max_position_embeddings of the published config.json files: Llama 3.1 131,072; Qwen3-30B-A3B 40,960;
    DeepSeek-V3 163,840."""
    assert resolve_model("llama-3.1-8b").max_context == 131072
    assert resolve_model("qwen3-30b-a3b").max_context == 40960
    assert resolve_model("deepseek-v3").max_context == 163840
