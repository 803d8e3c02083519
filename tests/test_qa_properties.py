"""Property audit of the engine over the catalog (hypothesis, derandomized): every figure that leaves the engine is
finite and in its physical range for random VALID inputs -- catalog models x systems x chip counts x batch x
precision x software stack x plan options, the plans drawn from the engine's own enumeration -- and the search's
best plan is the estimate of that plan. Each property is stated with why it must hold. The regression tests below
each failed before their fix (the defect named in its docstring).

tests/test_engine_properties.py holds the small-model hardware-monotonicity and sharding properties; this file adds
the catalog-wide ones and the search / serving / post-training entry points."""
from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import step_time_ratio_scaled
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainsim.api import NoPlanError, TrainsimError, as_run, estimate, frameworks, model_ids, search
from trainsim.api import _systems
from trainsim.frameworks import framework_of, restrict_plan
from trainsim.parallel.enumerate import enumerate_space
from trainsim.parallel.validity import stage_layers_ok
from trainsim.perf.calibration import calib_for
from trainsim.perf.step import BREAKDOWN_KEYS
from trainsim.plan_estimate import estimate_plans, result_row
from trainsim.sanity import peak_ratio
from trainsim.search import _enum_args
from trainsim.spec import PlanSpec

from fuzz.specs import run_in_process

ROOT = Path(__file__).resolve().parent.parent
FAST = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))

MODELS = [m for m in model_ids() if m != "longcat-2.0"]   # longcat-2.0: official figures only, no config
SYSTEMS = [s if isinstance(s, str) else s.id for s in _systems()]
STACKS = [None] + [f if isinstance(f, str) else f.id for f in frameworks()]

#: training switches and plan options as the run spec takes them (docs/run-spec.md); None leaves one out
TRAINING = {"attention": ["flash", "flash2", "unfused"], "fp8_activations": ["gemm_inputs", "all", "none"],
            "tp_comm_overlap": [True, False], "grad_sync_overlap": [True, False],
            "grad_accumulation_fusion": [True, False], "cuda_graphs": ["none", "partial", "full"],
            "cross_entropy_fusion": ["none", "native", "te", "fp32_upcast", "torch_bf16"],
            "elementwise_kernels": ["fused", "eager"], "compiled": [True, False], "batch_tolerance": [0.0, 0.5],
            "local_batch_seqs": [1, 16]}
MOE_TRAINING = {"moe_a2a_overlap": [True, False], "moe_dispatcher": ["alltoall", "deepep", "hybridep", "allgather"],
                "moe_token_drop": [True, False], "moe_grouped_gemm": [True, False]}
PLAN_OPTIONS = {"recompute_method": ["uniform", "block"], "recompute_num_layers": [1, 2],
                "pipeline_split": ["even", "balanced"], "offload_activation_layers": [1, 2],
                "first_stage_layers": [1, 2, 3], "last_stage_layers": [1, 2]}


@st.composite
def run_specs(draw):
    """A run spec of catalog ids and sourced options; many are refused as input (a stack without FP8, an option
    the stack lacks), which the tests skip: the property is about the answers that do leave the engine."""
    model = draw(st.sampled_from(MODELS))
    spec = {"name": "prop", "model": model, "system": draw(st.sampled_from(SYSTEMS)),
            "chips": draw(st.sampled_from([8, 16, 64, 72, 96, 256, 384, 1024])),
            "training": {"tokens": "1T", "seq_len": draw(st.sampled_from([1024, 4096, 8192])),
                         "global_batch_seqs": draw(st.sampled_from([8, 64, 512, 2048])),
                         "precision": draw(st.sampled_from(["bf16", "fp8"]))}}
    stack = draw(st.sampled_from(STACKS))
    if stack:
        spec["framework"] = stack
    for k, vals in TRAINING.items():
        if draw(st.integers(0, 4)) == 0:
            spec["training"][k] = draw(st.sampled_from(vals))
    plan = {k: draw(st.sampled_from(vals)) for k, vals in PLAN_OPTIONS.items() if draw(st.integers(0, 5)) == 0}
    if plan:
        spec["plan"] = plan
    return spec


