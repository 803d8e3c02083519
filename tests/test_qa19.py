"""qa19: adversarial QA of the serving and RL engines and the CLI after sessions 17-18 (decode expert streaming,
host_cpu, RL rollout alternatives, sweep / posttrain / check exit codes). Each regression test failed before its
fix (the defect named in its docstring); the property tests (hypothesis, derandomized, few examples) state why
each must hold. Shared scaling helper: :func:`scaled_system` (one hardware quantity x a factor)."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.specs import run_in_process
from trainsim.catalog import get_system
from trainsim.inference.search import evaluate_decode
from trainsim.inference.serve import best_decode, best_prefill, setup_for
from trainsim.inference.spec import MTPSpec
from trainsim.inference.step import ServePlans, step_time
from trainsim.model.load import resolve_model

ROOT = Path(__file__).resolve().parent.parent
FAST = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
WHAT = ("hbm_bw", "flops", "scale_up", "scale_out")


def scaled_system(system_id: str, what: str, factor: float):
    """The catalog system with one hardware quantity x ``factor``: the chip's HBM bandwidth, every peak FLOP/s,
    or the bandwidth of the scale-up level (innermost) or of every scale-out level (chip figure and level alike)."""
    s = get_system(system_id)
    c = s.chip
    if what == "hbm_bw":
        return s.with_(chip=c.with_(hbm_bw=c.hbm_bw * factor))
    if what == "flops":
        return s.with_(chip=c.with_(peak_flops={k: v * factor for k, v in c.peak_flops.items()}))
    lv = list(s.levels)
    if what == "scale_up":
        lv[0] = replace(lv[0], bw=lv[0].bw * factor)
        return s.with_(levels=tuple(lv), chip=c.with_(scale_up_bw=c.scale_up_bw * factor))
    lv[1:] = [replace(level, bw=level.bw * factor) for level in lv[1:]]
    return s.with_(levels=tuple(lv), chip=c.with_(scale_out_bw=c.scale_out_bw * factor))


def _arch(model: str):
    return resolve_model(model, ROOT, field="model")


def _one_line(rc, out, err, want_rc):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == want_rc and len(lines) == 1 and "Traceback" not in err, (rc, out[:200], err[-400:])
    return lines[0]


# ---------------------------------------------------------------- 1. an output named as another format

def test_sweep_output_named_as_another_format_is_bad_input(tmp_path):
    """`sweep S -o results.csv` wrote a Parquet file under a .csv name (exit 0): a reader opening it as CSV gets
    binary. Now one line naming -o, the extension and the format, exit 2, nothing written; .parquet is written."""
    base = tmp_path / "base.yaml"
    base.write_text("name: b\nmodel: llama-3.1-8b\nsystem: dgx-h100\nchips: 16\n"
                    "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 256, precision: bf16}\n")
    sw = tmp_path / "sw.yaml"
    sw.write_text("name: sw\nbase: base.yaml\naxes: {plan.tp: [1, 2]}\nrecord: [inputs, time]\n")
    bad = tmp_path / "r.csv"
    line = _one_line(*run_in_process(["sweep", str(sw), "-o", str(bad), "-q"]), 2)
    assert "-o" in line and "'.csv'" in line and ".parquet" in line, line
    assert not bad.exists() and not any(tmp_path.glob("r.csv*"))
    good = tmp_path / "r.parquet"
    rc, out, err = run_in_process(["sweep", str(sw), "-o", str(good), "-q"])
    assert rc == 0 and good.read_bytes()[:4] == b"PAR1", err


def test_report_output_named_as_another_format_is_bad_input(tmp_path):
    """`report run.yaml -o r.pdf` wrote HTML into r.pdf (exit 0). Now exit 2 before the work, one line."""
    run = tmp_path / "run.yaml"
    run.write_text("name: r\nmodel: llama-3.1-8b\nsystem: dgx-h100\nchips: 16\n"
                   "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 256, precision: bf16}\n")
    out = tmp_path / "r.pdf"
    line = _one_line(*run_in_process(["report", str(run), "-o", str(out), "--no-sweeps", "-q"]), 2)
    assert "'.pdf'" in line and ".html" in line, line
    assert not out.exists()


# ---------------------------------------------------------------- 1b. serving: nothing fits names what would

DSV3_8 = ("name: t\nmodel: deepseek-v3\nsystem: dgx-h100\nchips: 8\n"
          "serving: {{input_len: 2048, output_len: 512, phase: decode, precision: {prec}}}\n")


def test_serving_that_fits_nowhere_names_alternatives_that_fit(tmp_path):
    """DeepSeek-V3 FP8 decode on one 8-H100 instance: 671e9 weights x 1 B / 8 = 83.9 GB = 78.1 GiB per chip,
    plus the 4 GB (3.7 GiB) reserved buffer, is over the 80 GiB HBM before any KV cache, so nothing fits (exit 1).
    The line said "use more chips per instance or 8-bit weights" -- weights that were already 8-bit. Now it names
    the alternatives found by evaluating them: 16 chips (half the weights per chip, 39 GiB) and FP4 weights
    (0.5625 B: 44 GiB) -- and each one named, stated in the spec, is an answer (exit 0)."""
    assert 671e9 / 8 / 2**30 + 4e9 / 2**30 > 80
    spec = tmp_path / "s.yaml"
    spec.write_text(DSV3_8.format(prec="fp8"))
    line = _one_line(*run_in_process(["infer", str(spec)]), 1)
    assert "8-bit weights" not in line and "nearest alternatives: chips: 16 -> " in line, line
    assert "serving.precision: fp4 -> " in line, line
    spec.write_text(DSV3_8.format(prec="fp4"))
    assert run_in_process(["infer", str(spec)])[0] == 0
    spec.write_text(DSV3_8.format(prec="fp8").replace("chips: 8", "chips: 16"))
    assert run_in_process(["infer", str(spec)])[0] == 0


# ---------------------------------------------------------------- 1c. serving inputs out of physical range

QWEN_SERVE = "name: t\nmodel: qwen3-30b-a3b\nsystem: dgx-h100\nserving: {{input_len: 2048, output_len: 512, {extra}}}\n"


@pytest.mark.parametrize("extra, field, needle", [
    # cv^2 overflowed a Python float: 'bug: unexpected OverflowError', exit 3
    ("output_len_cv: 1e200", "serving.output_len_cv", "= inf tokens; expected at most 100,000,000"),
    # 2,048 + 512 x (1 + 1e10) / 2 = 2.56e12 tokens of mean context: exit 1 'needs 7,324,222.8 GiB per chip'
    ("output_len_cv: 1e5", "serving.output_len_cv", "= 2.56e+12 tokens"),
    # busiest / mean expert load above E / k = 128 / 8 = 16 (Qwen3-30B-A3B): was 0 tokens/s per chip, exit 0
    ("expert_imbalance: 1e300", "serving.expert_imbalance", "at most experts / top-k = 16"),
    ("expert_imbalance: 16.5", "serving.expert_imbalance", "at most experts / top-k = 16"),
])
def test_serving_input_out_of_physical_range_is_bad_input(tmp_path, extra, field, needle):
    spec = tmp_path / "s.yaml"
    spec.write_text(QWEN_SERVE.format(extra=extra))
    line = _one_line(*run_in_process(["infer", str(spec)]), 2)
    assert f"{field}:" in line and needle in line, line


@pytest.mark.parametrize("extra", ["output_len_cv: 1.25", "expert_imbalance: 16"])
def test_serving_input_at_its_physical_limit_is_answered(tmp_path, extra):
    """The edge of each range is an answer: cv 1.25 (a measured spread, spec docs) and imbalance exactly E / k
    (every token sends one copy to the busiest expert)."""
    spec = tmp_path / "s.yaml"
    spec.write_text(QWEN_SERVE.format(extra=extra))
    assert run_in_process(["infer", str(spec)])[0] == 0


def test_a_huge_memory_need_prints_three_digits_not_three_hundred():
    """numfmt.gib of 1e300 bytes printed all 291 digits of the GiB figure (prefill_tokens_per_chip: 1e300)."""
    from trainsim.numfmt import gib

    assert gib(1e300) == f"{1e300 / 2**30:.3g} GiB" and len(gib(1e300)) < 20
    assert gib(80 * 2**30) == "80.0 GiB"


def test_speculative_decoding_yielding_more_than_the_output_is_bad_input(tmp_path):
    """1 + 100,000 x 1 accepted drafts per step on requests of 100 output tokens was timed as a 47.7 ms TPOT
    (exit 0); a step cannot yield more tokens than the request generates. 1 + 3 x 0.7 = 3.1 <= 100 is answered."""
    spec = tmp_path / "s.yaml"
    base = "name: t\nmodel: llama-3.1-8b\nsystem: dgx-h100\nserving: {{input_len: 100, output_len: 100, mtp: {mtp}}}\n"
    spec.write_text(base.format(mtp="{draft_tokens: 100000, acceptance: 1}"))
    line = _one_line(*run_in_process(["infer", str(spec)]), 2)
    assert "= 100001 tokens per decode step, more than output_len 100" in line, line
    spec.write_text(base.format(mtp="{draft_tokens: 3, acceptance: 0.7}"))
    assert run_in_process(["infer", str(spec)])[0] == 0


@pytest.mark.parametrize("chips, plan, field, needle", [
    # each was exit 1 'no prefill plan: no (tp, pp, ep) candidate divides the chips per instance'
    ("16", "{ep: 3}", "plan.ep", "ep 3 does not divide the 16 chips of a pipeline stage"),
    ("16", "{ep: 16, pp: 2}", "plan.ep", "ep 16 does not divide the 8 chips of a pipeline stage (chips 16 / pp 2)"),
    ("16", "{tp: 8, pp: 4}", "plan.tp", "tp 8 x pp 4 does not divide chips 16"),
    ("24", "{pp: 16}", "plan.pp", "pp 16 does not divide chips 24"),
    ("64", "{pp: 64}", "plan.pp", "pp 64 is more than the model's 48 layers"),   # Qwen3-30B-A3B: 48 layers
])
def test_a_stated_serving_plan_field_no_plan_can_take_is_bad_input(tmp_path, chips, plan, field, needle):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: t\nmodel: qwen3-30b-a3b\nsystem: dgx-h100\nchips: {chips}\n"
                    f"serving: {{input_len: 2048, output_len: 512}}\nplan: {plan}\n")
    line = _one_line(*run_in_process(["infer", str(spec)]), 2)
    assert f"{field}: {needle}" in line, line


@pytest.mark.parametrize("system, needle", [
    # H100 SXM: no FP4 tensor cores; dense FP8 1,979 TFLOP/s (NVIDIA H100 datasheet, SXM5)
    ("dgx-h100", "1,979 TFLOP/s (chip has no FP4 rate: its FP8 rate"),
    # A100: neither FP4 nor FP8; dense BF16 312 TFLOP/s (NVIDIA A100 datasheet)
    ("dgx-a100", "312 TFLOP/s (chip has no FP4 rate: its BF16 rate"),
])
def test_infer_table_says_which_rate_fp4_runs_at_on_a_chip_without_fp4(tmp_path, system, needle):
    """FP4 weights on a chip without FP4 tensor cores run at its FP8 (or BF16) rate; the terminal table said only
    'fp4 weights' (the rate was in --json alone, as 'its FP8 (or BF16) rate'). Now a row names the rate used."""
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: t\nmodel: llama-3.1-8b\nsystem: {system}\nchips: 1\n"
                    "serving: {input_len: 2048, output_len: 512, precision: fp4}\n")
    rc, out, err = run_in_process(["infer", str(spec)])
    assert rc == 0, err
    flat = " ".join(ln.strip("│ ") for ln in out.splitlines())
    assert needle in " ".join(flat.split()), out


# ---------------------------------------------------------------- 1d. serving: uncertain ranges

UNC = ("name: t\nmodel: qwen3-30b-a3b\nsystem: dgx-h100\nchips: 8\n"
       "serving: {{input_len: 2048, output_len: 512, phase: decode}}\n"
       "reported: {{decode_tokens_per_s_per_chip: 1000}}\nuncertain: {{{unc}}}\n")


@pytest.mark.parametrize("unc, needle", [
    # max_batch 0.5 rounds to 0 running sequences: was evaluated (a 28 tok/s/chip 'range') through model_copy
    ("max_batch: [0.5, 2]", "low end 0.5 is not a valid serving.max_batch"),
    # 1e12 tokens is over MAX_SEQ_LEN (1e8), which the stated input_len may not exceed
    ("input_len: [1000, 1e12]", "high end 1e+12 is not a valid serving.input_len"),
    # a range that leaves out the stated output_len (512) is no range around it
    ("output_len: [600, 900]", "leaves out the stated serving.output_len 512"),
])
def test_an_uncertain_end_the_spec_could_not_state_is_bad_input(tmp_path, unc, needle):
    spec = tmp_path / "s.yaml"
    spec.write_text(UNC.format(unc=unc))
    line = _one_line(*run_in_process(["infer", str(spec), "--validate"]), 2)
    assert "uncertain." in line and needle in line, line


def test_the_predicted_range_holds_the_nominal_prediction(tmp_path):
    """An end with no plan is skipped: the output_len end of 1e8 tokens (a 5e7-token mean context) fitted nowhere,
    so the range was the other end's prediction alone (5,744-5,744 beside a nominal 5,288 for 1 .. 1e300
    before ends were checked). The range now always holds the nominal prediction. (An output_len end past the
    model's 40,960-token context is now refused at load, tests/test_phys28.py; a batch end of 1e6 sequences per
    chip, whose KV cache fits no 8 H100, is the end with no plan here.)"""
    from trainsim.inference.validate import error_table

    spec = tmp_path / "s.yaml"
    spec.write_text(UNC.format(unc="batch_per_chip: [16, 1000000]"))
    row = error_table([spec], ranges=True)[0]
    lo, hi = row["predicted_range"]
    assert lo <= row["predicted"] <= hi and hi > lo, row


# ---------------------------------------------------------------- 1e. trainsim serve: bodies too deep or too large

@pytest.mark.parametrize("raw, status, needle", [
    # json.loads raised RecursionError (not a ValueError): HTTP 500 'Internal Server Error', a traceback logged
    (b"[" * 100_000 + b"]" * 100_000, 400, "request: expected a JSON object"),
    # a 5 MB body was read whole, parsed and echoed; a spec file may hold at most 1,000,000 characters
    (b'{"spec": "' + b"a" * 5_000_000 + b'"}', 413, "request: larger than 1,000,000 bytes"),
])
def test_explorer_refuses_a_body_too_deep_or_too_large_in_one_line(raw, status, needle):
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    import json
    import urllib.error
    import urllib.request

    from trainsim.serve import app as serve_app

    with serve_app.background() as url:
        req = urllib.request.Request(url + "/api/plan", data=raw, headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=60)
        assert exc.value.code == status
        assert json.loads(exc.value.read())["error"].startswith(needle)


# ---------------------------------------------------------------- 2. serving: faster hardware never slows a step

MODELS = ("llama-3.1-8b", "qwen3-30b-a3b", "deepseek-v3", "mixtral-8x7b")
SYSTEMS = ("dgx-h100", "dgx-a100", "gb200-nvl72", "cloudmatrix-384", "dgx-b200")
#: (chips, tp, pp, ep) candidates; ep is used only by MoE models (dense: ep 1)
PLANS = ((1, 1, 1, 1), (2, 1, 2, 1), (8, 8, 1, 8), (8, 1, 1, 8), (16, 2, 2, 4), (32, 8, 1, 32), (64, 1, 1, 64),
         (128, 4, 2, 16))


def _plans(arch, rows):
    moe = any(lk.moe is not None for lk in arch.layers)
    a = np.array(rows, dtype=float)
    return ServePlans(a[:, 0], a[:, 1], a[:, 2], a[:, 3] if moe else 1.0)


@settings(max_examples=25, **FAST)
@given(model=st.sampled_from(MODELS), system=st.sampled_from(SYSTEMS),
       precision=st.sampled_from(("bf16", "fp8", "fp4")), expert=st.sampled_from((None, "fp4", "bf16")),
       mtp=st.sampled_from((None, (1, 0.7), (3, 0.5))), phase=st.sampled_from(("decode", "prefill")),
       batch_per_chip=st.sampled_from((1.0, 8.0, 96.0, 512.0)), context=st.sampled_from((256, 4096, 32768)),
       what=st.sampled_from(WHAT), factor=st.sampled_from((1.1, 2.0, 8.0)))
def test_faster_hardware_never_slows_a_serving_step(model, system, precision, expert, mtp, phase, batch_per_chip,
                                                    context, what, factor):
    """Each term of a serving step is a roofline max of work over a rate (or a latency), so raising one rate (HBM
    bandwidth, peak FLOP/s at every precision, scale-up or scale-out bandwidth) can only lower it: the same plan
    at the same batch never takes longer. Checked over dense and MoE models, FP4 on chips without FP4 (H100,
    A100, 910C fall back to their 8- or 16-bit rate), the routed-expert streaming rates (expert_stream_eff: BF16
    Hopper / Ampere) and MTP; every round finite and positive."""
    arch = _arch(model)
    m = MTPSpec(draft_tokens=mtp[0], acceptance=mtp[1]) if mtp else None
    p = _plans(arch, PLANS)
    b = batch_per_chip * p.chips if phase == "decode" else batch_per_chip
    s0 = setup_for(arch, get_system(system), precision, "bf16", mtp=m, expert_precision=expert)
    s1 = setup_for(arch, scaled_system(system, what, factor), precision, "bf16", mtp=m, expert_precision=expert)
    r0 = np.asarray(step_time(s0, p, b, context, phase, input_len=context)[0])
    r1 = np.asarray(step_time(s1, p, b, context, phase, input_len=context)[0])
    assert np.all(np.isfinite(r0)) and np.all(r0 > 0)
    assert np.all(r1 <= r0 * (1 + 1e-9)), (r0, r1)


COMPUTE_PARTS = ("gemm", "experts", "attention", "elementwise", "head", "mtp")


@settings(max_examples=20, **FAST)
@given(model=st.sampled_from(MODELS), system=st.sampled_from(SYSTEMS[:4]),
       precision=st.sampled_from(("bf16", "fp8")), phase=st.sampled_from(("decode", "prefill")),
       prompts=st.sampled_from((2.0, 16.0, 128.0)), k=st.sampled_from((1, 2, 4)),
       how=st.sampled_from(("tp", "ep")))
def test_more_chips_never_add_compute_to_a_fixed_batch(model, system, precision, phase, prompts, k, how):
    """Doubling an instance (tp k -> 2k, or ep k -> 2k for a MoE model) at the same sequences per instance
    splits the same work over twice the chips: each chip's compute (GEMMs, experts, attention, element-wise,
    head) never grows; only communication may (it is what the larger instance pays)."""
    arch = _arch(model)
    moe = any(lk.moe is not None for lk in arch.layers)
    if how == "ep" and not moe:
        how = "tp"
    rows = [(k, k, 1, k if moe else 1), (2 * k, 2 * k, 1, 2 * k if moe else 1)] if how == "tp" else \
        [(k, 1, 1, k), (2 * k, 1, 1, 2 * k)]
    s = setup_for(arch, get_system(system), precision)
    br = [step_time(s, _plans(arch, [r]), prompts * 2 * k, 2048, phase, input_len=2048)[1] for r in rows]
    small, large = (sum(float(np.sum(b[c])) for c in COMPUTE_PARTS if c in b) for b in br)
    assert large <= small * (1 + 1e-9), (small, large)


@settings(max_examples=20, **FAST)
@given(model=st.sampled_from(MODELS), system=st.sampled_from(SYSTEMS), draft=st.integers(1, 4),
       acc=st.floats(0.0, 0.95), more=st.floats(0.01, 0.5), batch_per_chip=st.sampled_from((1.0, 16.0, 128.0)))
def test_higher_acceptance_never_slows_decode(model, system, draft, acc, more, batch_per_chip):
    """Speculative decoding: the step verifies ``1 + draft`` tokens per sequence whatever is accepted, so a
    higher acceptance rate only raises the tokens each step yields (``1 + draft x acceptance``): the time per
    output token never grows and the tokens/s per chip never fall, for the same plan and batch."""
    arch = _arch(model)
    p = _plans(arch, PLANS)
    ev = [evaluate_decode(setup_for(arch, get_system(system), "fp8", mtp=MTPSpec(draft_tokens=draft, acceptance=a)),
                          p, 4096, batch_per_chip=batch_per_chip) for a in (acc, min(acc + more, 1.0))]
    assert np.all(ev[1].latency_s <= ev[0].latency_s * (1 + 1e-9))
    assert np.all(ev[1].tokens_per_s_per_chip >= ev[0].tokens_per_s_per_chip * (1 - 1e-9))
    assert np.all(np.isfinite(ev[0].tokens_per_s_per_chip)) and np.all(ev[0].tokens_per_s_per_chip > 0)


@settings(max_examples=12, **FAST)
@given(model=st.sampled_from(("llama-3.1-8b", "qwen3-30b-a3b", "llama-3.1-70b")),
       system=st.sampled_from(("dgx-h100", "gb200-nvl72", "cloudmatrix-384")),
       bound_ms=st.sampled_from((None, 50.0, 20.0)), what=st.sampled_from(WHAT), factor=st.sampled_from((1.5, 4.0)))
def test_faster_hardware_never_lowers_the_best_serving_rate(model, system, bound_ms, what, factor):
    """The serving search keeps the plan with the most tokens/s per chip that fits and meets the latency bound;
    faster hardware leaves every plan's memory as it was and only shortens its steps, so the best rate (decode
    under a TPOT bound, prefill under a TTFT bound 40x it) never falls and a bound met stays met."""
    arch = _arch(model)
    mx = min(64, 2 * get_system(system).scale_up_size)
    out = []
    for sysm in (get_system(system), scaled_system(system, what, factor)):
        s = setup_for(arch, sysm, "fp8")
        d = best_decode(s, 3000, max_chips=mx, tpot_bound_s=bound_ms and bound_ms / 1e3)
        pf = best_prefill(s, 3000, max_chips=mx, ttft_bound_s=bound_ms and bound_ms * 40 / 1e3)
        out.append([float(ev.tokens_per_s_per_chip[ev.best]) if ev.best is not None else 0.0 for ev in (d, pf)])
    assert out[1][0] >= out[0][0] * (1 - 1e-9) and out[1][1] >= out[0][1] * (1 - 1e-9), out


# ---------------------------------------------------------------- 3. RL rollout: faster hardware

ROLLOUTS = (("llama-3.1-8b", "dgx-h100", 16), ("qwen3-30b-a3b", "dgx-h100", 16), ("llama-3.1-70b", "dgx-h100", 64),
            ("qwen3-30b-a3b", "gb200-nvl72", 32), ("llama-3.1-8b", "dgx-a100", 32))


@settings(max_examples=15, **FAST)
@given(case=st.sampled_from(ROLLOUTS), seqs=st.sampled_from((8, 64, 512)), rollout_len=st.sampled_from((2000, 8192)),
       tail=st.sampled_from((1.0, 2.0)), continuous=st.booleans(), what=st.sampled_from(("hbm_bw", "flops")),
       factor=st.sampled_from((1.25, 2.0)))
def test_faster_chip_never_lengthens_a_rollout(case, seqs, rollout_len, tail, continuous, what, factor):
    """An RL rollout on a chip with more HBM bandwidth or FLOP/s never takes longer (prefill + decode of the
    step's samples), and its rate is finite and positive."""
    from trainsim.posttrain.phases import rollout_time

    model, system, chips = case
    arch = _arch(model)
    r = [rollout_time(arch, sysm, chips, seqs, max(seqs // 8, 1), 512, rollout_len, "bf16",
                      1.0 if continuous else tail, continuous=continuous)
         for sysm in (get_system(system), scaled_system(system, what, factor))]
    assert math.isfinite(r[0].decode_tokens_per_s_per_chip) and r[0].decode_tokens_per_s_per_chip > 0
    assert r[1].prefill_s + r[1].decode_s <= (r[0].prefill_s + r[0].decode_s) * (1 + 1e-6), r


@pytest.mark.parametrize("model, chips, what, seqs, frac", [
    ("qwen3-30b-a3b", 64, "scale_out", 2048, 1.0),   # was: 8-chip server (tp 2, ep 8) -> 64 (tp 2, ep 64), 603.5 -> 605.8 s
    ("llama-3.1-70b", 64, "hbm_bytes", 2048, 0.6),   # was (qa19): 64-chip server (tp 8, pp 8) -> 16, 2,992 -> 3,005 s
])
def test_better_hardware_never_lengthens_a_tailed_rollout(model, chips, what, seqs, frac):
    """With a tail (longest sample 3x the mean) the last steps run nearly alone at the per-step fixed cost, so the
    plan with the most decode tokens/s per chip at full batch is not the server that finishes the step first; the
    rollout server was that plan, and 25% more scale-out bandwidth (or HBM) moved it to one that took longer
    (qa19; figures in the parameters). Now the server is the plan of least prefill + decode seconds for the step
    (posttrain/phases.py rollout_servers), so hardware that shortens every plan's time cannot lengthen the step's."""
    from trainsim.posttrain.phases import rollout_time

    arch = _arch(model)
    base = get_system("dgx-h100")
    better = base.with_(chip=base.chip.with_(hbm_bytes=base.chip.hbm_bytes * 1.25)) if what == "hbm_bytes" else \
        scaled_system("dgx-h100", what, 1.25)
    r = [rollout_time(arch, sysm, chips, seqs, seqs // 8, 512, 16384, "bf16", 3.0, hbm_fraction=frac)
         for sysm in (base, better)]
    assert r[1].prefill_s + r[1].decode_s <= (r[0].prefill_s + r[0].decode_s) * (1 + 1e-6), r
