"""qa22b: four defects the qa22 pass found and left. Each regression test failed before its fix (the defect named in
its docstring); expected values are hand derivations written here, never the engine's own output."""
from __future__ import annotations

import json

import pytest

from trainsim.inference.experts import idle_expert_ranks, local_experts
from trainsim.inference.setup import ServeSetup
from trainsim.inference.step import ServePlans, step_time
from trainsim.parallel.batch import chip_counts

from conftest import ideal_infer_calib, make_system, run_main, write_spec

# Llama 3.1 8B on 100 H100 (12 eight-GPU servers and 4 chips) with a batch of 1,000 sequences stated exactly
RUN_100 = """
name: t100
model: llama-3.1-8b
system: dgx-h100
chips: 100
training:
  tokens: 1.0e11
  seq_len: 4096
  global_batch_seqs: 1000
"""


# ---------------------------------------------------------------- 1. a reference plan that fits fewer chips


def test_chip_counts_try_the_whole_domain_multiples_a_stated_plan_divides():
    """tp 8 on 100 chips of 8-chip domains: the 2^j rule tries 100 and 96 (12 domains); 11 domains (88) and 10
    (80) are whole domains that tp 8 divides and use at least 75% of the chips, 72 does not."""
    assert chip_counts(100, 8) == [100, 96]
    assert chip_counts(100, 8, unit=8) == [100, 96, 88, 80]
    # a unit that is not a multiple of the domain: whole domains of 8 that 12 divides (lcm 24): 96 (and 72 < 75)
    assert chip_counts(100, 8, unit=12) == [100, 96]
    assert chip_counts(100, 8, use_all=True, unit=8) == [100]


def test_plan_against_completes_a_reference_that_fits_fewer_chips(tmp_path, capsys):
    """`plan --against tp=8,pp=1` on 100 chips exited 2 'no valid completion': 100 chips are not a multiple of 8,
    96 chips give dp 12, which does not divide 1,000 sequences, and the idle-chip rule never tried 80 chips
    (dp 10, 1,000 / 10 = 100 sequences per replica). The reference is now completed on 80 chips (the largest of
    96, 88, 80 whose dp = 12, 11, 10 divides 1,000) and the 20 idle chips are said."""
    spec = write_spec(tmp_path, RUN_100, "r100.yaml")
    code, out, err = run_main(capsys, "plan", spec, "--against", "tp=8,pp=1", "--json", "--top", "1")
    assert code == 0, err[-400:]
    ag = json.loads(out)["against"]
    assert ag["reference_plan"]["tp"] == 8 and ag["reference_plan"]["pp"] == 1
    used = ag["reference_plan"]["tp"] * ag["reference_plan"]["pp"] * ag["reference_plan"]["cp"] * \
        ag["reference_plan"]["dp"]
    assert used == ag["reference_chips_used"] == 80 and 1000 % ag["reference_plan"]["dp"] == 0
    assert ag["reference_idle_chips"] == 20 and "80 of the run's 100 chips (20 idle" in ag["reference_idle_note"]
    code, out, err = run_main(capsys, "plan", spec, "--against", "tp=8,pp=1", "--top", "1")
    assert code == 0 and "20 idle" in " ".join(out.split())


def test_a_whole_reference_plan_without_dp_takes_the_largest_count_that_splits_the_batch(tmp_path, capsys):
    """The same reference with every field stated but dp: dp was chips // (tp pp cp) = 100 // 8 = 12, refused
    (12 does not divide 1,000 sequences). dp 11 (88 chips) does not divide it either; dp 10 (80) does."""
    spec = write_spec(tmp_path, RUN_100, "r100.yaml")
    ref = "tp=8,pp=1,cp=1,ep=1,micro_batch=1,zero=1,recompute=none"
    code, out, err = run_main(capsys, "plan", spec, "--against", ref, "--json", "--top", "1")
    assert code == 0, err[-400:]
    ag = json.loads(out)["against"]
    assert ag["reference_plan"]["dp"] == 10 and ag["reference_idle_chips"] == 20


# ---------------------------------------------------------------- 2. estimate names the fields the profile filled


