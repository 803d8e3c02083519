#!/usr/bin/env python3
"""The RL table with and without NeMo RL's measured MoE trainer-loop cost (``student.train_loop:
nemo-rl-megatron``, trainsim/posttrain/data/train_loops.yaml; :func:`trainsim.posttrain.phases.train_loop_cost`),
and the two published phase splits it is read from.

Two published phase splits put the same missing time on each Megatron MoE micro-batch, nearly independent of its
tokens (README "Whole RL steps", tests/test_rl_phases.py, tests/test_rl_logprob_b200.py):

* NeMo RL v0.3 announcement (NVIDIA-NeMo blog, 2025-07-21), Qwen3-30B-A3B on 64 H100 (TP2 x EP8, 48 MoE layers):
  policy training 50 s over 64 packed micro-batches per rank, log-probs 23 s over 32 (tests/data/rl_phases/
  nemo-rl-v03-h100-q30-64-sync.yaml);
* NVIDIA-NeMo/RL pull request 3295, Qwen3-30B-A3B on 16 B200 (EP16): log-probs 87.5 s over 128 micro-batches per
  rank (tests/data/rl_phases/nemo-rl-pr3295-b200-q30-16-sync.yaml).

Each is read as seconds per MoE layer and micro-batch, (published - model without the cost) / (micro-batches per
rank x MoE layers per pipeline stage), forward-only (log-probs) and forward + backward (training); the data file
holds the pull request 3295 reading (log-probs) and the v0.3 training reading scaled by the two log-prob readings'
ratio as its value, the v0.3 readings as its high end. The script prints the readings the engine gives now beside
the data file's values, then every row of validation/rl without the cost and as modelled (the timeline re-evaluated,
so a one-step-off step is bound by whichever chip group is busier). Usage: python scripts/rl_moe_trainer_whatif.py
[--logprob-source pr3295|v03] [--implied]; ``v03`` applies the high end (the v0.3 readings) instead of the value.

``--implied`` prints, for each MoE row whose step the trainer can set, the multiple of the v0.3 reading (training
and log-prob rates scaled together) that makes the row's step equal its published one, with the row's chip and host
CPU: one chip-independent per-layer cost gives one multiple on x86 (H100) and Grace (GB200) hosts alike.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
from pathlib import Path
from typing import Iterator

import trainsim.posttrain.phases as phases
from trainsim.posttrain.loops import TrainLoopCost, moe_layers_per_stage, train_loop_cost
from trainsim.posttrain.spec import PostTrain, load_posttrain
from trainsim.posttrain.timeline import evaluate, trainer_time
from trainsim.posttrain.validate import stage_seconds

ROOT = Path(__file__).resolve().parents[1]
PHASES = ROOT / "tests" / "data" / "rl_phases"
#: (spec, published training s, published log-prob s): the blog's Qwen3-30B-A3B row; pull request 3295's phase
V03 = (PHASES / "nemo-rl-v03-h100-q30-64-sync.yaml", 50.0, 23.0)
PR3295 = (PHASES / "nemo-rl-pr3295-b200-q30-16-sync.yaml", None, 87.5)
LOOP = "nemo-rl-megatron"


@contextlib.contextmanager
def loop_cost(train_s: float, logprob_s: float) -> Iterator[None]:
    """The model with the NeMo RL loop's per-layer costs set to ``train_s`` / ``logprob_s`` (0, 0: without it).
    The trainer's dp search counts the loop cost (phases._fastest_dp) and train_time caches its result, so the cache
    is cleared on entry and exit."""
    orig = phases.train_loop_cost
    phases._CACHE.clear()

    def patched(loop: str | None) -> TrainLoopCost | None:
        c = orig(loop)
        return None if c is None else dataclasses.replace(c, moe_layer_train_s=train_s, moe_layer_logprob_s=logprob_s)

    phases.train_loop_cost = patched  # type: ignore[assignment]
    try:
        yield
    finally:
        phases.train_loop_cost = orig  # type: ignore[assignment]
        phases._CACHE.clear()


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
    """Seconds per MoE layer and micro-batch the published phases exceed the model without the loop cost by:
    (training, log-probs)."""
    pt = load_posttrain(spec)
    with loop_cost(0.0, 0.0):
        model = stage_seconds(evaluate(pt))
    tr_mb, lp_mb, pp = per_rank_microbatches(pt)
    layers = moe_layers_per_stage(pt.student_arch, pp)
    tr = None if train_s is None else (train_s - model["train"]) / (tr_mb * layers)
    return tr, (logprob_s - model["logprobs"]) / (lp_mb * layers)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logprob-source", choices=("v03", "pr3295"), default="pr3295",
                    help="pr3295: the data file's value (pull request 3295's log-prob reading); v03: its high end")
    ap.add_argument("--implied", action="store_true",
                    help="print the multiple of the v0.3 reading each trainer-bound MoE row needs to match its step")
    args = ap.parse_args(argv)
    cost = train_loop_cost(LOOP)
    assert cost is not None
    v03_tr, v03_lp = per_layer_reading(*V03)
    pr_lp = per_layer_reading(*PR3295)[1]
    assert v03_tr is not None
    print(f"per MoE layer and micro-batch ({LOOP}): training {1e3 * cost.moe_layer_train_s:.2f} ms, log-probs "
          f"{1e3 * cost.moe_layer_logprob_s:.2f} ms (high end {1e3 * cost.train_range_s[1]:.2f} / "
          f"{1e3 * cost.logprob_range_s[1]:.2f}); readings now: v0.3 blog training {1e3 * v03_tr:.2f} ms, log-probs "
          f"{1e3 * v03_lp:.2f} ms; pull request 3295 log-probs {1e3 * pr_lp:.2f} ms (training scaled: "
          f"{1e3 * v03_tr * pr_lp / v03_lp:.2f} ms)")
    high = (cost.train_range_s[1], cost.logprob_range_s[1])
    if args.implied:
        implied(high)
        return
    applied = high if args.logprob_source == "v03" else (cost.moe_layer_train_s, cost.moe_layer_logprob_s)
    paths = sorted((ROOT / "validation" / "rl").glob("*.yaml"))
    with loop_cost(0.0, 0.0):
        base = {p: evaluate(load_posttrain(p)) for p in paths}
    print(f"{'run':44s} {'published':>9s} {'without':>7s} {'err':>6s} {'model':>8s} {'err':>6s}  bound")
    before, after = [], []
    with loop_cost(*applied):
        for p, r0 in base.items():
            pt = load_posttrain(p)
            r1 = evaluate(pt)
            assert pt.reported is not None
            pub = pt.reported.step_time_s
            e0, e1 = r0["step_time_s"] / pub - 1, r1["step_time_s"] / pub - 1
            before.append(abs(e0))
            after.append(abs(e1))
            print(f"{pt.name[:44]:44s} {pub:9.1f} {r0['step_time_s']:7.1f} {100 * e0:+5.0f}% "
                  f"{r1['step_time_s']:8.1f} {100 * e1:+5.0f}%  {r1['bound_by']}")
    for label, errs in (("without", before), ("model", after)):
        print(f"{label:8s} median |error| {100 * statistics.median(errs):.1f}%, max {100 * max(errs):.1f}%, "
              f"{sum(e <= 0.20 for e in errs)} of {len(errs)} within 20%")


def implied(rates: tuple[float, float], hi: float = 8.0) -> None:
    """For each MoE row, the multiple k of ``rates`` (training, log-probs; s per MoE layer and micro-batch, the v0.3
    readings) at which the re-evaluated step equals the published one (bisection on [0, ``hi``]; the step grows with
    k); rows whose step stays below the published one at ``hi`` (their trainer does not set the step, or too little)
    and rows already slower than published at k = 0 are reported as such, and the multiples are summarised by model,
    mode and host CPU. A one-step-off row's multiple is the one at which its training chips, not its rollouts as
    modelled, set the step."""
    print(f"{'run':44s} {'chip':14s} {'host':6s} {'err k=0':>8s} {'k':>6s} {'train ms':>9s} {'lp ms':>6s}")
    ks: dict[str, list[float]] = {}
    for p in sorted((ROOT / "validation" / "rl").glob("*.yaml")):
        pt = load_posttrain(p)
        if not pt.student_arch.is_moe:
            continue
        assert pt.reported is not None
        pub = pt.reported.step_time_s
        chip = pt.clusters[pt.student.cluster].system.chip

        def step_at(k: float, spec: PostTrain = pt) -> float:
            with loop_cost(k * rates[0], k * rates[1]):
                return float(evaluate(spec)["step_time_s"])

        e0 = step_at(0.0) / pub - 1
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
    for host, v in sorted(ks.items()):
        print(f"{host}: {len(v)} rows, multiple median {statistics.median(v):.2f} (min {min(v):.2f}, max {max(v):.2f})")


if __name__ == "__main__":
    main()