#: examples that reached the engine (and tests that ran), per test: the properties are not vacuous
#: (test_examples_reached_the_engine)
REACHED: dict[str, int] = {}
RAN: set[str] = set()


def _run_or_none(spec, test: str):
    try:
        run = as_run(spec)
    except TrainsimError:
        return None
    REACHED[test] = REACHED.get(test, 0) + 1
    return run


@settings(max_examples=40, **FAST)
@given(run_specs(), st.randoms(use_true_random=False))
def test_every_enumerated_plan_is_sane(spec, rnd):
    """Over up to 64 plans of the engine's own enumeration (all valid), every figure of the vectorised evaluation is
    finite; step time, tokens/s, MFU, HFU and memory are > 0; MFU and HFU against the dense peak of the run's
    precision are <= 1 (no chip beats its peak); every breakdown part and memory part is >= 0; the breakdown sums to
    the step time and the memory parts to the total (perf/step.py evaluate: step = the sum of its causes; memory.py:
    total = the sum of its parts). One plan is also made an Estimate (the engine's exit, with its sanity check) and
    its cost is finite and >= 0."""
    RAN.add("plans")
    run = _run_or_none(spec, "plans")
    if run is None:
        return
    args, kw = _enum_args(run, restrict_plan(run.plan, framework_of(run)), run.use_all)
    space, _ = enumerate_space(*args, **kw)
    if not len(space):
        return
    ok = space.ok()
    cells = np.arange(space.cells) if ok is None else np.nonzero(ok)[0]
    idx = np.array(sorted(rnd.sample(list(cells), min(64, len(cells)))))
    plans = space.plans(idx)
    res = estimate_plans(run, plans)
    step = res.step_time_s
    for name, v in (("step", step), ("tokens/s", res.tokens_per_s_per_chip), ("mfu", res.mfu), ("hfu", res.hfu),
                    ("microbatches", res.microbatches), ("memory", res.memory["total"])):
        assert np.all(np.isfinite(v)) and np.all(np.asarray(v) > 0), (name, spec)
    ratio = peak_ratio(run.system.chip, run.training.precision)
    assert np.all(res.mfu / ratio <= 1 + 1e-9) and np.all(res.hfu / ratio <= 1 + 1e-9), spec
    parts = [np.asarray(res.breakdown[k], dtype=float) * np.ones_like(step) for k in BREAKDOWN_KEYS]
    assert all(np.all(np.isfinite(p)) and np.all(p >= -1e-12 * step) for p in parts), spec
    np.testing.assert_allclose(sum(parts), step, rtol=1e-9, err_msg=str(spec))
    mem = {k: np.asarray(v, dtype=float) * np.ones_like(step) for k, v in res.memory.items()}
    assert all(np.all(np.isfinite(v)) and np.all(v >= 0) for v in mem.values()), spec
    np.testing.assert_allclose(sum(v for k, v in mem.items() if k != "total"), mem["total"], rtol=1e-9)
    est = result_row(run, plans, res, rnd.randrange(len(idx)))     # raises InvariantViolation when insane
    cost = est.cost() or {}
    nums = [v for v in cost.values() if isinstance(v, float)]
    assert all(math.isfinite(v) and v >= 0 for v in nums), cost


def _fixed_plan(best) -> PlanSpec:
    plan = {k: v for k, v in best.plan.items() if k != "placement"}
    plan["node_limit"] = plan["node_limit"] or None
    return PlanSpec(**plan)


