"""qa20: a sceptical user's defect hunt on the training side (estimate, plan, size, check, cost). Each regression
test failed before its fix (the defect named in its docstring); expected values are hand derivations or
published figures written here, never the engine's own output."""
from __future__ import annotations

import pytest

from conftest import one_line, run_main, write_spec


# ---------------------------------------------------------------- 1. "4 SuperPoDs" of an 8-GPU server


@pytest.mark.parametrize("system", ["dgx-h100", "gb200-nvl72"])
def test_superpods_of_a_system_that_is_not_one_are_bad_input(tmp_path, capsys, system):
    """`chips: "4 SuperPoDs"` with `system: dgx-h100` was read as 4 x 8 = 32 chips (one NVLink domain each), and
    `check` said 'valid'. An NVIDIA DGX SuperPOD is scalable units of 32 DGX H100 systems = 256 GPUs (reference
    architecture RA-11333-001: '4 SU, 127-node'), or 8 GB200 NVL72 racks = 576 GPUs per SU (GB200 RA): never one
    scale-up domain. Now one line naming chips and the value, exit 2."""
    spec = write_spec(tmp_path, f"model: llama-3.1-8b\nsystem: {system}\nchips: 4 SuperPoDs\n"
                                "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512}\n")
    code, out, err = run_main(capsys, "check", spec)
    line = one_line(code, err, 2)
    assert "chips" in line and "'4 SuperPoDs'" in line and "(line 3)" in line, line


@pytest.mark.parametrize("system, stated, chips", [
    ("atlas-950-superpod", "2 SuperPoDs", 2 * 8192),   # Huawei Connect 2025: 8,192 NPUs per Atlas 950 SuperPoD
    ("cloudmatrix-384", "3 superpods", 3 * 384),       # CloudMatrix384 is the Atlas 900 A3 SuperPoD: 384 NPUs
    ("dgx-h100", "4 systems", 4 * 8),                  # a DGX H100 system: 8 GPUs
    ("{base: atlas-950-superpod, name: ours}", "2 superpods", 2 * 8192),   # renamed, still the SuperPoD's domain
])
def test_superpods_of_a_superpod_system_still_count_domains(tmp_path, capsys, system, stated, chips):
    spec = write_spec(tmp_path, f"model: llama-3.1-8b\nsystem: {system}\nchips: {stated}\n"
                                "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512}\n")
    code, out, err = run_main(capsys, "check", spec)
    assert code == 0 and f"{chips:,} chips" in out, (code, err)


# ---------------------------------------------------------------- 2. "4M tokens" of 4,096-token sequences


@pytest.mark.parametrize("stated, seq_len, seqs", [
    ("4M", 4096, 1024),     # Llama 2 sec. 2.2 / Llama 3 sec. 3.4.1: 4M tokens of 4,096 = 1,024 x 4,096
    ("16M", 8192, 2048),    # Llama 3 405B's final batch: 16M tokens of 8,192 = 2,048 sequences
    ("2M", 2048, 1024),     # OPT-175B: metaseq int(2.0 * M), M = 1024 * 1024, of 2,048 = 1,024 sequences
    ("1.5M", 2048, 768),    # 1.5 x 2^20 / 2,048
    ("64M", 4096, 15625),   # a decimal reading that is whole sequences stays (issue 15: 64e6 / 4,096 = 15,625)
])
def test_a_batch_in_round_tokens_is_the_whole_sequences_its_source_means(tmp_path, capsys, stated, seq_len, seqs):
    """`global_batch_tokens: 4M` with `seq_len: 4096` was read as 4,000,000 tokens = 976.6 -> 977 sequences, and
    `estimate` on 64 chips ran a batch of 960 ('asked 977: -1.7%'), 6.25% below the 1,024 sequences every source
    quoting '4M tokens' of 4,096 means."""
    spec = write_spec(tmp_path, f"model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                                f"training: {{tokens: 1T, seq_len: {seq_len}, global_batch_tokens: {stated}}}\n")
    code, out, err = run_main(capsys, "check", spec)
    assert code == 0 and f"batch {seqs:,} sequences" in out, (code, out, err)


def test_a_batch_of_4m_tokens_runs_1024_sequences_on_64_chips(tmp_path, capsys):
    import json
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                                "training: {tokens: 1T, seq_len: 4096, global_batch_tokens: 4M}\n")
    code, out, err = run_main(capsys, "estimate", spec, "--json")
    d = json.loads(out)
    assert code == 0 and d["global_batch_requested_seqs"] == 1024 and d["global_batch_seqs"] == 1024, err


