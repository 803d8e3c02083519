"""MindSpeed's ``--swap-optimizer`` as a plan option of the MindSpeed profiles (framework_schedules.yaml
``swap_optimizer``; plan field ``swap_optimizer``; perf/memory.py ``swap_buffer_bytes``, perf/step.py
``swap_optimizer_time``).

What the source says, read by hand (Ascend/MindSpeed at 028de58c):

* mindspeed/features_manager/optimizer/swap_optimizer_feature.py: ``--swap-optimizer`` (store_true),
  ``--swap-optimizer-times`` (default 16, "Each swap will be moved (len(shard_fp32_from_float16) //
  swap_optimizer_times) elements"); refused without ``--use-distributed-optimizer`` (ZeRO-1).
* mindspeed/core/optimizer/swap_optimizer/swap_optimizer.py: the fp32 master shard and ``exp_avg`` / ``exp_avg_sq``
  (4 + 4 + 4 = 12 bytes per sharded parameter) get pinned host copies and their device storage resized to 0;
  ``swap_adamw_step`` loads whole parameters while they fit in ``swap_numel`` = shard // 16 elements (one larger
  than that alone), updates each parameter as its states arrive and stores them back; the next chunk waits for
  the stores. So between steps the device holds none of the 12 bytes, during the step one chunk; each chunk
  exposes its first load and its last update and store beside the loads (test_chunk_pipeline_by_hand).

``--virtual-optimizer`` (read at 028de58c, not offered: test_virtual_optimizer_is_not_offered) is another feature:
mindspeed/features_manager/optimizer/virtual_optimizer.py (added 52e4291e, 16 Apr 2025) patches MindSpeed's AdamW
step so that ``exp_avg`` / ``exp_avg_sq`` (8 B per parameter; the fp32 master stays in HBM) are allocated with
``torch_npu.empty_with_swapped_memory``, host memory mapped into the device's address space that the AdamW kernels
read and write in place (docs/zh/features/virtual-optimizer.md: no copies, no extra streams, the transfers inside
the kernels' own MTE pipeline), up to a budget in GB per pipeline stage (``'all'`` = 65 GB; virtual_adam.py
VirtualAllocator, parameter by parameter until the budget is spent). No MindSpeed-LLM script passes it
(``git grep virtual-optimizer`` at c77308a1: only the MindSpore README's feature table links its page) against 26
that pass ``--swap-optimizer``, and no source gives the rate at which an NPU kernel reaches host-mapped memory, so
the profiles do not offer it: unstated it is off, which is what the stack does.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import trainsim_cli, write_spec
from trainsim.emit import megatron_args
from trainsim.errors import TrainsimError
from trainsim.frameworks import profile, swap_optimizer_times, swap_optimizer_zero, with_defaults
from trainsim.parallel.enumerate import enumerate_space
from trainsim.plan_estimate import estimate_complete
from trainsim.search import search
from trainsim.spec import parse_run

# a dense model whose parameters are counted by hand (no biases, untied head, vocabulary 32,000 not padded:
# MindSpeed-LLM's --make-vocab-size-divisible-by 1, the profile's vocab_divisible_by):
#   embedding 32,000 x 1,024 = 32,768,000 and the output head the same: 65,536,000
#   per layer: qkv 1,024 x 3,072 = 3,145,728, proj 1,024 x 1,024 = 1,048,576, SwiGLU fc1 1,024 x 8,192 = 8,388,608,
#   fc2 4,096 x 1,024 = 4,194,304, two RMSNorms 2,048: 16,779,264; two layers 33,558,528; final norm 1,024
#   total P = 99,095,552
MODEL = {"name": "d", "layers": 2, "hidden": 1024, "heads": 8, "ffn": 4096, "ffn_act": "swiglu", "vocab": 32000}
P = 65_536_000 + 2 * 16_779_264 + 1_024
DP = 8
SHARD = P / DP                       # ZeRO-1 over dp 8 (tp = pp = cp = 1): 12,386,944 parameters per chip
STATE_BYTES = 4 + 4 + 4              # fp32 master + exp_avg + exp_avg_sq
TIMES = 16                           # --swap-optimizer-times default
# the 910C reaches host memory over the Unified Bus, not PCIe (hardware.yaml ascend-910c host_link_unidirectional_GBps):
# a CloudMatrix384 node's 4 Kunpeng sockets get ~160 GB/s of UB each for its 8 NPUs (arXiv 2506.12708 sec. 3.3.2),
# 4 x 160 / 8 = 80 GB/s each way per NPU, of which DMA copies reach host_link_eff 0.8 (constants.yaml): 64 GB/s
HOST_BW = 0.8 * 4 * 160e9 / 8
# a chip that states no host link of its own: the engine's PCIe figure, 50 GB/s (the hand cases below)
PCIE_BW = 50e9


def _spec(fw="mindspeed-2026", **plan):
    p = {"tp": 1, "pp": 1, "cp": 1, "ep": 1, "zero": 1, "recompute": "none", "micro_batch": 1, "schedule": "1f1b",
         "vpp": 1}
    p.update(plan)
    return {"model": MODEL, "system": "cloudmatrix-384", "chips": DP, "framework": fw,
            "training": {"seq_len": 4096, "global_batch_seqs": 64, "precision": "bf16"}, "plan": p}


def _run(fw="mindspeed-2026", **plan):
    return parse_run(_spec(fw, **plan))


def test_profiles_offer_it_at_zero_1_default_off_with_source():
    for fw in ("mindspeed-2025", "mindspeed-2026"):
        assert swap_optimizer_zero(fw) == (1,) and swap_optimizer_times(fw) == 16
        src = profile(fw)["swap_optimizer_source"]
        assert "swap_optimizer_feature.py" in src and "default 16" in src
        assert profile(fw)["defaults"]["swap_optimizer"] is False
        # estimate fills an unstated swap_optimizer with the stack's default: off
        plan, filled = with_defaults(_run(fw).plan.model_copy(update={"swap_optimizer": None}), fw)
        assert filled["swap_optimizer"] is False and plan.swap_optimizer is False
    # MindSpeed-LLM 1.0 (Sep 2024) predates it (Ascend/MindSpeed 4e93fbdc, 27 Mar 2025); Megatron-Core has no such flag
    for fw in ("mindspeed-2024", "megatron-core-2024", "megatron-bridge-2026", "torchtitan-2024"):
        assert swap_optimizer_zero(fw) == ()


def test_memory_and_time_by_hand():
    off = estimate_complete(_run(), _run().plan).to_dict()
    on_run = _run(swap_optimizer=True)
    on = estimate_complete(on_run, on_run.plan).to_dict()
    # weights in BF16 (2 bytes) on the one pipeline rank: the parameter count above
    assert off["memory_breakdown_bytes"]["weights"] == pytest.approx(2 * P, rel=1e-12)
    # resident optimizer states: 12 B x shard in HBM. Swapped: Megatron-Core's default bucket at dp 8 is
    # max(40,000,000, 8 x 1,000,000) = 40,000,000 parameters, so no piece of a rank's shard exceeds its 1/8 range,
    # 5,000,000: the 12,386,944-parameter shard is ceil(2.477) = 3 pieces of 4,128,981.33, each larger than
    # swap_numel = shard // 16 = 774,184, so each is loaded alone (swap_count <= 0): one piece is the chunk
    piece = SHARD / 3
    assert off["memory_breakdown_bytes"]["optimizer"] == pytest.approx(STATE_BYTES * SHARD, rel=1e-12)
    assert on["memory_breakdown_bytes"]["optimizer"] == pytest.approx(STATE_BYTES * piece, rel=1e-12)
    # the step: a piece's load, its update, its store, then the next piece (the next chunk waits for the stores);
    # the last store runs behind the next forward. 3 loads + 2 stores of 12 B x piece (49,547,776 B / 64 GB/s
    # = 0.774 ms each) = 5/3 of the one-way copy of the shard (2.323 ms), the same Adam (three thirds) as off
    copy_s = STATE_BYTES * SHARD / HOST_BW
    assert copy_s == pytest.approx(2.3225520e-3, rel=1e-7)
    assert on["breakdown"]["optimizer"] - off["breakdown"]["optimizer"] == pytest.approx(5 / 3 * copy_s, rel=1e-9)
    assert off["breakdown"]["optimizer"] < 0.1 * copy_s
    # not hidden under the forward / backward: the step grows by what the optimizer phase grows by
    grow = on["breakdown"]["optimizer"] - off["breakdown"]["optimizer"]
    assert on["step_time_s"] - off["step_time_s"] == pytest.approx(grow, rel=1e-9)
    assert on["plan"]["swap_optimizer"] is True and not off["plan"].get("swap_optimizer")
    # --emit mindspeed writes the flag beside the distributed optimizer
    assert "--use-distributed-optimizer --swap-optimizer" in " ".join(
        megatron_args(estimate_complete(on_run, on_run.plan), "mindspeed")[0])
    assert "--swap-optimizer" not in megatron_args(estimate_complete(_run(), _run().plan), "mindspeed")[0]


def test_a_profile_without_it_refuses_a_stated_swap_one_line_exit_2(tmp_path):
    spec = ("model: {name: d, layers: 2, hidden: 1024, heads: 8, ffn: 4096, ffn_act: swiglu, vocab: 32000}\n"
            "system: dgx-h100\nchips: 8\nframework: megatron-core-2024\n"
            "training: {seq_len: 4096, global_batch_seqs: 64, precision: bf16}\n"
            "plan: {tp: 1, pp: 1, cp: 1, ep: 1, zero: 1, recompute: none, micro_batch: 1, schedule: 1f1b, "
            "swap_optimizer: true}\n")
    r = trainsim_cli("estimate", str(write_spec(tmp_path, spec)))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "plan.swap_optimizer" in r.stderr and "megatron-core-2024" in r.stderr
    # the MindSpeed profiles refuse it only away from the distributed optimizer (zero 1)
    with pytest.raises(TrainsimError, match="only at zero 1"):
        estimate_complete(_run(zero=0, swap_optimizer=True), _run(zero=0, swap_optimizer=True).plan)
    with pytest.raises(TrainsimError, match="no swapped optimizer"):
        run = _run("mindspeed-2024", swap_optimizer=True)
        estimate_complete(run, run.plan)
    # nor with states it cannot swap: MindSpeed refuses --swap-optimizer with --reuse-fp32-param (fp32_remainder)
    run = parse_run({**_spec(swap_optimizer=True), "optimizer": {"master_weights": "fp32_remainder"}})
    for call in (lambda: estimate_complete(run, run.plan), lambda: search(run)):
        with pytest.raises(TrainsimError, match="reuse-fp32-param"):
            call()


def test_the_search_carries_it_on_the_zero_axis():
    run = _run()
    tr = run.training
    args = (run.arch, run.chips, tr.seq_len, tr.batch_seqs)
    plain, _ = enumerate_space(*args, domain=run.system.scale_up_size)
    swap, _ = enumerate_space(*args, domain=run.system.scale_up_size, swap_zero=(1,))
    # one more zero candidate (zero 1 swapped) beside 0, 1, 2, 3: the space grows by a quarter
    assert len(plain.zero) == 4 and list(swap.zero) == [0, 1, 2, 3, 1] and list(swap.swap) == [0, 0, 0, 0, 1]
    assert len(swap) * 4 == len(plain) * 5
    p = swap.plans()
    assert set(np.unique(p.zero[p.swap == 1])) == {1}
    # plan searches it where the profile offers it: mindspeed-2026's zero candidates 0, 1, 3 over dp and 3 inside a
    # scale-up domain (zero_shard_groups [3]), and 1 swapped: five plans for four; a plan that states it off is not
    # searched
    res = search(_run(swap_optimizer=None, zero=None))
    assert res.plans_evaluated * 4 == search(_run(swap_optimizer=False, zero=None)).plans_evaluated * 5


def _ctx_plans(dp, ep=1, edp=1, times=16):
    """A stand-in StepContext / Plans with only what the swap functions read: shard groups dp (dense), edp
    (expert), 12-byte states, a 50 GB/s host link."""
    from types import SimpleNamespace as NS
    a = lambda v: np.array([float(v)])   # noqa: E731
    p = NS(dp=a(dp), cp=a(1), ep=a(ep), zero=np.array([1]), swap=np.array([1]), expert_dp=a(edp))
    ctx = NS(swap_optimizer_times=times, host_link_bw=PCIE_BW, optimizer=NS(optimizer_bytes=STATE_BYTES),
             shard_ranks=lambda _p: a(dp))
    return ctx, p


def test_chunk_pipeline_by_hand():
    """Ascend/MindSpeed 028de58c swap_optimizer.py swap_adamw_step, worked by hand: per chunk a pipeline of loads
    (swap_to_device_stream), fused AdamW (compute stream, each waiting for its own load) and stores
    (swap_to_host_stream); a chunk's first load and its last update and store are exposed, the next chunk waits
    for every store, the last store of the step runs behind the next forward."""
    from trainsim.perf.memory import swap_buffer_bytes
    from trainsim.perf.step import swap_optimizer_time
    # dense only: 1,280,000,000 parameters at dp 8 (shard 160,000,000), bucket max(40e6, 8e6) = 40e6, range 5e6:
    # 32 pieces of 5,000,000; swap_numel = 10,000,000: two pieces per chunk, 16 chunks. Load / store of a piece
    # h = 12 x 5e6 / 50e9 = 1.2 ms; Adam of the whole shard 32 ms, 1 ms a piece (under h).
    ctx, p = _ctx_plans(dp=8)
    h, a = 1.2e-3, 1.0e-3
    # each chunk: load 1, load 2 (update 1, store 1 beside it), update 2, store 2 = 2h + a + h; 16 chunks, the
    # last store hidden: 16 x 4.6 ms - 1.2 ms = 72.4 ms, where the whole shard one way is 38.4 ms
    t = swap_optimizer_time(ctx, p, np.array([1.28e9]), np.array([0.0]), np.array([0.032]))
    assert t[0] == pytest.approx(16 * (3 * h + a) - h, rel=1e-12) and t[0] == pytest.approx(0.0724, rel=1e-12)
    # one chunk of two pieces on the device: 12 x 1e7 B
    assert swap_buffer_bytes(ctx, p, STATE_BYTES, np.array([1.28e9]), np.array([0.0]))[0] == pytest.approx(1.2e8)
    # --swap-optimizer-times 4 (DeepSeek-V3's 64 x 8 script): 8 pieces a chunk, 4 chunks of
    # h + 7 x h + a + h (loads bound the middle): 4 x 10.8 ms - 1.2 ms = 42 ms
    ctx4, _ = _ctx_plans(dp=8, times=4)
    t4 = swap_optimizer_time(ctx4, p, np.array([1.28e9]), np.array([0.0]), np.array([0.032]))
    assert t4[0] == pytest.approx(4 * (9 * h + a) - h, rel=1e-12)
    # dense then expert optimizer (Megatron-Core's ChainedOptimizer): experts 320,000,000 over edp 2, shard
    # 160,000,000 in pieces of 40e6 / 2 = 20e6 (8 pieces, h_e = 4.8 ms, a_e = 4 ms with Adam's rate of 0.2 ns a
    # parameter), swap_numel 10e6 < a piece: 8 chunks of one piece, 2 h_e + a_e each. The dense optimizer's last
    # store is waited for by the expert one's first chunk; only the expert's last store hides:
    ctx, p = _ctx_plans(dp=8, ep=4, edp=2)
    he, ae = 4.8e-3, 4.0e-3
    t = swap_optimizer_time(ctx, p, np.array([1.28e9]), np.array([3.2e8]), np.array([0.064]))
    assert t[0] == pytest.approx(16 * (3 * h + a) + 8 * (2 * he + ae) - he, rel=1e-12)
    # the chunk on the device: the larger optimizer's, one 20e6 expert piece: 12 x 2e7 B
    assert swap_buffer_bytes(ctx, p, STATE_BYTES, np.array([1.28e9]), np.array([3.2e8]))[0] == pytest.approx(2.4e8)
    # many small pieces per chunk tend to the one-way copy (the former model): dp 64, bucket 64e6, range 1e6, a
    # shard of 1.024e9 in 1,024 pieces of 1e6 (h = 0.24 ms), 64 per chunk; Adam 0.1 ms a piece:
    # 16 x (2h + a + 63 h) - h = 16 x 15.7 ms - 0.24 ms = 250.96 ms beside the one-way 245.76 ms
    ctx, p = _ctx_plans(dp=64)
    t = swap_optimizer_time(ctx, p, np.array([1.024e9 * 64]), np.array([0.0]), np.array([0.1024]))
    assert t[0] == pytest.approx(16 * (65 * 0.24e-3 + 0.1e-3) - 0.24e-3, rel=1e-12)
    assert t[0] == pytest.approx(0.25096, rel=1e-12)


def _tight_run(fw, over_bytes):
    """The dense model above on a chip of the engine's PCIe host link whose HBM is ``over_bytes`` short of the
    stated plan's need (the plan's memory measured on an 80 GiB chip: no part of it depends on the HBM size)."""
    def spec(hbm_gib):
        s = _spec(fw)
        s["system"] = {"chip": {"name": "tight", "vendor": "huawei", "bf16_tflops": 300, "hbm": f"{hbm_gib!r} GiB",
                                "hbm_bandwidth": "1.6 TB/s"},
                       "scale_up": {"size": 8, "bandwidth": "100 GB/s"}, "scale_out": {"bandwidth": "100 Gb/s"}}
        return parse_run(s)
    need = estimate_complete(spec(80.0), spec(80.0).plan).memory_per_chip_bytes
    return spec((need - over_bytes) / 2**30)


def test_fit_advice_names_the_swap_with_what_it_frees_and_costs():
    """A MindSpeed 2025 plan that misses HBM by 50 MB, less than the 12 B x shard - one chunk (99 MB) the swap
    moves off HBM: the advice names --swap-optimizer with that memory and the time it adds (the 5/3 one-way
    copies of test_memory_and_time_by_hand). A Megatron-Core profile has no such flag: not offered."""
    from trainsim.fit_advice import fit_advice
    run = _tight_run("mindspeed-2025", 50e6)
    est = estimate_complete(run, run.plan)
    assert not est.fits and est.memory_per_chip_bytes - run.system.chip.hbm_bytes == pytest.approx(50e6, rel=1e-6)
    rows = [r for r in fit_advice(run, est.plan) if "--swap-optimizer" in r["change"]]
    assert len(rows) == 1
    row = rows[0]
    frees = STATE_BYTES * SHARD - STATE_BYTES * SHARD / 3           # 148,643,328 - 49,547,776 = 99,095,552 B
    assert row["frees_bytes"] == pytest.approx(frees, rel=1e-12) and frees == pytest.approx(99_095_552)
    assert row["adds_step_time_s"] == pytest.approx(5 / 3 * STATE_BYTES * SHARD / PCIE_BW, rel=1e-9)
    assert "frees 0.1 GiB, +0.00495 s a step" in row["change"]
    assert row["plan"]["swap_optimizer"] is True and row["memory_per_chip_bytes"] <= run.system.chip.hbm_bytes
    # missing by more than the swap frees (150 MB): the swapped plan does not fit either, so it is not named
    run = _tight_run("mindspeed-2025", 150e6)
    assert not any("--swap-optimizer" in r["change"]
                   for r in fit_advice(run, estimate_complete(run, run.plan).plan))
    # Megatron-Core 2024: no --swap-optimizer (swap_optimizer_zero is empty); the other changes still advised
    run = _tight_run("megatron-core-2024", 50e6)
    rows = fit_advice(run, estimate_complete(run, run.plan).plan)
    assert rows and not any("swap" in r["change"] for r in rows)


def test_the_log_prob_plan_carries_it_and_its_forward_does_not_move():
    """RL log-prob passes run the trainer's completed plan forward only (posttrain/phases.py ``logprob_plan``):
    a swapped optimizer the trainer's plan has comes along, so the pass's plan is the trainer's (its memory the
    swapped one, 12 B x shard / 3 here, not 12 B x shard), and the forward-only time is the same either way
    (``forward_only_s`` leaves the optimizer out: MindSpeed swaps only inside the optimizer step)."""
    from trainsim.posttrain.phases import attn_bwd_ratio, forward_only_s, logprob_plan, trainer_run
    from trainsim.plan_estimate import context
    base = _run(swap_optimizer=True)
    est = estimate_complete(base, base.plan)
    lp = logprob_plan(None, est.plan)
    assert lp["swap_optimizer"] is True and lp["zero"] == 1 and lp["dp"] == DP
    runs = {s: trainer_run(base.arch, base.system, DP, 4096, 16, "bf16", {**lp, "swap_optimizer": s},
                           "mindspeed-2026", name="logprobs") for s in (True, False)}
    ests = {s: estimate_complete(r, r.plan) for s, r in runs.items()}
    assert ests[True].plan["swap_optimizer"] is True
    assert ests[True].memory["optimizer"] == pytest.approx(STATE_BYTES * SHARD / 3, rel=1e-12)
    assert ests[False].memory["optimizer"] == pytest.approx(STATE_BYTES * SHARD, rel=1e-12)
    fwd = {s: forward_only_s(e.breakdown, attn_bwd_ratio(context(runs[s]))) for s, e in ests.items()}
    assert fwd[True] == fwd[False] and ests[True].step_time_s > ests[False].step_time_s


def test_virtual_optimizer_is_not_offered():
    """--virtual-optimizer is recorded as read and not priced (module docstring): no profile offers it as a plan
    field, the MindSpeed 2026 profile's source names it, and a plan that states it is refused as an unknown key."""
    from trainsim.frameworks import frameworks
    assert all("virtual_optimizer" not in p for p in frameworks().values())
    assert "--virtual-optimizer" in profile("mindspeed-2026")["source"]
    with pytest.raises(TrainsimError, match="virtual_optimizer"):
        _run(virtual_optimizer=True)
