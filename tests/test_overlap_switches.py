"""The communication-overlap switches of the run spec (training.tp_comm_overlap, training.moe_a2a_overlap) and
their stack defaults (issue 14: overlap as fractions that depend on the framework and schedule)."""
from __future__ import annotations

import math

import pytest
import yaml

from conftest import T70B_TP8_SPEC
from trainsim.api import estimate, parse_run
from trainsim.perf.calibration import Calib

SPEC = T70B_TP8_SPEC.replace("{zero}", "1").replace("{recompute}", "full")


def _est(fw: str, extra: str = ""):
    return estimate(parse_run(yaml.safe_load(SPEC.format(fw=fw, extra=extra))))


def test_tp_overlap_hides_three_quarters_when_the_gemms_are_longer():
    off = _est("megatron-core-2024")                        # Megatron-LM's argument default: off
    on = _est("megatron-core-2024", ", tp_comm_overlap: true")
    # exposed = comm - f x min(comm, gemm); at tp 8 on NVLink the TP traffic of a 70B layer is shorter than its
    # GEMMs, so exposed = (1 - f) comm with f = tp_overlap_userbuffers = 0.75 (0 when off)
    f = Calib.defaults().tp_overlap_userbuffers
    assert f == 0.75
    assert on.breakdown["tp_comm"] == pytest.approx((1.0 - f) * off.breakdown["tp_comm"], rel=1e-9)
    assert on.step_time_s < off.step_time_s


def test_stack_default_and_explicit_override():
    # Megatron-Bridge's performance recipes pass CommOverlapConfig(tp_comm_overlap=True)
    bridge = _est("megatron-bridge-2026")
    stated_off = _est("megatron-bridge-2026", ", tp_comm_overlap: false")
    assert bridge.breakdown["tp_comm"] == pytest.approx(0.25 * stated_off.breakdown["tp_comm"], rel=1e-9)


def test_bad_value_is_one_line():
    from trainsim.errors import TrainsimError

    with pytest.raises(TrainsimError) as e:
        parse_run(yaml.safe_load(SPEC.format(fw="megatron-core-2024", extra=", tp_comm_overlap: maybe")))
    assert "tp_comm_overlap" in str(e.value) and "\n" not in str(e.value)


MOE = """
name: dispatcher
framework: megatron-bridge-2026
model: qwen3-30b-a3b
system: dgx-h100
chips: 16
training: {{seq_len: 4096, global_batch_seqs: 64, precision: bf16, moe_dispatcher: {d}}}
plan: {{tp: 1, pp: 1, vpp: 1, cp: 1, ep: 16, etp: 1, zero: 1, recompute: none, micro_batch: 4, schedule: 1f1b}}
"""


def test_node_aware_dispatcher_sends_a_token_once_per_node():
    # EP 16 over two 8-GPU nodes, top-8 routing. All-to-all: 8 copies per token, half of them to the other node
    # -> 4 copies over InfiniBand. DeepEP / HybridEP: one copy per remote node hit; a token hits
    # 2 (1 - (1/2)^8) = 1.992 of the 2 nodes, half of them remote -> 0.996 copies. InfiniBand (50 GB/s) is the
    # slow level in both, so the all-to-all time falls to 0.996 / 4 = 0.249 of the plain one (launch and
    # latency terms, microseconds, aside).
    plain = estimate(parse_run(yaml.safe_load(MOE.format(d="alltoall"))))
    dedup = estimate(parse_run(yaml.safe_load(MOE.format(d="deepep"))))
    ratio = dedup.breakdown["ep_alltoall"] / plain.breakdown["ep_alltoall"]
    assert ratio == pytest.approx(0.996 / 4.0, abs=0.02)


def test_moe_host_sync_per_layer_and_microbatch_unless_full_cuda_graphs():
    from trainsim.perf.calibration import calib_for

    none = estimate(parse_run(yaml.safe_load(MOE.format(d="alltoall").replace(
        "moe_dispatcher: alltoall", "moe_dispatcher: alltoall, cuda_graphs: none"))))
    full = estimate(parse_run(yaml.safe_load(MOE.format(d="alltoall").replace(
        "moe_dispatcher: alltoall", "moe_dispatcher: alltoall, cuda_graphs: full"))))
    h = calib_for("nvidia-hopper", framework="megatron-bridge-2026").moe_layer_host_s
    assert 0.0 < h < 0.02
    # Qwen3-30B-A3B: 48 MoE layers, pp 1; batch 64 / (dp 16 x micro-batch 4) = 1 micro-batch per step
    assert none.breakdown["host"] == pytest.approx(48 * 1 * h, rel=1e-9)
    assert full.breakdown["host"] == 0.0
    assert none.step_time_s - full.step_time_s == pytest.approx(48 * h, rel=1e-6)