# ---------------------------------------------------------------- 3. activation offload of more layers than exist


@pytest.mark.parametrize("layers", [32, 100])
def test_offloading_as_many_layers_as_the_model_has_is_bad_input(tmp_path, capsys, layers):
    """`plan: {offload_activation_layers: 100}` on Llama 3.1 8B (32 layers, config.json num_hidden_layers) was
    accepted and `estimate` answered a plan (the count silently clamped to each rank's layers - 1). Megatron-Core
    refuses it: TransformerConfig 'CPU offloading can be done only for layers less than {num_layers}'
    (cpu_offloading_num_layers >= num_layers; transformer_config.py at core_r0.8.0 and d98e8a64dd). Now one line
    naming plan.offload_activation_layers, exit 2; 31 is still answered."""
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                                "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512}\n"
                                f"plan: {{offload_activation_layers: {layers}}}\n")
    code, out, err = run_main(capsys, "estimate", spec)
    line = one_line(code, err, 2)
    assert "plan.offload_activation_layers" in line and f"{layers}" in line and "32 layers" in line, line
    ok = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                              "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512}\n"
                              "plan: {offload_activation_layers: 31}\n", name="ok.yaml")
    assert run_main(capsys, "check", ok)[0] == 0


# ---------------------------------------------------------------- 4. --emit megatron runs the step it predicted


def _emit(tmp_path, capsys, extra="", fix="tp=1", name="run.yaml"):
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                                "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512}\n" + extra, name=name)
    code, out, err = run_main(capsys, "plan", spec, "--emit", "megatron", "--fix", fix, "-q")
    assert code == 0, err
    return out.split()


def test_emitted_megatron_flags_carry_the_overlaps_the_step_assumed(tmp_path, capsys):
    """`plan --emit megatron` of Llama 3.1 8B on 64 H100 (dp 64, distributed optimizer) priced a step whose
    gradient reduce-scatter and parameter all-gather hide behind the backward and forward (grad_sync_overlap, the
    engine's and Megatron-Bridge's default), and wrote flags without --overlap-grad-reduce / --overlap-param-gather,
    both store_true default False in Megatron-LM (megatron/training/arguments.py:3121 and :3148 at d98e8a64dd): the
    job a user launches from them syncs after the backward. Likewise tp 2 under Megatron-Bridge (tp_comm_overlap
    true in its profile) lacked --tp-comm-overlap (ModelParallelConfig.tp_comm_overlap, default False), and a stated
    offload_activation_layers 4 lacked --cpu-offloading-num-layers 4."""
    words = _emit(tmp_path, capsys, fix="tp=1,dp=64,zero=1")
    assert "--overlap-grad-reduce" in words and "--overlap-param-gather" in words
    words = _emit(tmp_path, capsys, fix="tp=2,zero=1")
    assert "--tp-comm-overlap" in words and "--sequence-parallel" in words
    words = _emit(tmp_path, capsys, "plan: {offload_activation_layers: 4}\n", fix="tp=1,pp=1", name="off.yaml")
    i = words.index("--cpu-offloading-num-layers")
    assert words[i + 1] == "4"


def test_emitted_megatron_flags_leave_out_overlaps_the_stack_did_not_have(tmp_path, capsys):
    """Megatron-LM 2022 ('local' DDP: grad_sync_overlap false in its profile) and tp 1: no overlap flags."""
    words = _emit(tmp_path, capsys, "framework: megatron-lm-2022\n", fix="tp=1,zero=0")
    assert "--overlap-grad-reduce" not in words and "--overlap-param-gather" not in words
    assert "--tp-comm-overlap" not in words


@pytest.mark.parametrize("emitter", ["torchtitan", "mindspeed"])
def test_an_emitter_without_activation_offload_says_it_dropped_it(tmp_path, capsys, emitter):
    """`plan --emit torchtitan` of a plan stating offload_activation_layers 4 wrote a TOML without it and said
    nothing, while the predicted step (and its memory) assumed 4 layers' activations in host memory. Now a note on
    stderr names the dropped option (Megatron-LM's emitter writes --cpu-offloading-num-layers: test above)."""
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                                "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512}\n"
                                "plan: {offload_activation_layers: 4, pp: 1}\n")
    code, out, err = run_main(capsys, "plan", spec, "--emit", emitter, "-q")
    assert code == 0 and "offload_activation_layers 4 is not written" in err, (code, err[-400:])