def test_estimate_names_the_plan_fields_the_profile_filled(tmp_path, capsys):
    """`estimate` of a run without a plan takes zero, recompute, micro-batch and schedule from the stack's profile
    (megatron-bridge-2026 for a run without a framework: framework_schedules.yaml defaults zero 1, recompute none,
    micro_batch 1, schedule 1f1b) before searching the rest, so its days can exceed `plan`'s; the terminal said
    nothing about it. Now one line names the fields and the profile, in the terminal and in --json."""
    spec = write_spec(tmp_path, RUN_100.replace("chips: 100", "chips: 8").replace("1000", "256"), "r8.yaml")
    code, out, err = run_main(capsys, "estimate", spec, "--json")
    assert code == 0, err[-400:]
    d = json.loads(out)
    note = d["profile_defaults"]["note"]
    for word in ("micro_batch=1", "zero=1", "recompute=none", "schedule=1f1b", "megatron-bridge-2026"):
        assert word in note
    code, out, err = run_main(capsys, "estimate", spec)
    flat = " ".join(out.replace("│", " ").split())
    assert code == 0 and "plan fields filled" in flat and "megatron-bridge-2026 profile's defaults" in flat


# ---------------------------------------------------------------- 3. one output token: no decode step


SERVE_1 = """
name: one-token
model: llama-3.1-8b
system: hgx-h800
chips: 1
serving:
  input_len: 2048
  output_len: 1
  precision: fp8
"""


def test_infer_with_one_output_token_has_no_decode_step(tmp_path, capsys):
    """output_len 1: the one output token is sampled from the prefill's last position (the time to first token),
    so there is no decode step, no decode batch and no time per output token; the output rate is then one token
    per request of input_len prompt tokens, prefill tokens/s per chip / 2,048 (it was 1 / (2,048 / prefill +
    1 / decode), with a decode batch of the share of chips left by prefill)."""
    spec = write_spec(tmp_path, SERVE_1, "s1.yaml")
    code, out, err = run_main(capsys, "infer", spec, "--json")
    assert code == 0, err[-400:]
    d = json.loads(out)
    assert "decode" not in d and d["aggregate"]["tpot_s"] is None
    assert d["aggregate"]["output_tokens_per_s_per_chip"] == pytest.approx(
        d["prefill"]["tokens_per_s_per_chip"] / 2048, rel=1e-12)
    code, out, err = run_main(capsys, "infer", spec)
    flat = " ".join(out.replace("│", " ").split())
    assert code == 0 and "decode batch per chip" not in flat and "time per output token - (output_len 1" in flat
    # two output tokens: one decode step per request, a TPOT again
    code, out, err = run_main(capsys, "infer", write_spec(tmp_path, SERVE_1.replace("output_len: 1", "output_len: 2"),
                                                          "s2.yaml"), "--json")
    assert code == 0 and json.loads(out)["decode"]["tpot_s"] > 0


# ---------------------------------------------------------------- 4. serving ep above the expert count


def test_serving_ep_above_the_experts_leaves_ranks_without_an_expert(small_moe, tmp_path, capsys):
    """16 routed experts on ep 32: vLLM's determine_expert_map gives ranks 0-15 one expert each
    (16 // 32 = 0 base, 16 % 32 = 16 remainder) and ranks 16-31 none; no copies without EPLB. The engine modelled 2
    copies of each expert, each serving half the tokens. With a compute-bound chip (1 TFLOP/s, HBM 1 PB/s) the
    busiest rank's expert GEMMs at ep 32 then equal those at ep 16 (one expert, T k / E tokens each), not half."""
    assert [float(x) for x in local_experts(32, 16)] == [1.0, 1.0]
    assert idle_expert_ranks(32, 16) == 16 and idle_expert_ranks(16, 16) == 0 and idle_expert_ranks(6, 16) == 0
    s = ServeSetup(small_moe, make_system(bf16=1e12, hbm_bw=1e15), calib=ideal_infer_calib())
    _, b16 = step_time(s, ServePlans(16, 1, 1, 16), 4096, 16, "decode")
    _, b32 = step_time(s, ServePlans(32, 1, 1, 32), 4096, 16, "decode")
    assert float(b32["experts"]) / float(b16["experts"]) == pytest.approx(1.0, rel=1e-6)
    # the answer says so: Mixtral 8x7B (8 experts) served at ep 16 leaves 8 ranks without an expert
    spec = write_spec(tmp_path, """
name: mixtral-ep16
model: mixtral-8x7b
system: dgx-h100
chips: 16
serving: {phase: decode, input_len: 1024, output_len: 256, batch: 64}
plan: {tp: 1, pp: 1, ep: 16}
""", "mx.yaml")
    code, out, err = run_main(capsys, "infer", spec, "--json")
    assert code == 0, err[-400:]
    d = json.loads(out)["decode"]
    assert d["idle_expert_ranks"] == 8 and "8 of the 16 expert-parallel ranks hold no expert" in d["expert_note"]
