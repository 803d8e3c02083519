"""qa23: defects a sceptical user hits. Each regression test failed before its fix (the defect named in its
docstring); expected values are hand derivations written here, never the engine's own output."""
from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import one_line, run_main, write_spec
from test_qa22b import SERVE_1  # one-token serving spec (Llama 3.1 8B, 1 H800, 2,048 in, 1 out, FP8)

# ---------------------------------------------------------------- 1. one output token: no decode step to price


@pytest.mark.parametrize("extra, field", [
    ("latency: {tpot_ms: 50}\n", "latency.tpot_ms"),
    ("latency: {tpot_ms: 50, tpot_stat: p99}\n", "latency.tpot_"),
    ("", None),       # placeholder replaced below: a decode batch
])
def test_a_tpot_bound_on_one_token_outputs_is_refused(tmp_path, capsys, extra, field):
    """phase both (the default) with output_len 1: the one output token is the prefill's (qa22b), so no decode step
    runs and a stated TPOT bound bounds nothing; it was dropped without a word (exit 0, the same answer as without
    it). Now one line naming the field, exit 2. Likewise a decode batch (serving.batch)."""
    text = SERVE_1 + extra if field else SERVE_1.replace("  precision: fp8", "  precision: fp8\n  batch: 64")
    field = field or "serving.batch"
    code, out, err = run_main(capsys, "infer", write_spec(tmp_path, text, "s.yaml"))
    line = one_line(code, err, 2)
    assert f"{field}" in line and "output_len 1" in line and "prefill" in line, line


def test_a_tpot_bound_with_an_output_range_past_one_token_is_kept(tmp_path, capsys):
    """An uncertain output_len range [1, 4] around the stated 1: its upper end has three decode steps per request,
    so the TPOT bound is read there and the spec is answered."""
    text = SERVE_1 + "latency: {tpot_ms: 50}\nuncertain: {output_len: [1, 4]}\n"
    code, out, err = run_main(capsys, "infer", write_spec(tmp_path, text, "s.yaml"), "--json")
    assert code == 0, err[-400:]
    assert json.loads(out)["aggregate"]["tpot_s"] is None      # the stated point itself has no decode step


@pytest.mark.parametrize("output", ["  output_len: 1\n", ""])
def test_a_decode_deployment_of_one_token_outputs_is_refused(tmp_path, capsys, output):
    """phase decode with output_len 1 (stated, or the default when left out) was priced as a decode step at
    context input_len + 1/2 although a one-token request never reaches the decode servers. Now one line naming
    serving.output_len, exit 2; output_len 2 (one decode step per request) is answered."""
    body = ("name: d\nmodel: llama-3.1-8b\nsystem: hgx-h800\nchips: 1\n"
            f"serving:\n  phase: decode\n  input_len: 2048\n{output}  precision: fp8\n")
    code, out, err = run_main(capsys, "infer", write_spec(tmp_path, body, "d.yaml"))
    line = one_line(code, err, 2)
    assert "serving.output_len:" in line and "no decode step" in line, line
    assert ("(the default)" in line) == (output == ""), line
    code, out, err = run_main(capsys, "infer", write_spec(tmp_path, body.replace("input_len: 2048\n",
                                                                                 "input_len: 2048\n  output_len: 2\n")
                                                          .replace("  output_len: 1\n", ""), "d2.yaml"), "--json")
    assert code == 0 and json.loads(out)["decode"]["tpot_s"] > 0, err[-400:]