# ---------------------------------------------------------------- 5. a cost that overflows


@pytest.mark.parametrize("option, field", [("--price-per-chip-hour", "rental cost"),
                                           ("--electricity", "electricity cost")])
def test_a_cost_input_that_overflows_the_cost_is_bad_input(tmp_path, capsys, option, field):
    """`estimate --price-per-chip-hour 1e308` (finite, >= 0: accepted) printed 'cost, rental: inf at
    $1.00e+308/chip-hour' with exit 0 and wrote null in --json; --pue 1e308 printed 'inf MWh', --electricity 1e308
    an 'inf' capex. 28k chip-hours x 1e308 overflows a double (max 1.8e308). Now one line naming the option.
    (--pue 1e308 is now refused before any cost, as above 3: test_qa29b.py.)"""
    spec = write_spec(tmp_path)
    code, out, err = run_main(capsys, "estimate", spec, option, "1e308")
    line = one_line(code, err, 2)
    assert line.startswith(f"error: {option}:") and field in line and "inf" not in line, line


def test_an_inline_power_that_overflows_the_energy_is_bad_input(tmp_path, capsys):
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: {base: dgx-h100, power_per_chip_w: 1e308}\nchips: 64\n"
                                "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512}\n")
    line = one_line(*run_main(capsys, "estimate", spec)[::2], 2)
    assert "power_per_chip_w" in line and "energy" in line, line


# ---------------------------------------------------------------- 6. a stated vpp / schedule / pp no plan can have


@pytest.mark.parametrize("plan, field", [
    ("{vpp: 4, schedule: 1f1b}", "plan.vpp"),           # virtual stages exist only in the interleaved schedule
    ("{pp: 1, vpp: 2}", "plan.vpp"),                    # ... and need a pipeline
    ("{pp: 1, schedule: interleaved}", "plan.schedule"),
    ("{vpp: 1, schedule: interleaved}", "plan.vpp"),    # interleaving needs two virtual stages per rank
])
def test_a_stated_vpp_no_schedule_can_run_is_bad_input(tmp_path, capsys, plan, field):
    """`plan: {vpp: 4, schedule: 1f1b}` answered exit 1 'no valid plan for 64 chips and a batch of 512
    sequences' with 'nearest alternatives', as if the cluster or batch were at fault; no chip count or batch makes
    1F1B run virtual stages (Megatron-LM's --num-layers-per-virtual-pipeline-stage is the interleaved schedule's,
    and needs a pipeline: 'When interleaved schedule is used, pipeline-model-parallel size should be greater than
    1', megatron/training/arguments.py:1003 at d98e8a64dd). Like a tp the heads refuse (qa16): one line naming
    the field, exit 2."""
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                                f"training: {{tokens: 1T, seq_len: 4096, global_batch_seqs: 512}}\nplan: {plan}\n")
    line = one_line(*run_main(capsys, "estimate", spec)[::2], 2)
    assert f"{field}:" in line and "(line 5)" in line, line


@pytest.mark.parametrize("plan", ["{vpp: 2}", "{schedule: interleaved}", "{vpp: [1, 2], schedule: 1f1b}",
                                  "{pp: [1, 2], vpp: 2}"])
def test_a_vpp_some_plan_can_have_is_still_searched(tmp_path, capsys, plan):
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 64\n"
                                f"training: {{tokens: 1T, seq_len: 4096, global_batch_seqs: 512}}\nplan: {plan}\n")
    assert run_main(capsys, "check", spec)[0] == 0


# ---------------------------------------------------------------- 7. a sensitivity factor given twice


def test_sensitivity_with_a_factor_given_twice_answers_once(tmp_path, capsys):
    """`sensitivity --factors 2,2` exited 3 ('bug: unexpected ZeroDivisionError'): the elasticity divides by
    ln(2 / 2) = 0. A repeated factor is one search and one column; with fewer than two distinct factors the
    elasticity is n/a (no slope), and 0.5,2,2 gives the slope between x0.5 and x2."""
    import json
    spec = write_spec(tmp_path)
    code, out, err = run_main(capsys, "sensitivity", spec, "--vary", "hbm_bandwidth", "--factors", "2,2", "-q")
    assert code == 0 and out.count("x2 ") == 1 and "n/a" in out, (code, err[-300:])
    code, out, err = run_main(capsys, "sensitivity", spec, "--vary", "hbm_bandwidth", "--factors", "0.5,2,2.0",
                              "--json")
    d = json.loads(out)
    rows = d["params"]["hbm_bandwidth"]["rows"]
    assert code == 0 and [r["factor"] for r in rows] == [0.5, 2.0]
    import math
    want = math.log(rows[1]["days"] / rows[0]["days"]) / math.log(4.0)
    assert d["elasticity"]["hbm_bandwidth"] == pytest.approx(want, rel=1e-12)