def test_recompute_of_a_moe_layer_repeats_its_host_sync():
    # full recompute reruns the layer forward in the backward (Megatron-Core CheckpointFunction.backward calls
    # run_function again), so the dispatcher's device-to-host sync recurs: the forward's share of the 48 layers x 1
    # micro-batch x h per step once more, in the recompute column. The share is all of it: the dispatcher syncs
    # only in forward methods (token_dispatcher.py _maybe_dtoh_and_synchronize, Megatron-LM 0d8e0714), so 48 h;
    # with whole-iteration CUDA graphs there is no sync to repeat. Selective recompute of the default modules (core_attn) does not rerun the MoE layer: nothing;
    # of the 'moe' module (moe_layer.py checkpoints router, dispatch, experts and combine) the same 48 h again.
    from trainsim.perf.calibration import calib_for

    h = calib_for("nvidia-hopper", framework="megatron-bridge-2026").moe_layer_host_s

    def run(recompute, graphs="none", modules=None):
        spec = MOE.format(d="alltoall").replace("moe_dispatcher: alltoall",
                                                f"moe_dispatcher: alltoall, cuda_graphs: {graphs}")
        spec = spec.replace("recompute: none", f"recompute: {recompute}" + (
            f", recompute_modules: [{modules}]" if modules else ""))
        return estimate(parse_run(yaml.safe_load(spec)))

    full, full_g = run("full"), run("full", graphs="full")
    assert full.breakdown["host"] == pytest.approx(48 * h, rel=1e-9)
    assert full.breakdown["recompute"] - full_g.breakdown["recompute"] == pytest.approx(48 * h, rel=1e-6)
    sel, sel_g = run("selective"), run("selective", graphs="full")
    assert sel.breakdown["recompute"] == pytest.approx(sel_g.breakdown["recompute"], rel=1e-12)
    moe, moe_g = run("selective", modules="moe"), run("selective", graphs="full", modules="moe")
    assert moe.breakdown["recompute"] - moe_g.breakdown["recompute"] == pytest.approx(48 * h, rel=1e-6)


def test_token_drop_with_padding_has_no_moe_host_sync():
    # Megatron-Core's alltoall dispatcher under drop-and-pad (moe_pad_expert_input_to_capacity) knows every split
    # on the host (each expert gets its capacity) and never synchronises: the 48 layers x 1 micro-batch x h of the
    # dropless run disappear; nothing else changes (the compute is the same balanced token count)
    from trainsim.perf.calibration import calib_for

    spec = MOE.format(d="alltoall")
    dropless = estimate(parse_run(yaml.safe_load(spec)))
    stated = estimate(parse_run(yaml.safe_load(spec.replace("moe_dispatcher: alltoall",
                                                            "moe_dispatcher: alltoall, moe_token_drop: false"))))
    drop = estimate(parse_run(yaml.safe_load(spec.replace("moe_dispatcher: alltoall",
                                                          "moe_dispatcher: alltoall, moe_token_drop: true"))))
    h = calib_for("nvidia-hopper", framework="megatron-bridge-2026").moe_layer_host_s
    assert dropless.breakdown["host"] == pytest.approx(48 * h, rel=1e-9)   # unset = dropless
    assert stated.step_time_s == dropless.step_time_s
    assert drop.breakdown["host"] == 0.0
    assert dropless.step_time_s - drop.step_time_s == pytest.approx(48 * h, rel=1e-6)


def test_token_drop_bad_value_is_one_line():
    from trainsim.errors import TrainsimError

    with pytest.raises(TrainsimError) as e:
        parse_run(yaml.safe_load(MOE.format(d="alltoall").replace("moe_dispatcher: alltoall",
                                                                  "moe_token_drop: sometimes")))
    assert "moe_token_drop" in str(e.value) and "\n" not in str(e.value)
    # Megatron-Core rejects padding to capacity with the DeepEP backend; so does the spec
    with pytest.raises(TrainsimError) as e:
        parse_run(yaml.safe_load(MOE.format(d="deepep").replace("moe_dispatcher: deepep",
                                                                "moe_dispatcher: deepep, moe_token_drop: true")))
    assert "deepep" in str(e.value) and "\n" not in str(e.value)
    parse_run(yaml.safe_load(MOE.format(d="hybridep").replace("moe_dispatcher: hybridep",
                                                              "moe_dispatcher: hybridep, moe_token_drop: true")))


def test_node_aware_dispatch_pays_an_oversubscribed_scale_out():
    # the deduplicated dispatch goes through the same topology rule as a plain all-to-all: a scale-out Clos with
    # blocks of one 8-GPU node and 4:1 uplinks; EP 16 over two nodes sends half its members' traffic out of the
    # block (1 - 8/16 = 0.5), at a quarter of the rate: max(1, 0.5 x 4) = 2x the InfiniBand-bound time
    spec = MOE.format(d="deepep")
    flat = estimate(parse_run(yaml.safe_load(spec)))
    clos = estimate(parse_run(yaml.safe_load(spec.replace(
        "system: dgx-h100", "system: {base: dgx-h100, scale_out: {topology: 'clos 4:1 above 8'}}"))))
    assert clos.breakdown["ep_alltoall"] / flat.breakdown["ep_alltoall"] == pytest.approx(2.0, rel=0.02)


def test_node_aware_dispatcher_sends_a_token_once_per_rank_inside_a_node():
    # EP 8 inside one 8-GPU node, top-8 routing over 128 experts (16 per rank). Megatron's permutation sends one
    # copy per routed expert (8; node-limited routing to 1 node keeps it on the same two-level path); DeepEP's
    # dispatch layout sends a token once to each rank holding any of its 8 distinct experts:
    # 8 (1 - C(112, 8) / C(128, 8)) = 5.339 ranks, and its combine returns one sum per rank. NVLink bytes, hence
    # time (microsecond latency terms aside), fall to 5.339 / 8 = 0.667.
    spec = MOE.replace("chips: 16", "chips: 8").replace("ep: 16", "ep: 8")
    per_expert = estimate(parse_run(yaml.safe_load(spec.format(d="alltoall").replace(
        "schedule: 1f1b}", "schedule: 1f1b, node_limit: 1}"))))
    per_rank = estimate(parse_run(yaml.safe_load(spec.format(d="deepep"))))
    ratio = per_rank.breakdown["ep_alltoall"] / per_expert.breakdown["ep_alltoall"]
    assert ratio == pytest.approx((1 - math.comb(112, 8) / math.comb(128, 8)), abs=0.01)
