"""Issue 18 additions, hand-derived: FP4 bytes, per-step overhead, KV-capacity and server batch caps, aggregated
serving rate, per-vendor efficiencies, the serving validation set and the whole-RL-step check."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainsim.catalog.types import Chip, NetLevel, System
from trainsim.inference.calib import InferCalib
from trainsim.inference.search import evaluate_decode, plan_grid
from trainsim.inference.serve import aggregate_output_rate
from trainsim.inference.setup import BYTES, ServeSetup
from trainsim.inference.step import ServePlans, step_time, weights_read_per_step

from conftest import TINY, ideal_infer_calib

REPO = Path(__file__).resolve().parents[1]
L, H, FFN, V = 4, 512, 2048, 1000         # the small dense model conftest.TINY (fixture tiny)
assert (TINY["layers"], TINY["hidden"], TINY["ffn"], TINY["vocab"]) == (L, H, FFN, V)


def chip_system(peaks, hbm=80e9, hbm_bw=1e12, cid="nvidia-test"):
    chip = Chip(cid, "Test", "test", "test", peaks, hbm, hbm_bw, 300e9, 25e9)
    return System("test-system", "Test", chip, (NetLevel("scale-up", 8, 300e9, 2e-6),
                                                NetLevel("scale-out", None, 25e9, 5e-6)))


ideal = ideal_infer_calib


def test_fp4_bytes_are_nvfp4_values_plus_block_scales(tiny):
    # NVFP4: 4-bit values + one FP8 scale per 16 values -> 0.5 + 1/16 bytes per weight
    assert BYTES["fp4"] == pytest.approx(0.5 + 1.0 / 16.0)
    system = chip_system({"bf16": 1e18, "fp8": 2e18, "fp4": 4e18})
    p = ServePlans(1, 1, 1, 1)
    b8 = float(weights_read_per_step(ServeSetup(tiny, system, "fp8", calib=ideal()), p, 1))
    b4 = float(weights_read_per_step(ServeSetup(tiny, system, "fp4", calib=ideal()), p, 1))
    head = V * H * 2  # the output head stays BF16
    assert b4 == pytest.approx((b8 - head) * 0.5625 + head)


def test_fp4_peak_falls_back_to_fp8_then_bf16(tiny):
    with_fp4 = ServeSetup(tiny, chip_system({"bf16": 1e15, "fp8": 2e15, "fp4": 4e15}), "fp4", calib=ideal())
    no_fp4 = ServeSetup(tiny, chip_system({"bf16": 1e15, "fp8": 2e15}), "fp4", calib=ideal())
    bf16_only = ServeSetup(tiny, chip_system({"bf16": 1e15}), "fp4", calib=ideal())
    assert (with_fp4.gemm_peak, no_fp4.gemm_peak, bf16_only.gemm_peak) == (4e15, 2e15, 1e15)


def test_step_overhead_adds_once_per_round(tiny):
    system = chip_system({"bf16": 1e15})
    p = ServePlans(1, 1, 1, 1)
    t0, _ = step_time(ServeSetup(tiny, system, calib=ideal()), p, 8, 512, "decode")
    t1, br = step_time(ServeSetup(tiny, system, calib=ideal(step_overhead_s=3e-3)), p, 8, 512, "decode")
    assert float(t1) - float(t0) == pytest.approx(3e-3)
    assert float(br["step_overhead"]) == pytest.approx(3e-3)


def test_kv_capacity_caps_the_searched_batch(tiny):
    # KV per token: 4 layers x 8 KV heads x (64 + 64) x 2 bytes = 8,192 B; at 1,000 tokens, 8.192 MB per sequence.
    # weights: (4 x (4 H^2 + 3 H FFN) + V H) x 2 = 34,578,432 B. With 0.5 GB of HBM and no buffers, sequences that
    # fit: (0.5e9 - 34,578,432) / 8.192e6 = 56.8 -> the batch grid's largest value <= 56 is 48.
    s = ServeSetup(tiny, chip_system({"bf16": 1e18}, hbm=0.5e9), calib=ideal())
    ev = evaluate_decode(s, plan_grid(s, [1], {"tp": 1, "pp": 1}), 1000)
    assert ev.batch[ev.best] == 48
    # the server's share of HBM (vLLM gpu_memory_utilization) lowers it: 0.3 x 0.5 GB -> 14.1 sequences -> 12
    ev2 = evaluate_decode(s, plan_grid(s, [1], {"tp": 1, "pp": 1}), 1000, hbm_fraction=0.3)
    assert ev2.batch[ev2.best] == 12
    # and a server cap (vLLM max_num_seqs) holds whatever the memory allows
    ev3 = evaluate_decode(s, plan_grid(s, [1], {"tp": 1, "pp": 1}), 1000, max_batch_per_instance=6)
    assert ev3.batch[ev3.best] == 6


def test_aggregate_rate_by_hand():
    # 300 prompt tokens at 10,000 tok/s + 291 generated at 1,000 tok/s = 0.03 + 0.291 chip-s per request
    assert aggregate_output_rate(300, 291, 10_000.0, 1_000.0) == pytest.approx(291 / 0.321)


def test_vendor_efficiencies_override_by_chip_id():
    c = InferCalib(mem_eff=0.8, gemm_eff=0.7, vendor_eff=(("amd", 0.5, 0.4),))
    amd = chip_system({"bf16": 1e15}, cid="amd-mi300x").chip
    nv = chip_system({"bf16": 1e15}, cid="nvidia-h100-sxm5").chip
    assert (c.for_chip(amd).mem_eff, c.for_chip(amd).gemm_eff) == (0.5, 0.4)
    assert (c.for_chip(nv).mem_eff, c.for_chip(nv).gemm_eff) == (0.8, 0.7)


def test_serving_validation_set_size_and_sources():
    from trainsim.inference.spec import load_serving

    files = sorted((REPO / "validation" / "inference").glob("*.yaml"))
    assert len(files) >= 30
    for f in files:
        sv = load_serving(f)
        assert sv.reported is not None and sv.reported.source, f.name


def test_serving_accuracy_with_committed_constants():
    """Published serving numbers (validation/inference) vs the model with the committed constants. The
    leave-one-out table (scripts/calibrate_inference.py) is in the README; this guards the in-sample fit."""
    from trainsim.inference.validate import error_table, summary

    rows = error_table()
    sm = summary(rows)
    assert sm["points"] >= 30
    assert sm["median_abs_error"] <= 0.15
    assert abs(sm["mean_signed_error"]) <= 0.10


def test_rl_step_has_a_timeline_with_logprobs_and_refit():
    from trainsim.posttrain.validate import error_table

    rows = error_table([REPO / "validation" / "rl" / "nemo-rl-h100-q30-32-sync.yaml"])
    r = rows[0]
    assert r["predicted"] > 0 and r["reported"] == 192
    st = r["stages_s"]
    for k in ("weights", "rollout", "logprobs", "train"):
        assert st[k] > 0
    # synchronous and colocated: the step is the sum of its stages
    assert r["predicted"] == pytest.approx(sum(st.values()))
    # two forward-only log-prob passes over the same 2,048 samples (test_rl_step.test_forward_only_by_hand), plus
    # the reference-model swap through host memory (3 x weights / host link: test_rl_step.test_reference_swap_*);
    # a forward-only pass over the samples costs less than the update (forward + backward) over them
    from trainsim.posttrain.spec import load_posttrain
    from trainsim.posttrain.timeline import phases

    (lp,) = [p.to_dict() for p in phases(load_posttrain(REPO / "validation" / "rl" / "nemo-rl-h100-q30-32-sync.yaml"))
             if p.stage == "logprobs"]
    assert 0.0 < lp["detail"]["forward_s"] / 2.0 < st["train"]
    assert st["logprobs"] == pytest.approx(lp["detail"]["forward_s"] + lp["detail"]["reference_swap_s"])


def test_interleaved_prefill_stretches_tpot_by_hand(tiny):
    # aggregated serving: per decode step B / out requests finish and as many prompts are prefilled, so each
    # sequence waits B x in / (out x P x chips) more per token; with in 300, out 291, P 10,000 tok/s/chip, B 48:
    s = ServeSetup(tiny, chip_system({"bf16": 1e18}), calib=ideal())
    plans = plan_grid(s, [1], {"tp": 1, "pp": 1})
    x = 300 / (291 * 10_000.0)
    plain = evaluate_decode(s, plans, 1000, batch_per_chip=48)
    mixed = evaluate_decode(s, plans, 1000, batch_per_chip=48, prefill_s_per_seq_chip=x)
    assert float(mixed.latency_s[0]) - float(plain.latency_s[0]) == pytest.approx(48 * x)
    # decode throughput itself is unchanged (the prefill time is charged in the aggregate rate instead)
    assert float(mixed.tokens_per_s_per_chip[0]) == pytest.approx(float(plain.tokens_per_s_per_chip[0]))


def test_decode_context_is_the_mean_over_decode_steps_by_hand():
    # two requests of 1,000 and 3,000 output tokens after a 100-token prompt: the 4,000 decode steps sit at
    # contexts 100 + 0.5 .. 100 + L - 0.5, so their mean is 100 + (1,000 x 500 + 3,000 x 1,500) / 4,000 = 1,350;
    # the lengths' mean is 2,000 and population std 1,000 (CV 0.5)
    from trainsim.inference.spec import ServingPart

    steps = np.concatenate([100 + np.arange(L) + 0.5 for L in (1000, 3000)])
    assert steps.mean() == pytest.approx(1350.0)
    assert ServingPart(input_len=100, output_len=2000, output_len_cv=0.5).decode_context == 1350
    # fixed lengths: the request's mean context, prompt + half the output
    assert ServingPart(input_len=100, output_len=2000).decode_context == 1100


@pytest.mark.parametrize("stem,dataset", [("mlperf51-deepseek-r1-", "mlperf-deepseek-r1.csv"),
                                          ("mlperf41-llama2-70b-", "mlperf-llama2-70b-openorca.csv"),
                                          ("mlperf51-llama2-70b-", "mlperf-llama2-70b-openorca.csv")])
def test_mlperf_points_state_their_data_set_lengths(stem, dataset):
    # the MLPerf specs' mean input and output-length CV are the data set's (validation/inference/datasets)
    import csv

    from trainsim.inference.spec import load_serving

    with (REPO / "validation" / "inference" / "datasets" / dataset).open() as f:
        rows = list(csv.DictReader(f))
    inp = np.array([float(r["input_length"]) for r in rows])
    out = np.array([float(r["output_length"]) for r in rows])
    files = sorted((REPO / "validation" / "inference").glob(f"{stem}*.yaml"))
    assert files
    for f in files:
        sp = load_serving(f).serving
        assert sp.input_len == pytest.approx(inp.mean(), abs=0.5), f.name
        assert sp.output_len_cv == pytest.approx(out.std() / out.mean(), abs=0.005), f.name


def test_reserved_kv_caps_the_batch_by_hand():
    # TensorRT-LLM's GUARANTEED_NO_EVICT admits a request only with KV for input + maximum output in hand.
    # tiny model, BF16 KV: 4 layers x 8 heads x (64 + 64) x 2 B = 8,192 B per token. On one H800: paged at the mean
    # context (1,024 + 128 = 1,152 tokens) the batch grid's top (1,024) fits; reserved to 1,024 + 16,384 = 17,408
    # tokens (142.6 MB) per running request, the 80 GB hold about 530, so the batch drops below the grid top.
    from trainsim.catalog.load import get_system
    from trainsim.inference.spec import ServingPart, parse_serving

    assert ServingPart(input_len=1024, output_len=256, max_output_len=16384).kv_reserved_context == 17408
    assert ServingPart(input_len=1024, output_len=256).kv_reserved_context == 1152
    doc = {"name": "t", "model": TINY, "system": "hgx-h800", "chips": 1, "plan": {"tp": 1, "pp": 1},
           "serving": {"phase": "decode", "input_len": 1024, "output_len": 256}}
    paged = infer_decode(parse_serving(doc))
    reserved = infer_decode(parse_serving({**doc, "serving": {**doc["serving"], "max_output_len": 16384}}))
    per_tok = 4 * 8 * (64 + 64) * 2.0
    assert paged["memory_per_chip_bytes"]["kv_cache"] == pytest.approx(paged["batch_per_instance"] * 1152 * per_tok)
    mem = reserved["memory_per_chip_bytes"]
    assert mem["kv_cache"] == pytest.approx(reserved["batch_per_instance"] * 17408 * per_tok)
    hbm = get_system("hgx-h800").chip.hbm_bytes
    assert mem["total"] <= hbm < mem["total"] + 2 * reserved["batch_per_instance"] * 17408 * per_tok
    assert paged["batch_per_instance"] == 1024 and reserved["batch_per_instance"] < 540


def infer_decode(sv):
    from trainsim.inference.serve import infer

    return infer(sv)["decode"]


def test_two_batch_overlap_off_adds_the_communication_back_by_hand():
    # tiny model, tp 2 on one H800 node: per layer the two all-reduces are much shorter than the compute, so with
    # two-batch overlap the model hides comm_overlap x (all-reduce time); a deployment that runs without it (SGLang
    # GB200 part I) pays the all-reduces in full: round(off) - round(on) = comm_overlap x tp_comm, hidden(off) = 0
    from trainsim.errors import TrainsimError
    from trainsim.inference.calib import default_calib
    from trainsim.inference.spec import parse_serving

    doc = {"name": "t", "model": TINY, "system": "hgx-h800", "chips": 2, "plan": {"tp": 2, "pp": 1},
           "serving": {"phase": "decode", "input_len": 1024, "output_len": 256, "batch": 8}}
    on = infer_decode(parse_serving(doc))
    off = infer_decode(parse_serving({**doc, "serving": {**doc["serving"], "two_batch_overlap": False}}))
    tp_comm = on["breakdown_s"]["tp_comm"]
    assert tp_comm > 0 and tp_comm < on["breakdown_s"]["gemm"]
    assert -on["breakdown_s"]["overlap_hidden"] == pytest.approx(default_calib().comm_overlap * tp_comm)
    assert off["breakdown_s"]["overlap_hidden"] == 0.0
    assert off["step_time_s"] - on["step_time_s"] == pytest.approx(default_calib().comm_overlap * tp_comm)
    with pytest.raises(TrainsimError, match="two_batch_overlap"):
        parse_serving({**doc, "serving": {**doc["serving"], "two_batch_overlap": "no"}})


def test_synchronous_host_loop_adds_per_sequence_time_by_hand(tiny):
    # vLLM issue #6801: sampling + input preparation + output processing + scheduling "when BS is 200, all this
    # together can be 20ms" -> 1e-4 s per running sequence per step, paid where the engine loop is synchronous.
    # Each data-parallel replica runs its own scheduler: 2 chips, tp 1 -> dp 2, a batch of 64 is 32 per scheduler,
    # so the round grows by 32 x 1e-4 = 3.2 ms on top of the fixed per-step overhead.
    from trainsim.inference.calib import default_calib
    from trainsim.inference.spec import parse_serving

    assert default_calib().sync_host_s_per_seq == pytest.approx(20e-3 / 200)
    system = chip_system({"bf16": 1e15})
    p = ServePlans(2, 1, 1, 1)
    t0, _ = step_time(ServeSetup(tiny, system, calib=ideal(step_overhead_s=1e-3)), p, 64, 512, "decode")
    t1, br = step_time(ServeSetup(tiny, system, calib=ideal(step_overhead_s=1e-3, seq_overhead_s=1e-4)), p, 64, 512,
                       "decode")
    assert float(t1) - float(t0) == pytest.approx(32 * 1e-4)
    assert float(br["step_overhead"]) == pytest.approx(1e-3 + 32 * 1e-4)
    # through a serving spec: host_overlap: false pays it in place of what an overlapping engine leaves exposed per
    # sequence (the fitted seq_overhead_s; one tp-8 replica: every sequence on one scheduler)
    doc = {"name": "t", "model": TINY, "system": "hgx-h800", "chips": 8, "plan": {"tp": 8, "pp": 1},
           "serving": {"phase": "decode", "input_len": 1024, "output_len": 256, "batch": 200}}
    on = infer_decode(parse_serving(doc))
    off = infer_decode(parse_serving({**doc, "serving": {**doc["serving"], "host_overlap": False}}))
    overlapped = default_calib().seq_overhead_s
    assert 0.0 <= overlapped < default_calib().sync_host_s_per_seq
    assert off["step_time_s"] - on["step_time_s"] == pytest.approx(20e-3 - 200 * overlapped)


def test_vllm_validation_points_run_one_batch_per_step():
    # vLLM runs each engine step as one batch: dual-batch overlap did not exist in the 2024 releases these points
    # ran and is still off unless --enable-dbo is given (vLLM v0.17.1 vllm/config/parallel.py
    # ParallelConfig.enable_dbo = False); no vLLM source here states it. So a vLLM spec with communication
    # (tp > 1) must say two_batch_overlap: false, and its tensor-parallel all-reduces are then paid in full:
    # the round is the sum of its parts with nothing hidden.
    from trainsim.inference.serve import infer
    from trainsim.inference.spec import load_serving

    checked = 0
    for path in sorted((REPO / "validation" / "inference").glob("*.yaml")):
        sv = load_serving(path)
        if "vllm" not in (sv.reported.stack or "").lower() or (sv.plan.tp or 1) == 1:
            continue
        assert sv.serving.two_batch_overlap is False, path.name
        d = infer(sv)["decode"]
        br = d["breakdown_s"]
        assert br["tp_comm"] > 0 and br["overlap_hidden"] == 0.0
        checked += 1
    assert checked == 6   # the six OCI MI300X Llama 3.1 405B points (TP8)