def test_a_scenario_decode_row_of_one_token_outputs_is_refused(tmp_path, capsys):
    """S8's inference rows force phase decode on {input_len, output_len, ...}: output_len 1 priced a decode step
    no request takes. Now refused at the scenario's inference key, exit 2."""
    from pathlib import Path
    s8 = (Path(__file__).resolve().parents[1] / "scenarios" / "S8.yaml").read_text()
    assert "output_len: 1024" in s8
    p = tmp_path / "S8.yaml"
    p.write_text(s8.replace("output_len: 1024", "output_len: 1"))
    for sib in (Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml"):
        if sib.name != "S8.yaml":
            (tmp_path / sib.name).write_text(sib.read_text())
    code, out, err = run_main(capsys, "scenario", str(p))
    line = one_line(code, err, 2)
    assert "output_len" in line and "no decode step" in line, line


# ---------------------------------------------------------------- 2. one name, one bias


def test_the_router_bias_and_the_alibi_bias_have_different_names():
    """``score_bias`` named both the ALiBi bias added to attention scores (AttentionCore.score_bias) and the MoE
    router's e_score_correction_bias (MoESpec.score_bias): a reader of one took it for the other. The router's is
    now MoESpec.score_correction_bias (the name Hugging Face's DeepSeek-V3 code gives it: e_score_correction_bias)."""
    from trainsim.model.arch import AttentionCore
    from trainsim.model.families.spec import MoESpec

    moe_fields = {f.name for f in dataclasses.fields(MoESpec)}
    assert "score_bias" not in moe_fields and "score_correction_bias" in moe_fields
    assert "score_bias" in {f.name for f in dataclasses.fields(AttentionCore)}


# ---------------------------------------------------------------- 3. context parallelism on the unfused core

CP_RUN = """
name: cpu
model: {layers: 4, hidden: 1024, heads: 16, ffn: 4096, vocab: 32000}
system: dgx-h100
chips: 16
training: {tokens: 1B, seq_len: 32K, global_batch_seqs: 64, attention: unfused}
"""


def test_cp_on_unfused_attention_is_refused(tmp_path, capsys):
    """No stack runs context parallelism on the unfused attention core: Megatron-Core's DotProductAttention asserts
    'Context parallelism is only supported by TEDotProductAttention!' (megatron/core/transformer/
    dot_product_attention.py), and ring attention merges partial softmax results, which only the online-softmax
    (flash) kernels produce. `plan: {cp: 4}` with attention unfused was priced (a step at 9% MFU); now one line
    naming plan.cp, exit 2; likewise --fix / --against cp=4."""
    spec = write_spec(tmp_path, CP_RUN + "plan: {cp: 4}\n", "cp4.yaml")
    code, out, err = run_main(capsys, "estimate", spec)
    line = one_line(code, err, 2)
    assert "plan.cp:" in line and "unfused" in line and "TEDotProductAttention" in line, line
    free = write_spec(tmp_path, CP_RUN, "free.yaml")
    for opt in ("--fix", "--against"):
        code, out, err = run_main(capsys, "plan", free, opt, "cp=4")
        line = one_line(code, err, 2)
        assert f"{opt}: cp:" in line and "unfused" in line, line
    # flash attention keeps cp 4
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path, (CP_RUN + "plan: {cp: 4}\n").replace(
        "attention: unfused", "attention: flash"), "cp4f.yaml"), "--json")
    assert code == 0 and json.loads(out)["plan"]["cp"] == 4, err[-400:]


def test_the_search_offers_no_cp_on_unfused_attention(tmp_path, capsys):
    """The search on an unfused-attention run tried cp 2, 4, 8 and 16 (every divisor of 16 chips that 2 x cp divides
    32,768 into); now only cp 1, with the refused plans counted under the cp rule."""
    from trainsim.parallel.plan import Plans
    from trainsim.parallel.validity import check
    from trainsim.model.load import resolve_model

    arch = resolve_model("llama-3.1-8b")
    p = Plans.from_columns(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=[1, 2, 4], dp=[16, 8, 4], mb=1, zero=1, recompute=0,
                           schedule=0, node_limit=0)
    assert list(check(p, arch, 16, 32768, 64)) == [0, 0, 0]
    codes = check(p, arch, 16, 32768, 64, unfused_attention=True)
    assert codes[0] == 0 and codes[1] == codes[2] != 0
    code, out, err = run_main(capsys, "plan", write_spec(tmp_path, CP_RUN, "free.yaml"), "--json", "--top", "3")
    assert code == 0, err[-400:]
    d = json.loads(out)
    assert d["best"]["plan"]["cp"] == 1 and all(r["plan"]["cp"] == 1 for r in d["runners_up"])
    assert any(k.startswith("cp: context parallelism needs a fused attention kernel") for k in d["rejected"])


# ---------------------------------------------------------------- 4. the tp rule says what it checks