@settings(max_examples=20, **FAST)
@given(run_specs())
def test_search_best_is_the_estimate_of_its_plan(spec):
    """The search's best plan, estimated as a complete plan (its dp and batch stated), gives the same step time,
    tokens/s, MFU and memory: the search and estimate share one arithmetic (estimate.py: 'estimate is a search over
    one plan'), so the search never reports a figure the plan does not have; and no runner-up moves more tokens per
    second for the whole job than the best (search.py: fastest = most tokens/s)."""
    RAN.add("best")
    run = _run_or_none(spec, "search")
    if run is None:
        return
    try:
        res = search(run, top=3)
    except TrainsimError:
        return
    if res.best is None:
        return
    b = res.best
    again = as_run({**spec, "training": {**spec["training"], "global_batch_seqs": b.run.training.batch_seqs,
                                         "batch_tolerance": 0.0}, "plan": {**spec.get("plan", {})}})
    e = estimate(again, _fixed_plan(b).model_copy(update={k: v for k, v in again.plan.model_dump().items()
                                                          if v is not None}))
    for f in ("step_time_s", "tokens_per_s_per_chip", "mfu", "hfu"):
        assert getattr(e, f) == pytest.approx(getattr(b, f), rel=1e-12), (f, spec)
    assert e.memory["total"] == pytest.approx(b.memory["total"], rel=1e-12)
    REACHED["best"] = REACHED.get("best", 0) + 1
    for r in res.runners_up:
        assert r.tokens_per_s_per_chip * r.used <= b.tokens_per_s_per_chip * b.used * (1 + 1e-12)


@settings(max_examples=12, **FAST)
@given(run_specs(), st.sampled_from([1.5, 2.0, 4.0]))
def test_more_hbm_never_makes_the_best_plan_slower(spec, factor):
    """More HBM capacity with everything else equal changes no plan's time, only which plans fit (the capacity
    enters the engine only in the fit test, plan_estimate.result_row / search), and every plan that fitted still
    fits: the best whole-job tokens/s can only rise or stay."""
    run = _run_or_none(spec, "hbm")
    if run is None:
        return
    chip = run.system.chip
    roomy = replace(run, system=run.system.with_(chip=chip.with_(hbm_bytes=chip.hbm_bytes * factor)))
    try:
        small, big = search(run, top=1, with_pareto=False), search(roomy, top=1, with_pareto=False)
    except TrainsimError:
        return
    if small.best is None:
        return
    assert big.best is not None
    assert big.best.tokens_per_s_per_chip * big.best.used >= \
        small.best.tokens_per_s_per_chip * small.best.used * (1 - 1e-12), spec


# ---------------------------------------------------------------- serving and post-training entry points

