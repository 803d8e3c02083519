#!/usr/bin/env python3
"""What-if, not applied: where the DeepSeek-V3 TP32 rollout decode shortfall could sit, with figures.

NVIDIA-NeMo/RL pull request 2779 (merged 2369c0aec, vLLM 0.20.0, Triton MoE) measured the colocated DeepSeek-V3
GRPO step on 256 H100 at 121.2 s, generation 57.4 s: ~40 ms per decode step over ~1,428 steps on vLLM TP32 servers
spanning 4 DGX H100, against the model's ~34 s (tests/test_rl_dsv3_split.py). This script

1. prints the model's decode step of that server (64 and 1 running sequences) part by part;
2. re-evaluates the RL table (validation/rl) under two readings of the shortfall, neither sourced:

   * ``--internode-extra-us X``: every tensor-parallel all-reduce whose group spans more than one scale-up domain
     costs X us more than NCCL's tuner prices it (perf/collectives.py, within 0.81-1.15x of nccl-tests at 16-32
     H100 ranks). X ~ 135-165 us would close PR 2779's 57.4 s and the 31.2 ms single-stream TPOT of DeepSeek-R1-0528
     on 16 H100 (tenstorrent/tt-inference-server issue 356, stack not stated) at once, but at 150 us it sends the
     Qwen3-235B rows that cross hosts to +38..+82% (vLLM TP16 over 2 H100 hosts, TP8 over 2 GB200 hosts of 4:
     188 all-reduces a step), which are -4..-16% as modelled (rl27; -13..-21% when first written). (The GB200
     DeepSeek-V3 TP32 servers cross hosts too: NeMo RL v0.6.0's rank order prices them as 8 hosts of 4,
     posttrain/placement.py.)
   * ``--narrow-expert-factor F --narrow-width N``: routed-expert GEMMs whose per-rank intermediate width
     (moe_intermediate / etp) is at most N take F x the model's time (the Triton fused-MoE streaming rate,
     inference.yaml expert_stream_eff, is measured at widths of 704 and more; DeepSeek-V3 at TP32 runs width 64,
     w2's K = 64). On one chip and kernel the rate falls with the width: vLLM pull request 45142 (H20-3e, FP8 block,
     E = 512, hidden 2,048, top-10, tuned) streams 471 hit experts at batch 128 in 360.1 us at width 256 (740.8 MB,
     2.06 TB/s) and 230.7 us at width 128 (370.4 MB, 1.61 TB/s): 0.78x for half the width. No BF16 Hopper time at
     width 64 was found.

It also prices issue 18's three leads for the DeepSeek-V3 rows (rl27), none applied:

3. ``--nccl-above-cap``: vLLM's custom all-reduce takes only world sizes 2, 4, 6 and 8 and messages up to 8 MiB
   (vllm/distributed/device_communicators/custom_all_reduce.py: ``CustomAllreduce._SUPPORTED_WORLD_SIZES = [2, 4, 6,
   8]``, ``max_size=8192 * 1024``; ``CudaCommunicator.all_reduce`` falls through to pynccl when
   ``should_custom_ar`` refuses). A TP32 (or TP16) server never runs it, so the DeepSeek-V3 servers are NCCL's at
   every size as modelled; on the TP <= 8 servers (Qwen3) the prefill all-reduces above 8 MiB (up to 4 GiB on the
   prefill grid) priced as NCCL's instead of the custom two-shot kernel move no RL row by 1 ms (RL table unchanged:
   median 12.4%, max 43.4%, 29 of 40 within 20%). Not worth modelling for RL; the caps between the custom kernel,
   symmetric memory and NCCL (vLLM all_reduce_utils.py ``CUSTOM_ALL_REDUCE_MAX_SIZES`` / ``SYMM_MEM_ALL_REDUCE_
   MAX_SIZES``) are a serving-prefill question.
4. The NCCL all-reduce at 32 ranks over InfiniBand (printed by every run: :func:`nccl_check`): the engine prices
   NCCL's tuner (ring / tree x LL / LL128 / Simple, perf/collectives.py) at +1% / -18% / -12% of nccl-tests' 16 B /
   64 KiB / 1 MiB all-reduces on 4 DGX H100 (34.8 / 50.8 / 82.2 us). Taking a decode step's 122 all-reduces (2 x
   61 layers) at the measured times instead adds ~0.2 ms a step at 1 running (14 KiB) and ~1.2 ms at 64 (0.9 MiB):
   1-2 s an RL step against the rows' 20-45 s shortfall.
5. ``--decode-step-extra-ms X`` / ``--implied``: a cost on every decode step of the DeepSeek-V3 servers (vLLM's Ray
   executor, the sampler, ...). Synchronous and one-step-off rows hold the same ~1,430 decode steps on their
   critical path (the longest sample, 1,536 - 108 tokens), yet the synchronous rows need +26 to +34 ms a decode step
   and the one-step-off rows +12 to +17 (H100) and +0.7 to +4.7 ms (GB200) (``--implied``). One cost cannot meet
   both: at +14 ms the H100 one-step-off rows land within 6% but the GB200 ones go to +22% / +30% and three
   synchronous rows stay past -20% (RL table: median 11.4%, max 29.6%, 34 of 40). The Ray executor's own overhead is
   two orders below, and it reads one worker's output a step, not 32 (vllm/v1/executor/ray_executor.py
   ``execute_model``: "Get output only from a single worker (output_rank)", ``refs[0].get()`` where no KV connector
   is set): Ray's compiled graphs, which that executor runs, measure ~30 us a single-actor call and ~130-140 us with
   an NCCL channel (ray-project/ray issue 45319), "less than 50us" in Ray's documentation (pull request 49115); the
   sampler's log-softmax over 128 x 129,280 FP32 logits reads and writes ~66 MB each way (~0.05 ms on H100).
   The one-step-off H100 rows' +12 to +17 ms agrees with pull request 2779's generation on the later stack (57.4 s
   against the model's 34.1 s over ~1,428 steps: +16 ms a step), while the GB200 one-step-off rows allow at most
   +4.7 ms: what decode misses is on the H100 servers (4 DGX H100 over InfiniBand), not in TP32 as such.
   What the rows do fit is a cost per RL step on the trainer's side (``--trainer-extra-s Y``: added to the update,
   so hidden in the one-step-off rows wherever their rollout chips stay the busier): +30 s puts all 12 DeepSeek-V3
   rows within 20% (RL table: median 10.1%, max 22.3%, 39 of 40). No source names such a cost, and
   tests/test_rl_dsv3_split.py bounds it on NeMo RL's later stack (pull request 2779: at most 28.8 s missing on the
   trainer side, 5.3 s outside generation in the colocated run), so if real it belongs to the v0.5 / v0.6 stacks.

Usage: python scripts/rl_tp32_decode_whatif.py [--internode-extra-us 150] [--narrow-expert-factor 2
--narrow-width 64] [--nccl-above-cap] [--decode-step-extra-ms 14] [--trainer-extra-s 30] [--implied]
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

import trainsim.inference.step as st
import trainsim.posttrain.phases as phases
import trainsim.posttrain.timeline as timeline
from trainsim.catalog.load import get_system
from trainsim.inference.calib import default_calib
from trainsim.perf.collectives import all_reduce_time
from trainsim.posttrain.phases import rollout_setup
from trainsim.posttrain.spec import load_posttrain
from trainsim.posttrain.validate import error_table, summary
from trainsim.yamlload import load_data

ROOT = Path(__file__).resolve().parents[1]
#: vLLM's custom all-reduce takes messages up to 8 MiB (``CustomAllreduce(..., max_size=8192 * 1024)``) and only
#: world sizes 2, 4, 6 and 8 (``_SUPPORTED_WORLD_SIZES``), vllm/distributed/device_communicators/custom_all_reduce.py
VLLM_CUSTOM_AR_MAX_BYTES = 8192 * 1024
_AR, _EXPERTS = st.tp_all_reduce_time, st._expert_gemms
_SETUP, _TRAIN = phases.rollout_setup, timeline.train_time
COLL_EFF = default_calib().coll_eff


def breakdown() -> None:
    pt = load_posttrain(ROOT / "validation" / "rl" / "nemo-rl-h100-dsv3-256-sync.yaml")
    s = rollout_setup(pt.student_arch, pt.clusters["main"].system, "bf16", host_overlap=False, numa_bound=False)
    p = st.ServePlans(32, 32, 1, 1)
    for n in (64.0, 1.0):
        rnd, br = st.step_time(s, p, n, 108 + 746.5 / 2, "decode")
        parts = ", ".join(f"{k} {float(np.ravel(v)[0]) * 1e3:.2f}" for k, v in br.items() if float(np.ravel(v)[0]))
        print(f"DeepSeek-V3 TP32 on 4 DGX H100, {n:.0f} running: {float(np.ravel(rnd)[0]) * 1e3:.2f} ms ({parts} ms)")


def nccl_check() -> None:
    """The engine's all-reduce against the nccl-tests all-reduces on 32 H100 (4 DGX H100, InfiniBand) in
    validation/collectives/nccl_tests.yaml, the rank count of a DeepSeek-V3 TP32 rollout server; a decode step's
    all-reduce is 2 x 7,168 x (sequences) bytes: 14 KiB at 1 running, 0.9 MiB at 64."""
    doc = load_data((ROOT / "validation" / "collectives" / "nccl_tests.yaml").read_text(encoding="utf-8"))
    h100 = get_system("dgx-h100")
    for p in doc["points"]:
        if p.get("system") == "dgx-h100" and p.get("ranks") == 32 and "time_us" in p and p["algo"] == "default":
            t = float(all_reduce_time(float(p["size_bytes"]), np.int64(32), np.int64(1), h100, COLL_EFF)) * 1e6
            print(f"nccl-tests all-reduce, 32 H100, {p['size_bytes']:>8,} B: measured {p['time_us']:6.2f} us, "
                  f"engine {t:6.2f} us ({t / p['time_us'] - 1:+.0%})")


def _dsv3(arch) -> bool:
    return arch.name.startswith("deepseek-v3")


def patch(internode_extra_us: float = 0.0, narrow_factor: float = 1.0, narrow_width: float = 64.0,
          nccl_above_cap: bool = False, decode_step_extra_ms: float = 0.0, trainer_extra_s: float = 0.0) -> None:
    """Apply the readings (module docstring) to the engine in this process and drop the phase cache."""
    extra, factor, width = internode_extra_us * 1e-6, narrow_factor, narrow_width
    st.tp_all_reduce_time, st._expert_gemms = _AR, _EXPERTS
    phases.rollout_setup, timeline.train_time = _SETUP, _TRAIN

    def all_reduce(s, size_bytes, n):
        nn = np.asarray(n, dtype=np.float64)
        t = _AR(s, size_bytes, n) + np.where(nn > s.system.scale_up_size, extra, 0.0)
        if nccl_above_cap:     # vLLM CustomAllreduce(max_size=8192 * 1024): above it, the library's all-reduce
            ni = nn.astype(np.int64)
            ring = all_reduce_time(size_bytes, ni, np.ones_like(ni), s.system, s.calib.coll_eff)
            t = np.where(np.asarray(size_bytes, dtype=np.float64) > VLLM_CUSTOM_AR_MAX_BYTES, ring, t)
        return t

    def experts(lk, s, p, T):
        t = _EXPERTS(lk, s, p, T)
        if lk.moe is None:
            return t
        inter = min(m.n if m.split == "col" else m.k for m in lk.matrices if m.group == "expert")
        return t * np.where(inter / np.asarray(p.etp, dtype=np.float64) <= width, factor, 1.0)

    def setup(arch, system, precision, host_overlap=True, numa_bound=True):
        s = _SETUP(arch, system, precision, host_overlap, numa_bound)
        if not _dsv3(arch) or not decode_step_extra_ms:
            return s
        return dataclasses.replace(s, calib=s.calib.with_(
            step_overhead_s=s.calib.step_overhead_s + decode_step_extra_ms * 1e-3))

    def train(arch, *a, **k):
        t = _TRAIN(arch, *a, **k)
        if not _dsv3(arch) or not trainer_extra_s:
            return t
        return dataclasses.replace(t, update_s=t.update_s + trainer_extra_s, step_s=t.step_s + trainer_extra_s)

    st.tp_all_reduce_time, st._expert_gemms = all_reduce, experts
    phases.rollout_setup, timeline.train_time = setup, train
    phases.clear_cache()


def implied() -> None:
    """Per DeepSeek-V3 row: the decode steps one RL step's critical path holds (the step's slope in a per-step cost)
    and the per-decode-step cost that would close the row, from the step at +0 and +5 ms a decode step."""
    probe_ms = 5.0
    patch()
    base = {r["name"]: r for r in error_table() if "dsv3" in r["file"]}
    patch(decode_step_extra_ms=probe_ms)
    for r in error_table():
        if r["name"] not in base:
            continue
        b = base[r["name"]]
        steps = (r["predicted"] - b["predicted"]) / (probe_ms * 1e-3)
        need_ms = (b["reported"] - b["predicted"]) / steps * 1e3
        print(f"{r['name']:42s} {b['mode']:5s} published {b['reported']:6.1f} s  predicted {b['predicted']:6.1f} s  "
              f"{b['error'] * 100:+6.1f}%  decode steps on the critical path {steps:5.0f}  closed by "
              f"{need_ms:+5.1f} ms a decode step")
    patch()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--internode-extra-us", type=float, default=0.0)
    ap.add_argument("--narrow-expert-factor", type=float, default=1.0)
    ap.add_argument("--narrow-width", type=float, default=64.0)
    ap.add_argument("--nccl-above-cap", action="store_true",
                    help="tensor-parallel all-reduces above vLLM's 8 MiB custom all-reduce cap priced as NCCL's")
    ap.add_argument("--decode-step-extra-ms", type=float, default=0.0,
                    help="a cost added to every decode step of the DeepSeek-V3 rollout servers")
    ap.add_argument("--trainer-extra-s", type=float, default=0.0,
                    help="a cost added to every RL step of the DeepSeek-V3 trainers (update)")
    ap.add_argument("--implied", action="store_true",
                    help="per DeepSeek-V3 row, the per-decode-step cost that would close it")
    a = ap.parse_args()
    breakdown()
    nccl_check()
    if a.implied:
        implied()
        return
    patch(a.internode_extra_us, a.narrow_expert_factor, a.narrow_width, a.nccl_above_cap, a.decode_step_extra_ms,
          a.trainer_extra_s)
    rows = error_table()
    for r in rows:
        if "dsv3" in r["name"] or "q235" in r["name"]:
            print(f"{r['name']:42s} published {r['reported']:6.1f} s  predicted {r['predicted']:6.1f} s  "
                  f"{r['error'] * 100:+6.1f}%  rollout {r['stages_s'].get('rollout', 0.0):6.1f} s")
    sm = summary(rows)
    print(f"RL table: median {sm['median_abs_error'] * 100:.1f}%, max {sm['max_abs_error'] * 100:.1f}%, mean signed "
          f"{sm['mean_signed_error'] * 100:+.1f}%, {sm['within_20pct']} of {sm['points']} within 20%")


if __name__ == "__main__":
    main()