def test_the_tp_rule_names_what_it_checks(tmp_path, capsys):
    """Rule 13 said 'tp must divide the vocabulary size and the hidden size' but checks the hidden size only (the
    vocabulary need not divide: Megatron pads it to a multiple of make_vocab_size_divisible_by x tp,
    megatron/training/tokenizer _vocab_size_with_padding), so tp 8 on a 4,100-wide model was refused naming the
    vocabulary. GPT-2's 50,257-token vocabulary at tp 8 is accepted."""
    body = ("name: h\nmodel: {layers: 8, hidden: HID, heads: 32, head_dim: 128, ffn: 16384, vocab: VOC}\n"
            "system: dgx-h100\nchips: 8\ntraining: {tokens: 1B, seq_len: 2K, global_batch_seqs: 64}\nplan: {tp: 8}\n")
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path, body.replace("HID", "4100")
                                                              .replace("VOC", "50304"), "h.yaml"))
    line = one_line(code, err, 2)
    assert "plan.tp:" in line and "hidden" in line and "vocabulary" not in line, line
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path, body.replace("HID", "4096")
                                                              .replace("VOC", "50257"), "v.yaml"), "--json")
    assert code == 0 and json.loads(out)["plan"]["tp"] == 8, err[-400:]


# ---------------------------------------------------------------- 5. capacity: a sub-second checkpoint printed as 0 s


def test_capacity_prints_the_checkpoint_time_it_uses(capsys):
    """`capacity --system dgx-h100 --units 8 --days 30` said 'checkpoint 0 s every 27.4 min': a checkpoint of
    under half a second printed with no decimals, beside an interval that Young's rule tau = sqrt(2 C M) derives
    from it. From the printed interval and MTBF, C = tau^2 / (2 M) = (27.4 x 60)^2 / (2 x 791.82 x 3,600) =
    0.474 s; the line now states it to three figures."""
    import re

    code, out, err = run_main(capsys, "capacity", "--system", "dgx-h100", "--units", "8", "--days", "30", "--json")
    assert code == 0, err[-400:]
    (lim,) = [x for x in json.loads(out)["limits"] if x["limit"] == "failures"]
    m = re.search(r"MTBF ([\d.]+) h .* checkpoint ([\d.e+-]+) s every ([\d.]+) min", lim["detail"])
    assert m, lim["detail"]
    mtbf_h, ckpt_s, tau_min = (float(g) for g in m.groups())
    assert ckpt_s == pytest.approx((tau_min * 60) ** 2 / (2 * mtbf_h * 3600), rel=0.01), lim["detail"]


# ---------------------------------------------------------------- 6. infer: batch x tokens/s per user did not add up


def test_infer_says_the_prefill_share_of_the_time_per_output_token(capsys):
    """Aggregated serving (the example spec: Llama 3.1 8B, 2,048 in / 512 out on H800) printed 'decode batch per
    chip 80', 'decode tokens/s per chip 3,609' and 'time per output token 27.2 ms (36.8 tok/s/user)': 80 x 36.8 =
    2,946, not 3,609, with nothing to say why. The TPOT holds the prompts prefilled between decode steps
    (Sarathi-Serve): B / output_len requests finish per step, as many prompts are prefilled, so per chip each step
    carries batch x input_len / (output_len x prefill tokens/s per chip) seconds of prefill. The table now names
    that part and calls the 3,609 the decode steps' own rate; --json gives it as decode.prefill_in_tpot_s."""
    from pathlib import Path

    spec = str(Path(__file__).resolve().parents[1] / "examples" / "serving-llama-3.1-8b-h800.yaml")
    code, out, err = run_main(capsys, "infer", spec, "--json")
    assert code == 0, err[-400:]
    d = json.loads(out)
    dec, pre = d["decode"], d["prefill"]
    inter = dec["batch_per_chip"] * 2048 / (512 * pre["tokens_per_s_per_chip"])
    assert dec["prefill_in_tpot_s"] == pytest.approx(inter, rel=1e-9)
    # the decode steps alone: batch per chip / (TPOT - prefill share) is the decode rate printed
    assert dec["batch_per_chip"] / (dec["tpot_s"] - inter) == pytest.approx(dec["tokens_per_s_per_chip"], rel=1e-9)
    code, out, err = run_main(capsys, "infer", spec)
    flat = " ".join(out.replace("│", " ").split())
    assert code == 0 and f"{inter * 1e3:.1f} ms of it prompts prefilled between decode steps" in flat, flat
    assert "decode tokens/s per chip (decode" in flat and "steps alone)" in flat     # the label wraps


# ---------------------------------------------------------------- 7. plan --framework times the plans under that stack