# ---------------------------------------------------------------- properties (hypothesis, derandomized, few examples)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAST = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@settings(max_examples=60, **FAST)
@given(st.integers(0, 14), st.integers(1, 4096), st.sampled_from(["k", "K", "M"]))
def test_a_suffixed_batch_is_always_whole_sequences_where_either_reading_is(log_seq, seqs, suffix):
    """A batch of ``seqs`` sequences of 2^log_seq tokens, stated as its sources write it (the token count over the
    suffix's binary multiple, where that is a round figure): read back as exactly ``seqs`` sequences whenever the
    decimal reading is not whole sequences. Hand: "4M" of 4,096 = 4 x 2^20 / 2^12 = 1,024."""
    from trainsim.spec import TrainingSpec
    seq = 2 ** log_seq
    mult = 2 ** 20 if suffix == "M" else 2 ** 10
    stated = seqs * seq / mult
    text = f"{stated:g}{suffix}"
    if float(text[:-1]) != stated:   # not a short round figure: sources would not write it this way
        return
    t = TrainingSpec(seq_len=seq, global_batch_tokens=text)
    decimal = stated * (1e6 if suffix == "M" else 1e3)
    assert t.batch_seqs == (round(decimal / seq) if (decimal / seq).is_integer() else seqs)


@settings(max_examples=25, **FAST)
@given(st.floats(0.01, 100.0), st.floats(1.0, 3.0), st.floats(0.0, 1.0), st.floats(1.01, 8.0))
def test_cost_scales_with_each_price_and_pue(price, pue, kwh, factor):
    """Rental cost = rate x chip-hours, energy = power x chips x hours x PUE, electricity = energy x price per kWh
    (trainsim/cost.py): each is linear in its input, so x ``factor`` on one input multiplies its figure by
    ``factor`` and leaves chip-hours and days alone."""
    from trainsim.api import as_run, estimate
    from trainsim.cost import run_cost
    est = _small_estimate(as_run, estimate)
    a = run_cost(est, price_per_chip_hour=price, pue=pue, electricity_usd_per_kwh=kwh)
    b = run_cost(est, price_per_chip_hour=price * factor, pue=pue, electricity_usd_per_kwh=kwh)
    c = run_cost(est, price_per_chip_hour=price, pue=pue * factor, electricity_usd_per_kwh=kwh)
    assert b["cost_rental_usd"] == pytest.approx(a["cost_rental_usd"] * factor, rel=1e-12)
    assert c["energy_mwh"] == pytest.approx(a["energy_mwh"] * factor, rel=1e-12)
    assert c["electricity_usd"] == pytest.approx(a["electricity_usd"] * factor, rel=1e-12)
    assert b["chip_hours"] == a["chip_hours"] == c["chip_hours"] and a["days"] == b["days"] == c["days"]


_EST: dict = {}


def _small_estimate(as_run, estimate):
    if "e" not in _EST:
        _EST["e"] = estimate(as_run({"name": "s", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 64,
                                     "training": {"tokens": "1T", "seq_len": 4096, "global_batch_seqs": 512}}))
    return _EST["e"]


@pytest.mark.parametrize("tokens, factor", [("1T", 2.0), ("1T", 3.5), ("250B", 4.0)])
def test_days_and_chip_hours_scale_with_tokens(tokens, factor):
    """The step does not depend on the tokens to train, so days = tokens / (tokens per step) x step time: twice the
    tokens take twice the days and chip-hours, the same plan and step."""
    from trainsim.api import as_run, estimate
    base = {"name": "s", "model": "qwen3-30b-a3b", "system": "dgx-h100", "chips": 32,
            "training": {"tokens": tokens, "seq_len": 4096, "global_batch_seqs": 512}}
    a = estimate(as_run(base))
    more = float(a.run.training.tokens) * factor
    b = estimate(as_run({**base, "training": {**base["training"], "tokens": more}}))
    assert b.plan == a.plan and b.step_time_s == a.step_time_s
    assert b.days == pytest.approx(a.days * factor, rel=1e-12)
