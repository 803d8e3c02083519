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
     Qwen3-235B rows to +33..+53% (vLLM TP16 over 2 H100 hosts, TP8 over 2 GB200 hosts of 4: 188 all-reduces a
     step), which are -13..-21% as modelled. (The GB200 DeepSeek-V3 TP32 servers cross hosts too: NeMo RL v0.6.0's
     rank order prices them as 8 hosts of 4, posttrain/placement.py.)
   * ``--narrow-expert-factor F --narrow-width N``: routed-expert GEMMs whose per-rank intermediate width
     (moe_intermediate / etp) is at most N take F x the model's time (the Triton fused-MoE streaming rate,
     inference.yaml expert_stream_eff, is measured at widths of 704 and more; DeepSeek-V3 at TP32 runs width 64,
     w2's K = 64). On one chip and kernel the rate falls with the width: vLLM pull request 45142 (H20-3e, FP8 block,
     E = 512, hidden 2,048, top-10, tuned) streams 471 hit experts at batch 128 in 360.1 us at width 256 (740.8 MB,
     2.06 TB/s) and 230.7 us at width 128 (370.4 MB, 1.61 TB/s): 0.78x for half the width. No BF16 Hopper time at
     width 64 was found.

Usage: python scripts/rl_tp32_decode_whatif.py [--internode-extra-us 150] [--narrow-expert-factor 2
--narrow-width 64]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import trainsim.inference.step as st
from trainsim.posttrain.phases import rollout_setup
from trainsim.posttrain.spec import load_posttrain
from trainsim.posttrain.validate import error_table, summary

ROOT = Path(__file__).resolve().parents[1]


def breakdown() -> None:
    pt = load_posttrain(ROOT / "validation" / "rl" / "nemo-rl-h100-dsv3-256-sync.yaml")
    s = rollout_setup(pt.student_arch, pt.clusters["main"].system, "bf16", host_overlap=False, numa_bound=False)
    p = st.ServePlans(32, 32, 1, 1)
    for n in (64.0, 1.0):
        rnd, br = st.step_time(s, p, n, 108 + 746.5 / 2, "decode")
        parts = ", ".join(f"{k} {float(np.ravel(v)[0]) * 1e3:.2f}" for k, v in br.items() if float(np.ravel(v)[0]))
        print(f"DeepSeek-V3 TP32 on 4 DGX H100, {n:.0f} running: {float(np.ravel(rnd)[0]) * 1e3:.2f} ms ({parts} ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--internode-extra-us", type=float, default=0.0)
    ap.add_argument("--narrow-expert-factor", type=float, default=1.0)
    ap.add_argument("--narrow-width", type=float, default=64.0)
    a = ap.parse_args()
    breakdown()
    extra, factor, width = a.internode_extra_us * 1e-6, a.narrow_expert_factor, a.narrow_width
    ar, ex = st.tp_all_reduce_time, st._expert_gemms

    def all_reduce(s, size_bytes, n):
        return ar(s, size_bytes, n) + np.where(np.asarray(n, dtype=np.float64) > s.system.scale_up_size, extra, 0.0)

    def experts(lk, s, p, T):
        t = ex(lk, s, p, T)
        if lk.moe is None:
            return t
        inter = min(m.n if m.split == "col" else m.k for m in lk.matrices if m.group == "expert")
        return t * np.where(inter / np.asarray(p.etp, dtype=np.float64) <= width, factor, 1.0)

    st.tp_all_reduce_time, st._expert_gemms = all_reduce, experts
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