def _numbers(x, key=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _numbers(v, str(k))
    elif isinstance(x, list):
        for v in x:
            yield from _numbers(v, key)
    elif isinstance(x, float):
        yield key, x


@settings(max_examples=12, **FAST)
@given(st.sampled_from(MODELS), st.sampled_from(SYSTEMS), st.sampled_from(["prefill", "decode", "both"]),
       st.sampled_from([128, 4096]), st.sampled_from([16, 1024]), st.sampled_from(["bf16", "fp8", "int8", "fp4"]),
       st.sampled_from([None, 8, 64]), st.sampled_from([None, 50]))
def test_serving_answers_are_finite_and_non_negative(model, system, phase, inp, out, prec, chips, tpot):
    """Every number `trainsim infer` prints for a catalog model on a catalog system is finite, and >= 0 except the
    breakdown's 'overlap_hidden' (inference/step.py: the communication two-batch overlap hides, entered as a
    negative part so that the parts sum to the step); the latency bound, when given, holds for the answer; an
    aggregated answer (phase both) is one layout for both phases."""
    from trainsim.api import serving

    RAN.add("serving")
    spec = {"name": "s", "model": model, "system": system,
            "serving": {"phase": phase, "input_len": inp, "output_len": out, "precision": prec}}
    if chips:
        spec["chips"] = chips
    if tpot:
        spec["latency"] = {"tpot_ms": tpot}
    try:
        d = serving.infer(spec).to_dict()
    except TrainsimError:
        return
    REACHED["serving"] = REACHED.get("serving", 0) + 1
    for key, v in _numbers(d):
        assert math.isfinite(v), (key, spec)
        assert v >= 0 or key == "overlap_hidden", (key, v, spec)
    dec = d.get("decode") or {}
    if tpot and dec.get("tpot_s") is not None:
        assert dec["tpot_s"] <= tpot / 1000 * (1 + 1e-9)
    if phase == "both" and dec:   # one server, one layout for both phases (inference/search.py join_phases)
        assert d["prefill"]["plan"] == dec["plan"], spec


RL_SEEDS = sorted((ROOT / "validation" / "rl").glob("*.yaml"))


@settings(max_examples=8, **FAST)
@given(st.sampled_from(RL_SEEDS), st.sampled_from([4, 16, 64]), st.sampled_from([8, 32]),
       st.sampled_from([512, 4096]), st.sampled_from(["sync", "async"]))
def test_posttrain_step_is_finite_and_its_phases_non_negative(path, prompts, samples, rollout, mode):
    """A published NeMo RL step (validation/rl) with other prompts and samples (32 to 2,048 sequences, multiples of
    every trainer's dp), rollout lengths and modes: every number of the answer is finite and >= 0 (times, bytes,
    tokens/s), the step time is > 0, and each cluster's utilisation (chip-time working over chips x step) is at most 1."""
    from trainsim.api import posttraining

    RAN.add("posttrain")
    d = yaml.safe_load(path.read_text())
    d.pop("reported", None)
    d["step"].update(prompts=prompts, samples_per_prompt=samples, rollout_len=rollout, mode=mode)
    d["step"].pop("max_trajectory_age_steps", None)
    # the published batch and packing budgets belong to the published lengths: one optimizer step over the new
    # batch (NeMo RL asserts the global batch divides it) and no packing budget below the new longest sample
    if "train_global_batch" in d["step"]:
        d["step"]["train_global_batch"] = prompts * samples
    for key in ("pack_tokens", "logprob_pack_tokens"):
        d["step"].pop(key, None)
    try:
        out = posttraining.posttrain(copy.deepcopy(d)).to_dict()
    except TrainsimError:
        return
    REACHED["posttrain"] = REACHED.get("posttrain", 0) + 1
    for key, v in _numbers(out):
        assert math.isfinite(v) and v >= 0, (key, v, path.name)
    assert out["step_time_s"] > 0
    assert all(v <= 1 + 1e-9 for _, v in _numbers(out["utilisation"])), out["utilisation"]


# ---------------------------------------------------------------- regressions: each failed before its fix

def test_stage_layers_rule_by_hand():
    """Megatron-Core's uneven-pipeline rule (transformer_config.py __post_init__, NVIDIA/Megatron-LM d98e8a64: the
    middle layers L - first - last and the middle stages pp - stated are both zero or both not): for 32 layers."""
    pp = np.array([1, 2, 3, 4, 8])
    assert list(stage_layers_ok(32, pp, None, None)) == [True] * 5
    # first 1 + last 1: 30 layers left; pp 2 has no middle rank for them, pp 1 no first or last rank
    assert list(stage_layers_ok(32, pp, 1, 1)) == [False, False, True, True, True]
    # first 16 + last 16: nothing left, so exactly pp 2
    assert list(stage_layers_ok(32, pp, 16, 16)) == [False, True, False, False, False]
    # first 31 alone: 1 layer left for pp - 1 ranks; first 40: more than the model has
    assert list(stage_layers_ok(32, pp, 31, None)) == [False, True, True, True, True]
    assert not stage_layers_ok(32, pp, 40, None).any()


def _cli(tmp_path, text, *args):
    p = tmp_path / "run.yaml"
    p.write_text(text)
    return (p, *run_in_process([a if a != "{f}" else str(p) for a in args]))


MIXTRAL = ("model: mixtral-8x7b\nsystem: dgx-h100\nchips: 8\n"
           "training: {tokens: 1T, seq_len: 8192, global_batch_seqs: 512, precision: bf16}\n")


def test_uneven_stages_that_pp_cannot_hold_are_bad_input(tmp_path):
    """Defect: first 1 + last 1 of Mixtral's 32 layers at pp 2 put 2 layers on the pipeline; the estimate priced
    2 of 32 layers, MFU 4.58, and exited 3 ('this is a trainsim bug'). Now exit 2, one line naming the field."""
    plan = "plan: {first_stage_layers: 1, last_stage_layers: 1, tp: 1, pp: 2, vpp: 2, ep: 2, cp: 1, zero: 0, " \
           "recompute: full, micro_batch: 4}\n"
    p, rc, out, err = _cli(tmp_path, MIXTRAL + plan, "estimate", "{f}")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and not out and len(lines) == 1, err
    assert f"{p}: plan.first_stage_layers:" in lines[0] and "30 of the 32 layers" in lines[0]


def test_search_never_offers_a_pp_the_uneven_stages_break():
    """Defect: with first 1 + last 1 stated and pp searched, the search (and the estimate of a partial plan) took pp 2
    and its rank of 1 layer: the same MFU 4.6, exit 3. Every plan searched now leaves the middle ranks the other 30
    layers; the first and last ranks hold 1 each, a middle rank ceil(30 / (pp - 2))."""
    run = as_run(yaml.safe_load(MIXTRAL) | {"plan": {"first_stage_layers": 1, "last_stage_layers": 1}})
    args, kw = _enum_args(run, run.plan, run.use_all)
    space, rejected = enumerate_space(*args, **kw)
    assert len(space) and min(space.plans().pp.tolist()) > 2
    assert rejected[19] > 0
    try:
        est = estimate(run)
    except NoPlanError:   # none fits 8 H100s with these stages: a valid answer (exit 1)
        return
    assert est.plan["pp"] > 2 and 0 < est.mfu <= 1


def test_activation_offload_is_a_part_of_the_step(tmp_path):
    """Defect: the exposed host-link time of activation offload (perf/step.py: 2 x bytes / host-link bandwidth beyond
    the micro-batch's compute) lengthened every micro-batch but was in no breakdown part, so the parts summed to less
    than the step (0.29 of it on Longcat-Flash). With pp 1 there is no bubble to stretch, so the step with offload
    minus the step without it is exactly the new part activation_offload, which is > 0 on a 1 GB/s host link."""
    base = {"name": "off", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8,
            "training": {"tokens": "1T", "seq_len": 4096, "global_batch_seqs": 64},
            "plan": {"tp": 1, "pp": 1, "cp": 1, "ep": 1, "zero": 1, "recompute": "none", "micro_batch": 1}}
    slow = calib_for("nvidia-hopper").with_(host_link_bw=1e9, host_link_eff=1.0)
    on = as_run(base | {"plan": base["plan"] | {"offload_activation_layers": 4}})
    off = as_run(base)
    e_on = estimate(on, calib=slow)
    e_off = estimate(off, calib=slow)
    assert e_on.breakdown["activation_offload"] > 0 and e_off.breakdown["activation_offload"] == 0
    assert sum(e_on.breakdown.values()) == pytest.approx(e_on.step_time_s, rel=1e-12)
    assert e_on.step_time_s - e_off.step_time_s == pytest.approx(e_on.breakdown["activation_offload"], rel=1e-9)


@pytest.mark.parametrize("text, needle", [
    ("", "got an empty file"),
    ("model: [llama\n", "not valid YAML"),
    ("model: no-such-model\nsystem: dgx-h100\nchips: 8\ntraining: {global_batch_seqs: 8}\n",
     "unknown model 'no-such-model'"),
])
def test_validate_of_a_broken_file_alone_is_bad_input(tmp_path, text, needle):
    """Defect: `trainsim validate BROKEN.yaml` printed a table of one error row and exited 1 ('no answer'); a file
    that is not a run spec is bad input: exit 2, one line naming it (tests/test_validate.py keeps the error row when a
    compared run stands beside it)."""
    p, rc, out, err = _cli(tmp_path, text, "validate", "{f}")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and not out and len(lines) == 1 and str(p) in lines[0] and needle in lines[0], (rc, err)


def test_check_of_a_sweep_with_empty_axes(tmp_path):
    """Defect: `trainsim check` of a sweep spec whose `axes:` is empty joined None: TypeError, exit 3. The sweep reads
    it as no axis (the base run, one point), and check now says so."""
    (tmp_path / "base.yaml").write_text("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 8\n"
                                        "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 64}\n")
    _, rc, out, err = _cli(tmp_path, "name: sw\nbase: base.yaml\naxes:\n", "check", "{f}")
    assert rc == 0 and "axes: none; 1 point" in out, err


def test_a_missing_required_key_says_what_is_expected(tmp_path):
    """Defect: a run spec without `system:` said 'system: Field required' (pydantic's words): now the key, where it
    goes and that it is required."""
    p, rc, out, err = _cli(tmp_path, "model: llama-3.1-8b\nchips: 8\ntraining: {global_batch_seqs: 64}\n",
                           "estimate", "{f}")
    assert rc == 2 and err.strip() == f"error: {p}: system: missing key; expected system: at the top level (required)"


def test_examples_reached_the_engine():
    """The properties above are not vacuous: a share of their random specs are valid runs the engine answered
    (runs after them in file order; skipped when they were deselected)."""
    want = {"plans": 10, "best": 3, "serving": 3, "posttrain": 3}   # of 40, 20, 12 and 8 examples
    ran = {k: n for k, n in want.items() if k in RAN}
    if not ran:
        pytest.skip("the property tests did not run")
    assert all(REACHED.get(k, 0) >= n for k, n in ran.items()), REACHED


# ---------------------------------------------------------------- known violations of hardware monotonicity

_slower_with = step_time_ratio_scaled


def test_more_hbm_bandwidth_never_slows_a_plan_moe_host_floor():
    """A chip with 1-50% more HBM bandwidth, everything else equal, runs the same plan no slower (every kernel and
    transfer takes at most as long): DeepSeek-V3 on 1,024 H200, tp 16 pp 8 vpp 8 ep 8."""
    spec = {"name": "m", "model": "deepseek-v3", "system": "hgx-h200", "chips": 1024,
            "training": {"tokens": "1T", "seq_len": 8192, "global_batch_seqs": 64, "precision": "fp8"}}
    plan = dict(tp=16, pp=8, vpp=8, ep=8, etp=1, cp=1, dp=8, zero=1, recompute="selective",
                schedule="interleaved", node_limit=0, mb=1)
    assert max(_slower_with(spec, plan, "hbm_bw", f) for f in (1.01, 1.05, 1.1, 1.2, 1.3, 1.5)) <= 1 + 1e-12


def test_more_hbm_bandwidth_never_slows_a_plan_dualpipe_full_recompute():
    """The same property for Qwen3-235B-A22B on 256 H200 under HAI-LLM's DualPipe with full recompute (selective
    recompute or none: 0.5-0.7% slower too)."""
    spec = {"name": "m", "model": "qwen3-235b-a22b", "system": "hgx-h200", "chips": 256, "framework": "deepseek-hai-llm",
            "training": {"tokens": "1T", "seq_len": 1024, "global_batch_seqs": 2048, "precision": "bf16"}}
    plan = dict(tp=2, pp=4, vpp=1, ep=32, etp=1, cp=1, dp=32, zero=0, recompute="full", schedule="dualpipe",
                node_limit=0, mb=4)
    assert _slower_with(spec, plan, "hbm_bw", 1.5) <= 1 + 1e-12
