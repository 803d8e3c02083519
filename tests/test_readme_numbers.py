"""Every number a reader sees is generated: the README *prose* that quotes a trainsim output (a prediction, an error,
a count of runs) outside the generated blocks is recomputed here, so a model change that moves one fails this file
until the README is updated (the generated blocks themselves: tests/test_readme_generated.py, test_accuracy.py,
test_scenarios.py, test_inference.py, test_rl_step.py). Each test rebuilds the figure the way the prose describes it
and looks for the exact wording (whitespace folded, since the prose is wrapped). `python tests/test_readme_numbers.py`
prints every fragment as the model gives it now, to paste into the README after a model change.

Source facts stay out of this file: a paper's or a table's published figure (NeMo RL's step times, torchtitan's
published peaks, the 1.8 GB/s pageable copy rate of NeMo RL issue 3976) is quoted, not computed."""
from __future__ import annotations

import re
import statistics
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    # run as a script, sys.path[0] is tests/, not the repository: without this the environment's installed trainsim
    # (an editable install of another checkout) computed the fragments, not the one beside this file (qa30c)
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from conftest import load_module  # noqa: E402

RL = ROOT / "validation" / "rl"


@lru_cache(maxsize=1)
def readme() -> str:
    """README.md with every run of whitespace folded to one space (prose is wrapped at any word)."""
    return " ".join((ROOT / "README.md").read_text().split())