R1 = """
name: r1
model: llama-3.1-8b
system: dgx-h100
chips: 64
training: {tokens: 1T, seq_len: 8K, global_batch_seqs: 512}
"""


def test_plan_framework_option_times_plans_like_the_spec_key(tmp_path, capsys):
    """`plan RUN --framework torchtitan-2024` restricted the search to torchtitan's plans but timed them with the
    run's own stack (Megatron-Core's kernels): Llama 3.1 8B on 64 H100 gave 7.24 s per step where the same run with
    `framework: torchtitan-2024` in its spec gives 8.96 s (torchtitan-2024's FlashAttention-2, eager element-wise
    kernels and fp32-upcast loss, framework_schedules.yaml defaults); the explorer's stack already timed them so.
    The option and the spec key now give the same best plan and step time."""
    opt = json.loads(_ok(run_main(capsys, "plan", write_spec(tmp_path, R1, "a.yaml"), "--framework",
                                  "torchtitan-2024", "--json", "--top", "1")))["best"]
    key = json.loads(_ok(run_main(capsys, "plan", write_spec(tmp_path, R1 + "framework: torchtitan-2024\n", "b.yaml"),
                                  "--json", "--top", "1")))["best"]
    assert opt["plan"] == key["plan"] and opt["step_time_s"] == pytest.approx(key["step_time_s"], rel=1e-12)


def _ok(res) -> str:
    code, out, err = res
    assert code == 0, err[-400:]
    return out


# ---------------------------------------------------------------- 8. a broken stated plan printed as a Python dict


def test_a_stated_plan_that_breaks_a_rule_is_printed_as_the_tables_print_it(tmp_path, capsys):
    """ep 8 on a pipeline stage of 4 chips (8 chips / pp 2) breaks 'ep x etp must divide tp x cp x dp'; the line
    ended '(chips 8, global batch 1000 sequences, plan {'tp': 1, 'pp': 2, ..., 'zgroup': 0, ...})': a Python dict
    with the search's internal sharding-group column and an unseparated batch. Now 'plan tp=1 pp=2 ...' and
    '1,000'."""
    body = ("name: m\nmodel: {layers: 4, hidden: 1024, heads: 16, ffn: 4096, vocab: 32000, "
            "moe: {experts: 8, top_k: 2, expert_ffn: 1024}}\nsystem: dgx-h100\nchips: 8\n"
            "training: {tokens: 1B, seq_len: 2K, global_batch_seqs: 1000}\n"
            "plan: {tp: 1, pp: 2, ep: 8, cp: 1, zero: 1, recompute: none, micro_batch: 1}\n")
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path, body, "m.yaml"))
    line = one_line(code, err, 2)
    assert "plan.ep:" in line and "plan tp=1 pp=2 " in line and "ep=8" in line and "1,000 sequences" in line, line
    assert "{" not in line and "zgroup" not in line, line


# ---------------------------------------------------------------- 9. a local batch under a stack that has none


@pytest.mark.parametrize("framework, code", [("", 2), ("framework: megatron-bridge-2026\n", 2),
                                             ("framework: other-nemo-automodel\n", 0)])
def test_local_batch_only_under_a_stack_that_calls_its_schedule_per_local_batch(tmp_path, capsys, framework, code):
    """training.local_batch_seqs is NeMo AutoModel's step_scheduler.local_batch_size: one pipeline-schedule call,
    with its fill and drain, per local batch. Megatron-LM's train_step runs the whole step in one
    forward_backward_func call, but a Megatron-Bridge run stating local_batch_seqs 8 was priced with 256 / (4 x 8) =
    8 calls per step (global 256, dp 4): 8 bubbles. Now one line naming the field, exit 2, except under a stack
    whose profile says it calls per local batch (local_batch_calls)."""
    body = ("name: lb\nmodel: llama-3.1-8b\nsystem: dgx-h100\nchips: 16\n" + framework
            + "training: {tokens: 1B, seq_len: 4K, global_batch_seqs: 256, local_batch_seqs: 8}\n"
            "plan: {tp: 1, pp: 4, cp: 1, zero: 2, recompute: full, micro_batch: 1}\n")
    got, out, err = run_main(capsys, "estimate", write_spec(tmp_path, body, "lb.yaml"))
    if code:
        line = one_line(got, err, 2)
        assert "training.local_batch_seqs:" in line and "other-nemo-automodel" in line, line
    else:
        assert got == 0, err[-400:]
