#!/usr/bin/env python3
"""What-if, not applied: the RL table with the MoE trainer's per-micro-batch shortfall that NeMo RL's published
per-phase timings measure added to every MoE trainer's log-prob and training passes.

Two published phase splits put the same missing time on each Megatron MoE micro-batch, nearly independent of its
tokens (README "Whole RL steps", tests/test_rl_phases.py, tests/test_rl_logprob_b200.py):

* NeMo RL v0.3 announcement (NVIDIA-NeMo blog, 2025-07-21), Qwen3-30B-A3B on 64 H100 (TP2 x EP8, 48 MoE layers):
  policy training 50 s over 64 packed micro-batches per rank, log-probs 23 s over 32 (tests/data/rl_phases/
  nemo-rl-v03-h100-q30-64-sync.yaml);
* NVIDIA-NeMo/RL pull request 3295, Qwen3-30B-A3B on 16 B200 (EP16): log-probs 87.5 s over 128 micro-batches per
  rank (tests/data/rl_phases/nemo-rl-pr3295-b200-q30-16-sync.yaml).

Each is read as seconds per MoE layer and micro-batch, (published - model) / (micro-batches per rank x MoE layers
per pipeline stage), forward-only (log-probs) and forward + backward (training), and added to every MoE trainer of
validation/rl at its own micro-batches per rank (NeMo RL's packer, posttrain/phases.py) and MoE layers per stage.
The step is then re-evaluated by the timeline (posttrain/timeline.py), so a one-step-off step is bound by
whichever chip group is busier. The readings are residuals of the model, not a mechanism: no source names the
per-layer cost yet, so nothing here enters the model. Usage: python scripts/rl_moe_trainer_whatif.py
[--logprob-source v03|pr3295] [--implied]

``--implied`` prints, for each MoE row whose step the trainer can set, the multiple of the reading (training and
log-prob rates scaled together) that makes the row's step equal its published one, with the row's chip and host
CPU: one chip-independent per-layer cost would give one multiple on x86 (H100) and Grace (GB200) hosts alike.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any

import trainsim.posttrain.timeline as timeline
from trainsim.model.arch import Arch
from trainsim.posttrain import phases
from trainsim.posttrain.phases import TrainTime
from trainsim.posttrain.spec import PostTrain, load_posttrain
from trainsim.posttrain.timeline import evaluate, trainer_time
from trainsim.posttrain.validate import stage_seconds

ROOT = Path(__file__).resolve().parents[1]
PHASES = ROOT / "tests" / "data" / "rl_phases"
#: (spec, published training s, published log-prob s): the blog's Qwen3-30B-A3B row; pull request 3295's phase
V03 = (PHASES / "nemo-rl-v03-h100-q30-64-sync.yaml", 50.0, 23.0)
PR3295 = (PHASES / "nemo-rl-pr3295-b200-q30-16-sync.yaml", None, 87.5)


def moe_layers(arch: Arch) -> int:
    return sum(lk.n_layers for lk in arch.layers if lk.moe is not None)


def per_rank_microbatches(pt: PostTrain) -> tuple[float, float, int]:
    """(training micro-batches, log-prob micro-batches over all passes, pipeline stages) per data-parallel rank of
    ``pt``'s trainer, as posttrain/phases.py's train_time packs them."""
    st, t = pt.step, trainer_time(pt)
    dp, pp = max(int(t.plan.get("dp", 1) or 1), 1), max(int(t.plan.get("pp", 1) or 1), 1)
    n_opt = max(int(st.optimizer_steps), 1)
    _, bins = phases.packed_sequences(-(-int(st.sequences) // n_opt), st.seq_len, st.pack_tokens, st.pad_multiple)
    if st.pack_tokens:
        bins = phases.bins_for_shards(bins, dp)
    _, lp = phases.logprob_microbatches(st.sequences, dp, st.seq_len, st.logprob_pack_tokens or st.pack_tokens,
                                        st.pad_multiple)
    return bins * n_opt / dp, lp / dp * st.extra_forward_passes, pp


def per_layer_reading(spec: Path, train_s: float | None, logprob_s: float) -> tuple[float | None, float]:
    """Seconds per MoE layer and micro-batch the published phases exceed the model by: (training, log-probs)."""
    pt = load_posttrain(spec)
    model = stage_seconds(evaluate(pt))
    tr_mb, lp_mb, pp = per_rank_microbatches(pt)
    layers = math.ceil(moe_layers(pt.student_arch) / pp)
    tr = None if train_s is None else (train_s - model["train"]) / (tr_mb * layers)
    return tr, (logprob_s - model["logprobs"]) / (lp_mb * layers)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logprob-source", choices=("v03", "pr3295"), default="v03",
                    help="whose log-prob reading to apply (training is the v0.3 blog's either way)")
    ap.add_argument("--implied", action="store_true",
                    help="print the multiple of the reading each trainer-bound MoE row needs to match its step")
    args = ap.parse_args(argv)
    src = args.logprob_source
    c_train, c_lp = per_layer_reading(*V03)
    if src == "pr3295":
        c_lp_b200 = per_layer_reading(*PR3295)[1]
        c_train, c_lp = c_train * c_lp_b200 / c_lp if c_train else c_train, c_lp_b200
    assert c_train is not None
    print(f"per MoE layer and micro-batch: training {1e3 * c_train:.2f} ms, log-probs {1e3 * c_lp:.2f} ms "
          f"(v0.3 blog{'; log-probs scaled to pull request 3295' if src == 'pr3295' else ''})")

    base = {p: evaluate(load_posttrain(p)) for p in sorted((ROOT / "validation" / "rl").glob("*.yaml"))}
    counts = {p: per_rank_microbatches(load_posttrain(p)) for p in base}
    orig = phases.train_time
    current: dict[str, Any] = {}

    def with_moe_cost(arch: Arch, *args: Any, **kwargs: Any) -> TrainTime:
        t = orig(arch, *args, **kwargs)
        if not arch.is_moe:
            return t
        tr_mb, lp_mb, pp = current["counts"]
        layers = math.ceil(moe_layers(arch) / pp)
        k = current.get("scale", 1.0)
        add_u, add_f = k * c_train * tr_mb * layers, k * c_lp * lp_mb * layers
        return dataclasses.replace(t, step_s=t.step_s + add_u + add_f, update_s=t.update_s + add_u,
                                   forward_s=t.forward_s + add_f)

    timeline.train_time = with_moe_cost  # type: ignore[attr-defined]  # the timeline's one call into the trainer
    if args.implied:
        try:
            implied(base, counts, current, (c_train, c_lp))
        finally:
            timeline.train_time = orig  # type: ignore[attr-defined]
        return
    try:
        print(f"{'run':44s} {'published':>9s} {'model':>7s} {'err':>6s} {'what-if':>8s} {'err':>6s}  bound")
        before, after = [], []
        for p, r0 in base.items():
            pt = load_posttrain(p)
            current["counts"] = counts[p]
            r1 = evaluate(pt)
            assert pt.reported is not None
            pub = pt.reported.step_time_s
            e0, e1 = r0["step_time_s"] / pub - 1, r1["step_time_s"] / pub - 1
            before.append(abs(e0))
            after.append(abs(e1))
            print(f"{pt.name[:44]:44s} {pub:9.1f} {r0['step_time_s']:7.1f} {100 * e0:+5.0f}% "
                  f"{r1['step_time_s']:8.1f} {100 * e1:+5.0f}%  {r1['bound_by']}")
    finally:
        timeline.train_time = orig  # type: ignore[attr-defined]
    for label, errs in (("model", before), ("what-if", after)):
        print(f"{label:8s} median |error| {100 * statistics.median(errs):.1f}%, max {100 * max(errs):.1f}%, "
              f"{sum(e <= 0.20 for e in errs)} of {len(errs)} within 20%")


def implied(base: dict[Path, Any], counts: dict[Path, tuple[float, float, int]],
            current: dict[str, Any], rates: tuple[float, float], hi: float = 8.0) -> None:
    """For each MoE row, the multiple k of ``rates`` (training, log-probs; s per MoE layer and micro-batch) at which
    the re-evaluated step equals the published one (bisection on [0, ``hi``]; the step grows with k); rows whose
    step stays below the published one at ``hi`` (their trainer does not set the step, or too little) and rows
    already slower than published at k = 0 are reported as such, and the multiples are summarised by model, mode
    and host CPU. A one-step-off row's multiple is the one at which its training chips, not its rollouts as
    modelled, set the step. ``current`` is the what-if hook's state (the row's
    micro-batch counts and the multiple in force)."""
    print(f"{'run':44s} {'chip':14s} {'host':6s} {'err k=0':>8s} {'k':>6s} {'train ms':>9s} {'lp ms':>6s}")
    ks: dict[str, list[float]] = {}
    for p, r0 in base.items():
        pt = load_posttrain(p)
        if not pt.student_arch.is_moe:
            continue
        assert pt.reported is not None
        pub = pt.reported.step_time_s
        chip = pt.clusters[pt.student.cluster].system.chip
        current["counts"] = counts[p]

        def step_at(k: float, spec: PostTrain = pt) -> float:
            current["scale"] = k
            return float(evaluate(spec)["step_time_s"])

        e0 = r0["step_time_s"] / pub - 1
        label = f"{pt.name[:44]:44s} {chip.id[:14]:14s} {str(chip.host_cpu or 'x86')[:6]:6s} {100 * e0:+7.0f}%"
        if e0 >= 0:
            print(f"{label} {'-':>6s}  (slower than published without it)")
            continue
        if step_at(hi) < pub:
            print(f"{label} {'>' + format(hi, 'g'):>6s}  (the trainer does not set the step)")
            continue
        lo, up = 0.0, hi
        for _ in range(30):
            mid = 0.5 * (lo + up)
            lo, up = (mid, up) if step_at(mid) < pub else (lo, mid)
        k = 0.5 * (lo + up)
        ks.setdefault(f"{pt.student.model} {pt.step.mode} on {chip.host_cpu or 'x86'} hosts", []).append(k)
        print(f"{label} {k:6.2f} {1e3 * k * rates[0]:9.2f} {1e3 * k * rates[1]:6.2f}")
    current["scale"] = 1.0
    for host, v in sorted(ks.items()):
        print(f"{host}: {len(v)} rows, multiple median {statistics.median(v):.2f} (min {min(v):.2f}, max {max(v):.2f})")


if __name__ == "__main__":
    main()