def section(tag: str) -> str:
    text = (ROOT / "README.md").read_text()
    for a, b in ((f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"), (f"<!-- {tag}:start -->", f"<!-- {tag}:end -->")):
        if a in text:
            return text.split(a, 1)[1].split(b, 1)[0]
    raise AssertionError(f"README has no {tag} block")


def assert_in_readme(fragment: str) -> None:
    assert fragment in readme(), (f"README prose is stale: expected the fragment {fragment!r} (the model's figure "
                                  f"now); update the README, see `python tests/test_readme_numbers.py`")


def pct(x: float) -> str:
    return f"{x * 100:+.0f}%"


def span(values) -> str:
    """A range of errors as the README writes it: the two extremes, the smaller magnitude first."""
    a, b = sorted((min(values), max(values)), key=abs)
    return f"{pct(a)} to {pct(b)}"


# --- torchtitan peak memory: the two named gaps (README "Memory" bullet) ------------------------------------------

def _memory_module():
    return load_module("_tt_memory", ROOT / "tests" / "test_memory_published.py")


def torchtitan_gap_fragment() -> str:
    """'405B 1F1B -x%, CP 8 -y%': predicted / published - 1 of the two torchtitan rows outside 10%, each row's
    inputs and published peak as tests/test_memory_published.py states them (torchtitan Dec-2024 Tables 5, 6)."""
    from trainsim.estimate import estimate
    from trainsim.spec import parse_run
    mod = _memory_module()
    rows = {r[0]: r for r in mod.TORCHTITAN_MEMORY}
    err = {}
    for label in ("T5 405B 1F1B", "T6 405B FSDP1 CP8 256K"):
        _, model, chips, seq, gbs, precision, plan, published_gib = rows[label]
        est = estimate(parse_run(mod._tt_spec(model, chips, seq, gbs, precision, plan)), advise=False)
        err[label] = est.memory_per_chip_bytes / 2**30 / published_gib - 1.0
    assert set(mod.TORCHTITAN_MEMORY_GAPS) == set(err), "the named gaps changed: the README sentence lists them"
    return (f"rows outside 10% (405B 1F1B {err['T5 405B 1F1B'] * 100:.1f}%, "
            f"CP 8 {err['T6 405B FSDP1 CP8 256K'] * 100:.1f}%)")


def test_torchtitan_memory_gaps_quoted_as_predicted():
    assert_in_readme(torchtitan_gap_fragment())


# --- whole RL steps (README "Whole RL steps" section) ------------------------------------------------------------

def v06_paths() -> list[Path]:
    """The v0.6 table's specs, the rows the RL prose below is about (the v0.5 and v0.4 rows, nemo-rl-v05-* and
    nemo-rl-v04-*, have their own README bullets and the generated table)."""
    return sorted(p for p in RL.glob("*.yaml") if not p.name.startswith(("nemo-rl-v05-", "nemo-rl-v04-")))


@lru_cache(maxsize=1)
def rl_rows() -> dict:
    from trainsim.posttrain.phases import clear_cache
    from trainsim.posttrain.validate import error_table
    clear_cache()
    return {r["file"]: r for r in error_table(v06_paths())}


def _trainer(name: str):
    from trainsim.posttrain.spec import load_posttrain
    from trainsim.posttrain.timeline import trainer_time
    return trainer_time(load_posttrain(RL / f"{name}.yaml"))


# each list of fragments that a parametrized test reads one item of is built once per session (lru_cache): the
# figures are pure functions of the repository's files, which a test run does not change; the tests only index it
@lru_cache(maxsize=1)
def rl_fragments() -> list[str]:
    """The DeepSeek-V3 pairs, the trainer memory and the Qwen3-30B offload the RL prose quotes."""
    from trainsim.posttrain.phases import PAGEABLE_OPTIMIZER_COPY_BW
    rows = rl_rows()
    out = []
    dsv3 = [r for f, r in rows.items() if "-dsv3-" in f]
    assert len(dsv3) == 7 and all(r["error"] < 0 for r in dsv3), "the README says every DeepSeek-V3 run is short"
    out.append(f"DeepSeek-V3 (all {len(dsv3)} runs predicted short)")
    # H100 sync pair 256 -> 512 GPUs: optimizer state per chip (GB, 1e9 B), host offload, fall and shortfall
    a, b = rows["nemo-rl-h100-dsv3-256-sync.yaml"], rows["nemo-rl-h100-dsv3-512-sync.yaml"]
    oa, ob = (_trainer(n).optimizer_bytes_per_chip / 1e9 for n in ("nemo-rl-h100-dsv3-256-sync",
                                                                   "nemo-rl-h100-dsv3-512-sync"))
    out.append(f"({oa:.1f} and {ob:.1f} GB per chip: {a['stages_s']['offload']:.1f} and "
               f"{b['stages_s']['offload']:.1f} s of host offload) the prediction falls by "
               f"{a['predicted'] - b['predicted']:.0f} s, and both points are left "
               f"~{((a['reported'] - a['predicted']) + (b['reported'] - b['predicted'])) / 2:.0f} s short")
    # GB200 sync pair 128 -> 256 GPUs, and the copy rate on Grace that would explain the rest of the published fall
    c, d = rows["nemo-rl-gb200-dsv3-128-sync.yaml"], rows["nemo-rl-gb200-dsv3-256-sync.yaml"]
    pub_fall, pred_fall = c["reported"] - d["reported"], c["predicted"] - d["predicted"]
    fewer = (_trainer("nemo-rl-gb200-dsv3-128-sync").optimizer_bytes_per_chip
             - _trainer("nemo-rl-gb200-dsv3-256-sync").optimizer_bytes_per_chip)
    out.append(f"falls by {pub_fall:.1f} s where the prediction falls by {pred_fall:.1f} s, with "
               f"{fewer / 1e9:.1f} GB per chip less optimizer state each way")
    # the trainer of DeepSeek-V3 on 256 H100 with its recipe's plan
    out.append(f"it is now {_trainer('nemo-rl-h100-dsv3-256-sync').memory_per_chip_bytes / 2**30:.1f} GiB at ZeRO-1")
    # Qwen3-30B-A3B's optimizer state per chip (the H100 layout) round trip at the pageable rate
    q = _trainer("nemo-rl-h100-q30-32-sync").optimizer_bytes_per_chip
    out.append(f"Qwen3-30B-A3B's ~{q / 1e9:.1f} GB per chip agrees ({2 * q / PAGEABLE_OPTIMIZER_COPY_BW:.1f} s at "
               f"{PAGEABLE_OPTIMIZER_COPY_BW / 1e9:.1f} GB/s)")
    return out


@pytest.mark.parametrize("i", range(5))
def test_rl_prose_figures(i):
    assert_in_readme(rl_fragments()[i])


def _rl_errors_host_overlapped() -> dict:
    """The v0.6 rows' whole-step errors with every rollout server's host loop overlapped and NUMA-bound (the serving
    fit's host terms as they are), against which the README's check (a) under "DeepSeek-V3" quotes what the stated
    host loops (student.rollout_host_overlap / rollout_numa_bound) move."""
    from dataclasses import replace as dc_replace
    from trainsim.posttrain import phases as ph
    from trainsim.posttrain.spec import load_posttrain
    from trainsim.posttrain.timeline import evaluate
    ph.clear_cache()
    out = {}
    try:
        for p in v06_paths():
            pt = load_posttrain(p)
            pt = dc_replace(pt, student=pt.student.model_copy(update={"rollout_host_overlap": True,
                                                                      "rollout_numa_bound": True}))
            out[p.name] = evaluate(pt)["step_time_s"] / pt.reported.step_time_s - 1.0
    finally:
        ph.clear_cache()
    return out


def rl_host_cost_fragments() -> list[str]:
    base = {f: r["error"] for f, r in rl_rows().items()}
    ovl = _rl_errors_host_overlapped()
    dsv3 = [f for f in base if "-dsv3-" in f]
    moved = [(base[f] - ovl[f]) * 100 for f in dsv3]
    med = (statistics.median(abs(v) for v in ovl.values()), statistics.median(abs(v) for v in base.values()))
    return [f"move DeepSeek-V3 by {min(moved):+.0f} to {max(moved):+.0f} points (v0.6 median "
            f"{med[0] * 100:.1f}% -> {med[1] * 100:.1f}%)"]


@pytest.mark.parametrize("i", range(1))
def test_rl_host_cost_checks(i):
    assert_in_readme(rl_host_cost_fragments()[i])


def test_rl_qualitative_claims_hold():
    """The RL prose's claims about the model's own outputs: DeepSeek-V3's one-step-off runs are bound by their
    rollout chips; Qwen3-30B one-step-off on H100 has a predicted generation longer than its published step; the
    on-policy Qwen3-30B H100 point lands within 20%."""
    rows = rl_rows()
    assert_in_readme("The one-step-off runs are bound by their rollout chips")
    assert all("rollout" in r["bound_by"] for f, r in rows.items() if "-dsv3-" in f and "-async" in f)
    assert_in_readme("the predicted generation alone exceeds the published step")
    q = rows["nemo-rl-h100-q30-32-async.yaml"]
    assert q["stages_s"]["rollout"] > q["reported"]
    assert_in_readme("the on-policy Qwen3-30B H100 point lands within 20%")
    assert abs(rows["nemo-rl-h100-q30-32-sync.yaml"]["error"]) <= 0.20


def _rl_phases_module():
    return load_module("_rl_phases", ROOT / "tests" / "test_rl_phases.py")


@lru_cache(maxsize=1)
def rl_phase_fragments() -> list[str]:
    """The per-phase bullet (the model without NeMo RL's MoE trainer-loop cost, whose reading it is): the model's
    training / log-prob phases of NeMo RL's v0.3 dense runs against the published timers, the dense runs' largest
    miss outside generation, and the Qwen3-30B-A3B run's generation, trainer phases and shortfall outside generation
    (published figures: tests/test_rl_phases.py PUBLISHED)."""
    import math
    mod = _rl_phases_module()
    pub, m = mod.PUBLISHED, {n: mod._phases(n, loop=False) for n in mod.PUBLISHED}   # the finding: before the loop cost
    label = {"nemo-rl-v03-h100-llama8b-8-sync.yaml": "Llama 3.1 8B", "nemo-rl-v03-h100-llama70b-64-sync.yaml":
             "Llama 70B", "nemo-rl-v03-h100-q32b-64-sync.yaml": "Qwen3-32B"}
    assert set(label) == set(mod.DENSE)
    dense = "; ".join(f"{label[n]} {m[n]['train']:.1f} / {m[n]['logprobs']:.1f} s vs {pub[n]['train']} / "
                      f"{pub[n]['logprobs']}" for n in mod.DENSE)

    def outside(n):
        return (pub[n]["total"] - pub[n]["generation"]) - (m[n]["total"] - m[n]["generation"])
    q = mod.MOE
    return [f"({dense})",
            f"their time outside generation within {math.ceil(max(abs(outside(n)) for n in mod.DENSE))} s",
            f"has its generation met ({m[q]['generation']:.1f} vs {pub[q]['generation']} s)",
            f"policy training {m[q]['train']:.1f} vs {pub[q]['train']} s, log-probs {m[q]['logprobs']:.1f} vs "
            f"{pub[q]['logprobs']} s, {outside(q):.0f} s short outside generation"]


@pytest.mark.parametrize("i", range(4))
def test_rl_phase_figures(i):
    assert_in_readme(rl_phase_fragments()[i])


@lru_cache(maxsize=1)
def rl_dsv3_split_fragments() -> list[str]:
    """The DeepSeek-V3 sentence after the per-step trainer-cost argument: the model's figures for NeMo RL pull
    request 2779's colocated and one-step-off runs (tests/test_rl_dsv3_split.py model_figures; the published ones,
    52.5 / 63.8 / 57.4 s and ~40 ms = 57.4 s / 1,428 decode steps, are quoted): the one-step-off training chips'
    work, that work with 40 s more, the colocated time outside generation, its generation and the model's mean
    decode step over the same 1,428 steps."""
    f = load_module("_rl_dsv3_split", ROOT / "tests" / "test_rl_dsv3_split.py").model_figures()
    return [f"its trainer side is at most 52.5 s (the model's: {f['trainer']:.1f} s; with ~40 s more, "
            f"{f['trainer'] + 40:.0f} s)",
            f"the colocated run spends 63.8 s outside generation (model {f['outside']:.1f} s) and 57.4 s generating "
            f"(model {f['generation']:.1f} s, ~40 ms against ~{f['generation'] / 1428 * 1e3:.0f} ms a TP32 decode step)"]


@pytest.mark.parametrize("i", range(2))
def test_rl_dsv3_split_figures(i):
    assert_in_readme(rl_dsv3_split_fragments()[i])



@lru_cache(maxsize=1)
def rl_all_rows() -> dict:
    """Every RL row (the v0.6 table and the v0.5 rows, nemo-rl-v05-*), as the generated RL table gives them."""
    from trainsim.posttrain.phases import clear_cache
    from trainsim.posttrain.validate import error_table
    clear_cache()
    return {r["file"][:-len(".yaml")]: r for r in error_table(sorted(RL.glob("*.yaml")))}


def rl_target_fragment() -> str:
    """The RL section's count against the 20% target (qa32b: it said the model 'does not reach the 20% target on
    most points' while 29 of the 40 rows of its own table were within 20%): rows within, all rows, and how many of
    those outside it are DeepSeek-V3's, each counted from the rows of the generated RL table."""
    rows = rl_all_rows()
    out = [n for n, r in rows.items() if r["error"] is None or abs(r["error"]) > 0.20]
    dsv3 = sum("-dsv3-" in n for n in out)
    return (f"The model reaches the 20% target on {len(rows) - len(out)} of the {len(rows)} runs; the {len(out)} "
            f"outside it ({dsv3} of them DeepSeek-V3) are named in")


def _rl_error_aligned(name: str) -> float:
    """A row's whole-step error with every parallel group in the aligned layout (posttrain/placement.py's
    placed_system answering None: the engine's layout stands), the README's 'in the aligned layout' figure."""
    from trainsim.posttrain import phases as ph
    from trainsim.posttrain import placement
    from trainsim.posttrain.spec import load_posttrain
    from trainsim.posttrain.timeline import evaluate
    orig = placement.placed_system
    ph.clear_cache()
    try:
        placement.placed_system = lambda *a, **k: None
        pt = load_posttrain(RL / f"{name}.yaml")
        return evaluate(pt)["step_time_s"] / pt.reported.step_time_s - 1.0
    finally:
        placement.placed_system = orig
        ph.clear_cache()


def _pcts(*errors: float) -> str:
    """'-31%', or '-31% / -36%' where the rows differ after rounding (the prose's 'a / b' pairs)."""
    parts = list(dict.fromkeys(pct(e) for e in errors))
    return " / ".join(parts)


@lru_cache(maxsize=1)
def rl_error_fragments() -> list[str]:
    """Whole-step errors the RL prose quotes row by row (the rows of the generated RL table): DeepSeek-V3's
    one-step-off rows (v0.6, then v0.5) and the GB200 one in the aligned layout; the GB200 DeepSeek-V3 sync pair's
    mean shortfall; Qwen3-235B on 128 GB200; the dense v0.5 rows (Llama 3.1 8B / Qwen3-32B)."""
    e = {n: r["error"] for n, r in rl_all_rows().items()}
    r = rl_all_rows()
    c, d = r["nemo-rl-gb200-dsv3-128-sync"], r["nemo-rl-gb200-dsv3-256-sync"]
    short = ((c["reported"] - c["predicted"]) + (d["reported"] - d["predicted"])) / 2
    v5 = "nemo-rl-v05-"
    return [
        f"the H100 ones come to {_pcts(e['nemo-rl-h100-dsv3-512-async'])} in BF16",
        f"and {_pcts(e['nemo-rl-h100-dsv3-512-async-fp8'])} in FP8 (v0.5: "
        f"{_pcts(e[v5 + 'h100-dsv3-512-async'])} and {_pcts(e[v5 + 'h100-dsv3-512-async-fp8'])}), and GB200 to "
        f"{_pcts(e['nemo-rl-gb200-dsv3-256-async'])} (v0.5: {_pcts(e[v5 + 'gb200-dsv3-256-async'])}) with its groups "
        f"across racks (rank placement above; {_pcts(_rl_error_aligned('nemo-rl-gb200-dsv3-256-async'))} in the "
        f"aligned layout)",
        f"and both points stay ~{short:.0f} s short",
        f"Qwen3-235B on 128 GB200 comes to {pct(e['nemo-rl-gb200-q235-128-sync'])} on-policy and "
        f"{pct(e['nemo-rl-gb200-q235-128-async'])} one-step-off",
        f"(on-policy {pct(e[v5 + 'h100-llama8b-16-sync'])} / {pct(e[v5 + 'h100-q32b-32-sync'])}, one-step-off "
        f"{pct(e[v5 + 'h100-llama8b-16-async'])} / {pct(e[v5 + 'h100-q32b-64-async'])}, FP8 "
        f"{pct(e[v5 + 'h100-llama8b-16-async-fp8'])})",
        f"(on-policy {pct(e[v5 + 'gb200-llama8b-8-sync'])} / {pct(e[v5 + 'gb200-q32b-16-sync'])}, one-step-off "
        f"{pct(e[v5 + 'gb200-llama8b-8-async'])} / {pct(e[v5 + 'gb200-q32b-32-async'])})",
    ]


@pytest.mark.parametrize("i", range(6))
def test_rl_error_figures(i):
    assert_in_readme(rl_error_fragments()[i])


def test_rl_dense_platform_split_holds():
    """'H100 rows are predicted slow ... and GB200 ones lower': every dense v0.5 H100 row above its published step,
    and each GB200 row below the H100 row of the same model and mode."""
    e = {n: r["error"] for n, r in rl_all_rows().items()}
    dense = {n: v for n, v in e.items() if n.startswith("nemo-rl-v05-") and ("-llama8b-" in n or "-q32b-" in n)}
    assert len(dense) == 9
    assert all(v > 0 for n, v in dense.items() if "-h100-" in n)
    assert_in_readme("H100 rows are predicted slow")
    for model in ("llama8b", "q32b"):
        for mode in ("sync", "async"):
            h = [v for n, v in dense.items() if f"-h100-{model}-" in n and n.endswith(f"-{mode}")]
            g = [v for n, v in dense.items() if f"-gb200-{model}-" in n and n.endswith(f"-{mode}")]
            assert len(h) == len(g) == 1 and g[0] < h[0], (model, mode)



@lru_cache(maxsize=1)
def rl_trainer_side_fragments() -> list[str]:
    """The RL prose's argument for a per-step DeepSeek-V3 trainer cost, from the model's own stages (no what-if): the
    time the published step leaves outside the predicted one on every MoE colocated (on-policy) H100 row, whose routed
    experts already stream at the measured kernel rate (v0.5 rows named, the v0.6 rows as a range); the room the
    H100 one-step-off DeepSeek-V3 row leaves beside its trainer side (published step minus refit + log-probs +
    training) and the dense one-step-off rows' trainer sides over their published steps; the Qwen3-30B-A3B
    one-step-off row's trainer side over its published step with NeMo RL's loop cost, and the largest multiple of that
    cost its step allows (published step less the trainer side without the cost, over the cost: TrainTime's
    loop_update_s + loop_forward_s). The eight-step-off Qwen3-30B row: its trainer side (log-probs + training), the
    bound its published step puts on vLLM's decode step (published less the refit over the 1,603 decode steps the
    prose derives) and its whole-step error."""
    r = rl_all_rows()

    def resid(n):
        return r[n]["reported"] - r[n]["predicted"]

    def trainer(n, refit=True):
        st = r[n]["stages_s"]
        return (st["weights"] if refit else 0.0) + st["logprobs"] + st["train"]

    v5 = "nemo-rl-v05-h100-"
    moe = {m: resid(v5 + m) for m in ("dsv3-256-sync", "q235-128-sync", "q30-32-sync")}
    v6 = [resid(n) for n in r if n.startswith("nemo-rl-h100-") and n.endswith("-sync")
          and any(k in n for k in ("-dsv3-", "-q235-", "-q30-"))]
    assert len(v6) == 5 and min(v6) > 0, "every MoE colocated H100 row is predicted short"
    room = {m: r[v5 + m]["reported"] - trainer(v5 + m) for m in ("dsv3-512-async", "q30-32-async",
                                                                  "llama8b-16-async", "q32b-64-async")}
    q = _trainer("nemo-rl-v05-h100-q30-32-async")
    loop = q.loop_update_s + q.loop_forward_s
    k_max = (loop + room["q30-32-async"]) / loop
    a8 = r["nemo-rl-h100-q30-192-async8"]
    assert a8["error"] > 0, "the README says the serving model's step is longer than vLLM's there"
    w8 = a8["stages_s"]["weights"]   # the refit; 1,603 decode steps: 64 samples x 3,206 tokens / 128 running
    return [f"DeepSeek-V3 256 GPUs {moe['dsv3-256-sync']:.1f} s, Qwen3-235B 128 GPUs {moe['q235-128-sync']:.0f} s, "
            f"Qwen3-30B-A3B 32 GPUs {moe['q30-32-sync']:.0f} s ({min(v6):.0f}-{max(v6):.0f} s for the v0.6 rows)",
            f"of {room['dsv3-512-async']:.1f} s (512 GPUs), the size of its on-policy residual "
            f"({moe['dsv3-256-sync']:.1f} s), where the dense one-step-off rows' trainer sides already exceed their "
            f"published steps ({room['llama8b-16-async']:.1f} / {room['q32b-64-async']:.0f} s)",
            f"trainer side exceeds its published step by {-room['q30-32-async']:.1f} s (32 GPUs): there the loop "
            f"cost can be at most {k_max:.2f}x its value",
            f"(trainer {trainer('nemo-rl-h100-q30-192-async8', refit=False):.0f} s)",
            f"is <= {(a8['reported'] - w8) / 1603 * 1e3:.1f} ms (({a8['reported']:g} - {w8:.1f}) s / 1,603) where the "
            f"serving model's step is longer (the RL table's {pct(a8['error'])} row)"]


@pytest.mark.parametrize("i", range(5))
def test_rl_trainer_side_figures(i):
    assert_in_readme(rl_trainer_side_fragments()[i])


#: the generation-bound one-step-off rows whose published / predicted step reads vLLM's decode step against the
#: serving model's (tests/test_rl_step.py, note rlgb200): dense and small-MoE rows, rollout-bound in the model
_DECODE_READING_ROWS = {"GB200": ("nemo-rl-v05-gb200-llama8b-8-async", "nemo-rl-v05-gb200-q30-32-async",
                                  "nemo-rl-v05-gb200-q32b-32-async"),
                        "H100": ("nemo-rl-v05-h100-llama8b-16-async",)}
#: one-step-off rows that were in _DECODE_READING_ROWS until NeMo RL's MoE trainer-loop cost (rlmb) made their
#: training chips, not their rollouts, set the modelled step: their published step no longer reads vLLM's decode
_DECODE_READING_TRAINER_BOUND = ("nemo-rl-gb200-q30-16-async", "nemo-rl-v05-h100-q30-32-async",
                                 "nemo-rl-h100-q30-32-async")


def rl_decode_reading_fragments() -> list[str]:
    """'one-step-off rows imply vLLM decode steps a-bx the model's on GB200, cx on H100': published over predicted
    step of each rollout-bound one-step-off row above (the step is its generation), per platform; the rows the
    trainer now bounds (_DECODE_READING_TRAINER_BOUND) are not rollout-bound; and the claim that the one-step-off
    Hopper Qwen3 rows are within 20%."""
    r = rl_all_rows()
    ratio = {}
    for plat, names in _DECODE_READING_ROWS.items():
        assert all("rollout" in r[n]["bound_by"] for n in names), "a decode-reading row is no longer rollout-bound"
        ratio[plat] = [r[n]["reported"] / r[n]["predicted"] for n in names]
    assert all("training" in r[n]["bound_by"] for n in _DECODE_READING_TRAINER_BOUND)
    hopper_q3 = [n for n in r if "-h100-q" in n and n.endswith("-async")]
    assert len(hopper_q3) >= 4 and all(abs(r[n]["error"]) <= 0.20 for n in hopper_q3)
    assert_in_readme("the one-step-off Hopper Qwen3 rows come within 20%")
    g, h = ratio["GB200"], ratio["H100"]
    hs = f"{min(h):.2f}x" if len(h) == 1 else f"{min(h):.2f}-{max(h):.2f}x"
    return [f"(one-step-off rows bound by their rollouts imply vLLM decode steps {min(g):.2f}-{max(g):.2f}x the "
            f"model's on GB200, "
            f"{hs} on H100)"]


@pytest.mark.parametrize("i", range(1))
def test_rl_decode_readings(i):
    assert_in_readme(rl_decode_reading_fragments()[i])


@lru_cache(maxsize=1)
def rl_refit_fragments() -> list[str]:
    """The refit bullet's model counts for DeepSeek-V3 (posttrain/phases.py, as the timeline calls them): the export's
    parameter tasks at EP16 (export_calls: dense + expert tasks), the colocated CUDA-IPC buckets of the 256-H100 and
    128-GB200 sync rows (refit_buckets with the row's vLLM shard and the trainer's resident weights), vLLM's expert-
    name scan per refit (vllm_load_scan_s), the non-colocated packed broadcasts on H100 (refit_pack_bytes), the
    512-H100 one-step-off row's refit (its weights stage), and the refit blog's EP64 x PP8 -> TP64 layout's buckets
    and colocated refit (tests/test_rl_refit.py _blog_layout_refit)."""
    import math
    from trainsim.posttrain import phases as ph
    from trainsim.posttrain.spec import load_posttrain
    from trainsim.posttrain.timeline import trainer_time
    a = load_posttrain(RL / "nemo-rl-h100-dsv3-256-sync.yaml").student_arch
    calls = ph.export_calls(a, {"ep": 16, "pp": 16})
    full = ph.weight_bytes(a, "bf16")

    def buckets(name: str) -> int:
        pt = load_posttrain(RL / f"{name}.yaml")
        chip = pt.clusters[pt.student.cluster].system.chip
        shard = ph.weight_bytes(a, pt.student.rollout_precision) / pt.student.rollout_tp
        return ph.refit_buckets(full, chip.hbm_bytes, shard, trainer_time(pt).weights_bytes_per_chip)
    h100 = load_posttrain(RL / "nemo-rl-h100-dsv3-256-sync.yaml").clusters["main"].system.chip
    bcasts = math.ceil(full / ph.refit_pack_bytes(h100.hbm_bytes))
    w512 = rl_all_rows()["nemo-rl-h100-dsv3-512-async"]["stages_s"]["weights"]
    mod = load_module("_tt_rl_refit", ROOT / "tests" / "test_rl_refit.py")
    blog = mod._blog_layout_refit()
    from trainsim.model.counts import count
    w, w_e = count(a).total_params * 2.0, ph.expert_params(a) * 2.0     # as _blog_layout_refit counts them
    n_blog = ph.refit_buckets(w, h100.hbm_bytes, w / 64, w_e / 512 + (w - w_e) / 8)
    return [f"e.g. {calls.dense_tasks + calls.expert_tasks:,} for DeepSeek-V3 at PP16 x EP16",
            f"~{buckets('nemo-rl-h100-dsv3-256-sync')} buckets on H100, ~{buckets('nemo-rl-gb200-dsv3-128-sync')} on "
            f"GB200 for DeepSeek-V3",
            f"{ph.vllm_load_scan_s(a):.2f} s a refit for DeepSeek-V3",
            f"{bcasts} broadcasts of DeepSeek-V3 on H100",
            f"14.2 s for DeepSeek-V3 PP16 x EP16, model {w512:.1f} s",
            f"layout ({n_blog}), where the model prices {sum(blog.values()):.1f} s"]


@pytest.mark.parametrize("i", range(6))
def test_rl_refit_figures(i):
    assert_in_readme(rl_refit_fragments()[i])


def rack_chance_fragment() -> str:
    """'(all 16 TP8 servers of 128 GB200 inside a rack: p)': posttrain/placement.py's chance that all N/2 two-host
    groups of a job over two domains of N/2 hosts stay inside one, ((N/2 - 1)!!)^2 / (N - 1)!!, with N the job's
    hosts (the Qwen3-235B 128-GB200 recipe: 128 chips at its gpus_per_node, vLLM TP8 servers of two hosts each)."""
    import math
    import yaml
    d = yaml.safe_load((RL / "nemo-rl-gb200-q235-128-sync.yaml").read_text())
    (cl,) = d["clusters"].values()
    hosts, tp = int(cl["chips"]) // int(cl["gpus_per_node"]), int(d["student"]["rollout_tp"])
    assert tp == 2 * int(cl["gpus_per_node"]), "the formula is for a 2-host layout"

    def dfact(n: int) -> int:
        return math.prod(range(n, 0, -2))
    p = dfact(hosts // 2 - 1) ** 2 / dfact(hosts - 1)
    mant, exp = f"{p:.1e}".split("e")
    return f"(all {int(cl['chips']) // tp} TP{tp} servers of {cl['chips']} GB200 inside a rack: {mant}e{int(exp)})"


def test_rack_chance_quoted():
    assert_in_readme(rack_chance_fragment())

def _whatif_module():
    return load_module("_rl_moe_trainer_whatif", ROOT / "scripts" / "rl_moe_trainer_whatif.py")


def _whatif_output(*argv: str) -> str:
    """scripts/rl_moe_trainer_whatif.py's printed table, run in-process (the script sets the loop cost it applies
    through phases.train_loop_cost and restores it when it returns)."""
    import contextlib
    import io
    from trainsim.posttrain.phases import clear_cache
    buf = io.StringIO()
    clear_cache()
    try:
        with contextlib.redirect_stdout(buf):
            _whatif_module().main(list(argv))
    finally:
        clear_cache()
    return buf.getvalue()


@lru_cache(maxsize=1)
def rl_whatif_fragments() -> list[str]:
    """The MoE trainer-loop cost the RL prose quotes (`python scripts/rl_moe_trainer_whatif.py`): the GB200
    Qwen3-30B-A3B pair's errors with it and the model's summary over the 40 rows; and (`--implied`) the multiples
    of the v0.3 reading the Qwen3-30B-A3B rows need on x86 and on Grace hosts."""
    out = _whatif_output()
    row = {m.group(1): m.group(2) for m in re.finditer(r"^(\S+)\s+[\d.]+\s+[\d.]+\s+[+-]\d+%\s+[\d.]+\s+([+-]\d+%)",
                                                       out, re.M)}
    m = re.search(r"^model\s+median \|error\| ([\d.]+)%, max [\d.]+%, (\d+) of (\d+) within 20%", out, re.M)
    assert m, "the what-if script's summary line changed"
    frags = [f"pair to {row['nemo-rl-grpo-gb200-q30-16-async']} (one-step-off",
             f"and {row['nemo-rl-grpo-gb200-q30-16-sync']} (on-policy) with the generation as modelled, and the RL "
             f"median to {m.group(1)}% ({m.group(2)} of {m.group(3)} within 20%)"]
    imp = _whatif_output("--implied")
    rng: dict[str, list[float]] = {}
    for m2 in re.finditer(r"^qwen3-30b-a3b \w+ on (\w+) hosts: \d+ rows, multiple median [\d.]+ \(min ([\d.]+), "
                          r"max ([\d.]+)\)", imp, re.M):
        rng.setdefault(m2.group(1), []).extend((float(m2.group(2)), float(m2.group(3))))
    assert set(rng) == {"x86", "grace"}, "the --implied summary lines changed"
    frags.append(f"(H100: {min(rng['x86']):.1f}-{max(rng['x86']):.1f}x the v0.3 reading) and Grace hosts (GB200: "
                 f"{min(rng['grace']):.1f}-{max(rng['grace']):.1f}x;")
    return frags


@pytest.mark.parametrize("i", range(3))
def test_rl_whatif_figures(i):
    assert_in_readme(rl_whatif_fragments()[i])

# --- counts of runs and points quoted in prose --------------------------------------------------------------------

@lru_cache(maxsize=1)
def count_fragments() -> list[str]:
    """Training: the files in validation/runs, those with a throughput (the rows of the generated accuracy table's
    per-kind summary) and the plan-exact ones (validation/runs/README.md's plan-exact table); serving: the points of
    the generated inference table, counted and not."""
    files = sorted((ROOT / "validation" / "runs").glob("*.yaml"))
    kinds = re.findall(r"^\| (?:dense|MoE) \| (\d+) \|", section("accuracy"), re.M)
    steady = sum(int(k) for k in kinds)
    vr = (ROOT / "validation" / "runs" / "README.md").read_text()
    exact_part = vr.split("## Plan-exact runs", 1)[1].split("\n## ", 1)[0]
    exact = len(re.findall(r"^\| `[^`]+` \|", exact_part, re.M))
    m = re.search(r"^(\d+) points, leave-one-out.*?(\d+) production averages listed", section("inference-table"),
                  re.M)
    assert m, "the inference table's summary line changed"
    counted, listed = int(m.group(1)), int(m.group(2))
    return [f"({len(files)} files: {steady} with a steady-state throughput;",
            f"{exact} of them plan-exact:",
            f"The serving set has {counted + listed} points, {counted} of them counted"]


@pytest.mark.parametrize("i", range(3))
def test_counts_quoted_in_prose(i):
    assert_in_readme(count_fragments()[i])


# --- Ascend: published throughput as a share of peak by trainsim's FLOP count -------------------------------------

def ascend_fragment() -> str:
    """The reported tokens/s per chip times trainsim's model FLOPs per token over the BF16 peak, for the two
    MindSpeed runs the README contrasts (the predicted MFU scaled by reported / predicted throughput)."""
    from trainsim.validate.runner import validate
    runs = ROOT / "validation" / "runs"
    res = validate([runs / "mindspeed-ascend-llama3-8b-8.yaml", runs / "mindspeed-ascend-llama2-13b-8.yaml"])
    bad = [f"{r.run}: {r.note}" for r in res.rows if r.predicted is None]
    assert not bad, f"no prediction for {bad}"
    share = {r.run: r.predicted_mfu * r.reported / r.predicted for r in res.rows}
    return (f"LLaMA3-8B at 8K (TP 8) reaches {share['mindspeed-ascend-llama3-8b-8'] * 100:.0f}% of peak by trainsim's "
            f"FLOP count where LLaMA2-13B at 4K reaches {share['mindspeed-ascend-llama2-13b-8'] * 100:.0f}%")


def test_ascend_peak_shares_quoted():
    assert_in_readme(ascend_fragment())


def ascend_small_rows_fragment() -> str:
    """'the sub-5B rows' a to b': the held-out errors of the MindSpeed rows of models under 5B parameters (the size
    in the run's name), read from the generated accuracy table (leave-one-out, so it moves with the refit)."""
    errs = [float(m.group(2)) / 100 for m in
            re.finditer(r"^\| mindspeed-ascend-[a-z0-9.]*?-(\d+(?:\.\d+)?)b(?:-[^ |]*)? \|[^\n]*? ([+-][\d.]+)% \|",
                        section("accuracy"), re.M) if float(m.group(1)) < 5]
    assert len(errs) >= 5, "the accuracy table's MindSpeed rows changed"
    return f"host dispatch does not explain the sub-5B rows' {span(errs)}"


def test_ascend_small_rows_quoted():
    assert_in_readme(ascend_small_rows_fragment())


# --- serving: the fitted constants and the table row the prose quotes (trainsim/inference/data/inference.yaml) ----

def _inference_yaml() -> dict:
    import yaml
    return yaml.safe_load((ROOT / "trainsim" / "inference" / "data" / "inference.yaml").read_text())


@lru_cache(maxsize=1)
def inference_fragments() -> list[str]:
    """The serving fit's constants as the prose names them (inference.yaml, which scripts/calibrate_inference.py
    writes; the grid floor is the script's MEM grid), and the vLLM Qwen3-30B-A3B row of the generated serving table:
    vLLM pull request 23151's published 13.18 ms per output token (a source fact) scaled by reported / predicted
    tokens/s, the model's time per output token at the same 10 concurrent sequences."""
    cal = load_module("_calibrate_inference", ROOT / "scripts" / "calibrate_inference.py")
    y = _inference_yaml()
    c, v = y["constants"], y["vendor_eff"]
    asc, floor = v["ascend"]["mem_eff"], cal.MEM[0]
    where = "at its grid's floor" if asc <= floor else f"above its grid's floor of {floor:g}"
    a2a = c["a2a_eff"]["value"]
    assert 0.90 <= a2a <= 0.97, "the README says the fitted a2a_eff sits inside DeepEP's implied 0.90-0.97"
    m = re.search(r"^\| vllm-h100-qwen3-30b-a3b-bf16-c10 \|[^\n]*\| ([\d,]+) \| ([\d,]+) \| ([+-]\d+)% \|$",
                  section("inference-table"), re.M)
    assert m, "the serving table's vLLM Qwen3-30B-A3B row changed"
    rep, pred = (float(m.group(i).replace(",", "")) for i in (1, 2))
    return [f"with the fitted Ascend HBM efficiency low ({asc:g}, {where})",
            f"and the AMD GEMM efficiency fits at {v['amd']['gemm_eff']:g}",
            f"efficiency fits at {a2a:g}, inside the 0.90-0.97",
            f"with it the AMD HBM efficiency fits at {v['amd']['mem_eff']:g}",
            f"13.18 ms per output token against the model's {13.18 * rep / pred:.1f} ms (the serving table's "
            f"{m.group(3)}% row)",
            f"the serving fit's NVIDIA constants (mem_eff {v['nvidia']['mem_eff']:g}, "
            f"{c['step_overhead_s']['value'] * 1e3:g} ms per step plus {c['seq_overhead_s']['value'] * 1e6:g} us per "
            f"running sequence)"]


@pytest.mark.parametrize("i", range(6))
def test_inference_prose_figures(i):
    assert_in_readme(inference_fragments()[i])


@lru_cache(maxsize=1)
def serving_allreduce_fragments() -> list[str]:
    """The tensor-parallel all-reduce bullet: OCI's batch-1 Llama 3.1 405B step on 8 MI300X, two all-reduces of the
    layer's BF16 hidden state per layer (inference/step.py _tp_comm) by the custom kernel (custom_all_reduce_time)
    and as a ring (perf/collectives.py all_reduce_time) on the spec's inline system, against the published step
    (1 / (8 chips x the published tokens/s per chip), a source figure); and the MLPerf p99 TPOT bound turned into a
    mean (inference/calib.py mean_tpot_bound_s, tpot_p99 in inference.yaml)."""
    import numpy as np
    import yaml
    from trainsim.catalog.load import get_system
    from trainsim.catalog.resolve import resolve_system
    from trainsim.inference.calib import default_calib, mean_tpot_bound_s, tpot_p99_relation
    from trainsim.inference.step import custom_all_reduce_time
    from trainsim.model.load import resolve_model
    from trainsim.perf.collectives import all_reduce_time
    d = yaml.safe_load((ROOT / "validation" / "inference" / "oci-mi300x-llama31-405b-batch1.yaml").read_text())
    system, arch, eff = resolve_system(d["system"]), resolve_model(d["model"]), default_calib().coll_eff
    n = np.array([int(d["plan"]["tp"])])
    assert int(d["serving"]["batch"]) == 1 and int(n[0]) == int(d["chips"]) == 8
    size = arch.hidden * 2.0
    per_step = 2 * sum(lk.n_layers for lk in arch.layers)
    custom = per_step * float(np.ravel(custom_all_reduce_time(size, n, system, eff))[0])
    ring = per_step * float(np.ravel(all_reduce_time(size, n, np.array([1]), system, eff))[0])
    step = 1.0 / (d["chips"] * d["reported"]["output_tokens_per_s_per_chip"])
    chip = get_system("dgx-b200").chip
    p99_over_mean, p99_over_bound, _ = tpot_p99_relation(chip)
    return [f"At OCI's batch 1 on 8 MI300X this is {custom * 1e3:.1f} ms of a {step * 1e3:.0f} ms step against "
            f"{ring * 1e3:.1f} ms as a ring",
            f"TensorRT-LLM {p99_over_mean:.3f} and {p99_over_bound:.3f}, a p99 of 40 ms is a mean of "
            f"{mean_tpot_bound_s(40, 'p99', chip) * 1e3:.1f} ms"]


@pytest.mark.parametrize("i", range(2))
def test_serving_allreduce_quoted(i):
    assert_in_readme(serving_allreduce_fragments()[i])


# --- training prose under "Where the model is weak" -------------------------------------------------------------

@lru_cache(maxsize=1)
def amd_fragments() -> list[str]:
    """AMD Primus MoE: the CDNA 4 launch-work factor (Figure 5's measured 14.7 ms per MoE layer over the fitted x86
    host terms of the same layer, perf/step.py launch_work_factor), the launch-bound 1F1B DeepSeek-V2 forward as
    tests/test_primus_amd_moe.py's xfail derives it by hand (14.75 MoE layers per stage x the factor x
    (moe_layer_host_s + 40 forward per-expert calls x moe_expert_call_host_s)), and the engine's DeepEP and VPP3
    gains of Figure 7's bars (that file's _dsv2_rates, the stored calibration)."""
    import tempfile
    from trainsim.perf.calibration import calib_for
    from trainsim.perf.step import launch_work_factor
    c = calib_for("amd-cdna4", chip="amd-mi355x")
    k = launch_work_factor(c)
    fwd = 14.75 * k * (c.moe_layer_host_s + 40 * c.moe_expert_call_host_s)
    mod = load_module("_tt_primus", ROOT / "tests" / "test_primus_amd_moe.py")
    with tempfile.TemporaryDirectory() as tmp:
        r = mod._dsv2_rates(["loss", "deepep", "vpp3"], Path(tmp))
    return [f"14.7 ms of launch work per MoE layer, {k:.2f}x what the fitted x86 host terms give",
            f"the 1F1B DeepSeek-V2 forward (launch-bound, {fwd:.2f} s)",
            f"(a strict xfail: the engine gives {r['deepep'] / r['loss']:.3f})",
            f"where the engine gives {r['vpp3'] / r['deepep']:.3f}"]


@pytest.mark.parametrize("i", range(4))
def test_amd_prose_figures(i):
    assert_in_readme(amd_fragments()[i])


def sibling_fragment() -> str:
    """'the same Megatron-Bridge recipe runs a-bx faster on GB300 than on GB200 and c-dx faster on B300 than on
    B200': published tokens/s per chip of every sibling pair of Blackwell validation runs (trainsim/validate/
    siblings.py sibling_pairs: one recipe, two chip models; what scripts/sibling_ratios.py prints as 'published')."""
    from trainsim.validate.calibrate import prepare
    from trainsim.validate.siblings import sibling_pairs
    runs = [r for r in prepare([ROOT / "validation" / "runs"]) if r.family == "nvidia-blackwell"]
    ratio: dict[tuple[str, str], list[float]] = {}
    for a, b in sibling_pairs(runs):
        ratio.setdefault((a.run.system.chip.id, b.run.system.chip.id), []).append(b.reported / a.reported)

    def rng(base: str, other: str) -> str:
        v = ratio[(base, other)]
        lo, hi = f"{min(v):.2f}", f"{max(v):.2f}"
        return lo if lo == hi else f"{lo}-{hi}"
    return (f"recipe runs {rng('nvidia-gb200', 'nvidia-gb300')}x faster on GB300 than on GB200 and "
            f"{rng('nvidia-b200-hgx', 'nvidia-b300-hgx')}x faster on B300 than on B200")


def test_sibling_ratios_quoted():
    assert_in_readme(sibling_fragment())


def moe_call_time_fragment() -> str:
    """'the per-call time each row implies alone (a us, b us) predicts the other within c%': the two host-bound
    NeMo 25.11 Qwen3-30B-A3B rows (H100 per-tensor FP8, B200 MXFP8), each fitted alone for moe_expert_call_host_s
    and each predicted with the other's, as tests/test_moe_launch_floor.py's agreement test does."""
    import math
    mod = load_module("_tt_moe_launch_floor", ROOT / "tests" / "test_moe_launch_floor.py")
    runs = {r.name: r for r in mod.prepare([mod.H100_CS, mod.B200_MX])}
    t = {n: mod._fit_params([r], "moe_expert_call_host_s", mod.CALL_BOUNDS, lambda rr: mod._calib(rr.run, 0.0),
                            tol=mod.CALL_TOL) for n, r in runs.items()}
    h, b = mod.H100_CS.stem, mod.B200_MX.stem
    miss = max(abs(runs[x].predict(mod._calib(runs[x].run, t[y])) / runs[x].reported - 1.0)
               for x, y in ((h, b), (b, h)))
    return (f"the per-call time each row implies alone ({t[h] * 1e6:.0f} us, {t[b] * 1e6:.0f} us) predicts the "
            f"other within {math.ceil(miss * 100)}%")


def test_moe_call_time_quoted():
    assert_in_readme(moe_call_time_fragment())


@lru_cache(maxsize=1)
def collectives_fragments() -> list[str]:
    """The collectives row of the model table: engine over measured time of the nccl-tests all-reduces of 16 B,
    64 KiB and 1 MiB on 8, 16 and 32 H100, and of the 16 B all-reduces on 8 MI300X and 2 x 8 MI355X
    (validation/collectives/nccl_tests.yaml, priced as tests/test_nccl_tests.py prices them)."""
    mod = load_module("_tt_nccl_tests", ROOT / "tests" / "test_nccl_tests.py")
    pts = {p["id"]: p for p in mod._doc()["points"]}
    h100 = [f"h100x{n}-ar-{s}" for n in (8, 16, 32) for s in ("16b", "64k", "1m")]
    r = {i: mod.engine_s(pts[i]) / mod.measured_s(pts[i]) for i in h100 + ["mi300x8-ar-16b", "mi355x16-ar-16b"]}
    lo, hi = min(r[i] for i in h100), max(r[i] for i in h100)
    return [f"measured 16 B - 1 MiB all-reduces on 8-32 H100 at {lo:.2f}-{hi:.2f}x",
            f"8 x MI300X and 2 x 8 MI355X 16 B all-reduces at {r['mi300x8-ar-16b']:.2f}x and "
            f"{r['mi355x16-ar-16b']:.2f}x"]


@pytest.mark.parametrize("i", range(2))
def test_collectives_quoted(i):
    assert_in_readme(collectives_fragments()[i])


def zero3_search_fragment() -> str:
    """'The ZeRO-3 plan the search finds for DeepSeek-V3 on 1,024 H100 comes to Nx the recipe's plan': the search's
    best over the recipe's own plan, both predicted (trainsim/validate/recipes.py check_recipe, the figure
    tests/test_search_vs_recipes.py names)."""
    from trainsim.validate.recipes import check_recipe
    chk = check_recipe(ROOT / "validation" / "runs" / "megatron-bridge-perf-dsv3-h100-1024.yaml")
    assert chk is not None and chk.best_plan["zero"] == 3, "the search's best is no longer a ZeRO-3 plan"
    return f"1,024 H100 comes to {chk.over_recipe_plan:.3f}x the recipe's plan"


def test_zero3_search_gain_quoted():
    assert_in_readme(zero3_search_fragment())


def bloomberggpt_fragment() -> str:
    """BloombergGPT's step-time gap before the fabric (published step minus the step predicted for the same spec
    without `fabric`, i.e. at the calibration's scale-out efficiency; in-sample with the stored calibration, the
    validation runner's exact batch) and how much of it the efa-v1 fabric's collective rate adds to the prediction."""
    import tempfile
    import yaml
    from trainsim.validate.runner import validate
    src = ROOT / "validation" / "runs" / "bloomberggpt-50b-512.yaml"
    d = yaml.safe_load(src.read_text())
    t = d["training"]
    tokens = float(t["global_batch_seqs"]) * float(t["seq_len"])
    assert d["system"]["scale_out"].pop("fabric") == "efa-v1"
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / src.name
        plain.write_text(yaml.safe_dump(d))
        efa, line = (validate([p]).rows[0] for p in (src, plain))
    step = {k: tokens / (r.predicted * r.chips) for k, r in (("efa", efa), ("line", line))}
    published = tokens / (efa.reported * efa.chips)
    return f"which adds {step['efa'] - step['line']:.1f} s of its {published - step['line']:.1f} s gap"


def test_bloomberggpt_gap_quoted():
    assert_in_readme(bloomberggpt_fragment())


# --- serving data sets: the length statistics the prose quotes (scripts/dataset_lengths.py's arithmetic) ----------

def dataset_fragments() -> list[str]:
    import numpy as np
    mod = load_module("dataset_lengths", ROOT / "scripts" / "dataset_lengths.py")
    r1 = mod.stats(mod.DATA / "mlperf-deepseek-r1.csv")
    oo = mod.stats(mod.DATA / "mlperf-llama2-70b-openorca.csv")
    import csv
    with (mod.DATA / "mlperf-deepseek-r1.csv").open() as f:
        out = np.array([float(r["output_length"]) for r in csv.DictReader(f)])
    return [f"DeepSeek-R1's outputs have a CV of {r1['output_cv']:.2f} (median {np.median(out):,.0f}, mean "
            f"{r1['mean_output']:,.0f}, max {out.max():,.0f} reference tokens); OpenOrca's mean input is "
            f"{oo['mean_input']:.0f} tokens"]


def test_dataset_lengths_quoted():
    assert_in_readme(dataset_fragments()[0])


# --- the sweep benchmark's speed-up quoted under its table ----------------------------------------------------------

def test_sweep_speedup_matches_its_table():
    """'Two workers ran N x faster on the MoE example': the in-process over the 2-worker points/s of the table
    above it (both rows of the same benchmark run), so the sentence moves with the table."""
    text = (ROOT / "README.md").read_text()
    moe = {m.group(1): float(m.group(2)) for m in
           re.finditer(r"^\| 1\.6T MoE on CloudMatrix \(example\) \| \d+ \| (in-process|2 Dask workers) \| "
                        r"([\d.]+) \|", text, re.M)}
    assert set(moe) == {"in-process", "2 Dask workers"}
    assert_in_readme(f"Two workers ran {moe['2 Dask workers'] / moe['in-process']:.2f}× faster on the MoE example")


def test_fragment_check_fails_on_a_stale_figure():
    """The check itself: a figure the README does not carry is reported as stale."""
    with pytest.raises(AssertionError, match="README prose is stale"):
        assert_in_readme("rows outside 10% (405B 1F1B -99.9%")


if __name__ == "__main__":
    for frag in ([torchtitan_gap_fragment()] + rl_fragments() + rl_host_cost_fragments() + rl_phase_fragments()
                 + rl_dsv3_split_fragments() + [rl_target_fragment()] + rl_error_fragments() + rl_whatif_fragments() + rl_trainer_side_fragments()
                 + rl_decode_reading_fragments() + rl_refit_fragments() + [rack_chance_fragment()]
                 + count_fragments()
                 + collectives_fragments() + [ascend_fragment(), ascend_small_rows_fragment()] + amd_fragments()
                 + [moe_call_time_fragment(), sibling_fragment(), zero3_search_fragment(), bloomberggpt_fragment()] + dataset_fragments() + inference_fragments()
                 + serving_allreduce_fragments()):
        print(frag)
