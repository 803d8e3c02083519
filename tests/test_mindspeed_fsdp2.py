"""MindSpeed-LLM's FSDP2 (ZeRO-3) in the MindSpeed profiles (framework_schedules.yaml mindspeed-2025 / -2026).

What the sources say, read by hand (Ascend/MindSpeed-LLM at c77308a1, Aug 2026; Ascend/MindSpeed at 028de58c):

* The FSDP2 backend (train_fsdp2.py, mindspeed_llm/fsdp2) first came in 964563b9 (26 Nov 2025), wrapping Hugging
  Face GPT-OSS alone through Megatron's --use-torch-fsdp2; TP (4dd04f37, 19 Jan 2026), CP (5b3bacab, 29 Jan 2026)
  and EP training (98d7c039, 9 Feb 2026) came in 2026. So ZeRO-3 for a MoE plan is the 2026 profile's: mindspeed-2025
  offers zero 0 / 1, mindspeed-2026 zero 0 / 1 / 3.
* mindspeed_llm/fsdp2/utils/arguments.py:371-384 (ParallelArguments): tp_size, fsdp_size, ep_size, ep_fsdp_size,
  cp_size; no pipeline size and no expert tensor-parallel size. The Megatron path refuses FSDP2 with pp != 1
  (mindspeed_llm/core/layerwise_disaggregated_training/initialize.py:583-584; Megatron-LM
  megatron/training/arguments.py:513-514 at core_v0.12.1). So ZeRO-3 needs pp = 1 and etp = 1.
* The MoE path of the backend dispatches by all-to-all over the EP group (mindspeed/fsdp/distributed/
  expert_parallel/dispatcher.py:87, :111), so the profile keeps expert_parallel; cp_size (ulysses / ring) keeps
  context_parallel.
* The backend's command line: ``--parallel.fsdp_size`` etc. override its YAML (examples/fsdp2/qwen3_moe/
  pretrain_qwen3_235b_4k_fsdp2_A3.sh); dp = world / (tp fsdp cp) (model_factory.py:129) and the experts' groups
  world = ep x ep_fsdp x edp (model_factory.py:192).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import trainsim
from conftest import emitted_args, trainsim_cli
from trainsim.errors import TrainsimError
from trainsim.frameworks import plan_rules, profile, resolve_choice, restrict_plan
from trainsim.parallel.validity import REASONS, check, reason, zero3_fsdp2_ok
from trainsim.plan_estimate import plans_from_spec
from trainsim.search import search
from trainsim.spec import parse_run


def test_profiles_offer_what_the_sources_say():
    new, old = profile("mindspeed-2026"), profile("mindspeed-2025")
    assert new["zero"] == [0, 1, 3] and old["zero"] == [0, 1]          # FSDP2 with TP / EP / CP: 2026
    assert new["expert_parallel"] and new["context_parallel"]           # ep_size, cp_size (arguments.py:382, :384)
    assert "dualpipe" in new["schedules"]                               # the Megatron path keeps DualPipeV
    assert plan_rules("mindspeed-2026")["zero3_fsdp2"] and not plan_rules("mindspeed-2025")["zero3_fsdp2"]
    assert resolve_choice("mindspeed") == "mindspeed-2026"             # the alias names the newest
    assert "zero3_fsdp2_source" in new and "arguments.py:371-384" in new["zero3_fsdp2_source"]


def test_rule_by_hand():
    # zero, pp, etp: zero 3 only at pp 1 and etp 1; zero 0 / 1 anywhere
    zero = np.array([3, 3, 3, 1, 0, 3])
    pp = np.array([1, 8, 1, 8, 16, 2])
    etp = np.array([1, 1, 2, 4, 1, 2])
    assert zero3_fsdp2_ok(zero, pp, etp).tolist() == [True, False, False, True, True, False]


def _run(fw, plan, layers=8, chips=64, moe=False):
    model = {"name": "g", "layers": layers, "hidden": 2048, "heads": 16, "ffn": 8192, "ffn_act": "swiglu",
             "vocab": 32000}
    if moe:
        model["moe"] = {"experts": 16, "top_k": 2, "expert_ffn": 1024}
    return parse_run({"model": model, "system": "dgx-h100", "chips": chips, "framework": fw,
                      "training": {"seq_len": 2048, "global_batch_seqs": 256, "precision": "bf16"}, "plan": plan})


def test_check_refuses_zero3_with_pp_or_etp():
    plan = {"tp": 1, "pp": 2, "cp": 1, "micro_batch": 1, "zero": 3, "recompute": "none", "schedule": "1f1b"}
    run = _run("megatron-bridge-2026", plan)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    tr = run.training
    code = check(p, run.arch, run.chips, tr.seq_len, tr.batch_seqs, zero3_fsdp2=True)
    assert int(code[0]) == 16 and "zero 3 needs pp 1" in reason(code[0])
    assert int(check(p, run.arch, run.chips, tr.seq_len, tr.batch_seqs)[0]) == 0    # a stack without the rule


def test_restrict_plan_refuses_what_the_code_refuses():
    with pytest.raises(TrainsimError, match="zero 3 needs pp 1 and etp 1"):
        restrict_plan(trainsim.PlanSpec(pp=8, zero=3), "mindspeed-2026")
    with pytest.raises(TrainsimError, match="zero"):
        restrict_plan(trainsim.PlanSpec(zero=3), "mindspeed-2025")        # no ZeRO-3 in the 2025 stack
    assert restrict_plan(trainsim.PlanSpec(pp=8), "mindspeed-2026").zero == [0, 1]
    assert restrict_plan(trainsim.PlanSpec(pp=1), "mindspeed-2026").zero == [0, 1, 3]
    assert restrict_plan(trainsim.PlanSpec(pp=8, zero=3), "megatron-bridge-2026").zero == 3


def _fits(fw, moe=False):
    run = _run(fw, {"micro_batch": 1}, moe=moe)
    res = search(run, keep_all=True)
    c = res.feasible_table()
    return res, np.asarray(c["zero"]), np.asarray(c["pp"]), np.asarray(c["etp"])


def test_search_never_picks_zero3_with_pp():
    """The same model and cluster under a stack without the rule (Megatron-Bridge: Megatron-FSDP with pp) has
    fitting zero-3 plans at pp > 1 (so the check below can fail); mindspeed-2026 keeps zero 3 at pp 1 only."""
    _, z, pp, _ = _fits("megatron-bridge-2026")
    assert np.any((z == 3) & (pp > 1))
    res, z, pp, etp = _fits("mindspeed-2026", moe=True)
    assert np.any(z == 3) and np.any(pp > 1)                       # both are searched ...
    assert not np.any((z == 3) & ((pp > 1) | (etp > 1)))           # ... never together
    b = res.best.plan
    assert b["zero"] < 3 or (b["pp"] == 1 and b["etp"] == 1)


def _est(zero=3, pp=1, moe=True, etp=1):
    plan = {"tp": 4, "pp": pp, "vpp": 1, "dp": 512, "ep": 64, "etp": etp, "cp": 2, "zero": zero,
            "recompute": "full", "micro_batch": 2, "schedule": "1f1b", "node_limit": 0}
    arch = SimpleNamespace(n_layers=61, is_moe=moe, name="deepseek-v3")
    training = SimpleNamespace(batch_seqs=8192, seq_len=4096, precision="bf16")
    run = SimpleNamespace(arch=arch, training=training, chips=4096,
                          system=SimpleNamespace(chip=SimpleNamespace(id="ascend-950dt")))
    return SimpleNamespace(plan=plan, run=run, step_time_s=5.0)



def test_emit_mindspeed_zero3_is_the_fsdp2_backend(tmp_path):
    from trainsim.emit import emit_args

    text = emit_args(_est(), "mindspeed")
    assert "train_fsdp2.py" in text
    tokens = emitted_args(text, tmp_path)
    # ParallelArguments / TrainingArguments field names (mindspeed_llm/fsdp2/utils/arguments.py at c77308a1)
    known = {"--parallel.tp_size", "--parallel.fsdp_size", "--parallel.cp_size", "--parallel.ep_size",
             "--parallel.ep_fsdp_size", "--parallel.recompute", "--training.per_device_train_batch_size",
             "--training.gradient_accumulation_steps"}
    flags = [t for t in tokens if t.startswith("--")]
    assert set(flags) <= known and "--use-megatron-fsdp" not in text
    val = dict(zip(tokens, tokens[1:]))
    # world = tp cp dp = 4 x 2 x 512 = 4096; full sharding: fsdp_size = dp = 512 (replicate 4096 / (4 x 512 x 2) = 1),
    # experts over the rest of their EP group: ep_fsdp_size = 4096 / 64 = 64; accumulation 8192 / (512 x 2) = 8
    assert val["--parallel.fsdp_size"] == "512" and val["--parallel.ep_fsdp_size"] == "64"
    assert val["--parallel.tp_size"] == "4" and val["--parallel.cp_size"] == "2" and val["--parallel.ep_size"] == "64"
    assert val["--training.gradient_accumulation_steps"] == "8" and val["--parallel.recompute"] == "True"
    # a zero-1 plan stays on the Megatron path
    assert "--use-distributed-optimizer" in emit_args(_est(zero=1, pp=4), "mindspeed")


def test_emit_refuses_zero3_the_backend_cannot_run():
    from trainsim.emit import emit_args

    with pytest.raises(TrainsimError, match="no pipeline"):
        emit_args(_est(pp=4), "mindspeed")
    with pytest.raises(TrainsimError, match="expert tensor"):
        emit_args(_est(etp=2), "mindspeed")


def test_scenarios_run_the_stack_of_their_time():
    """S6 (Atlas 950 SuperPoD, ships Q4 2026), S5's 950 side and the prospective S4 run the 2026 stack; S1 (GLM-5,
    finished by Feb 2026) and S2 (finished by late April 2026, a ~4-month window) started before the FSDP2
    backend's EP (98d7c039, 9 Feb 2026) and keep mindspeed-2025."""
    from pathlib import Path

    import yaml

    scen = Path(__file__).resolve().parents[1] / "scenarios"
    doc = {s: yaml.safe_load((scen / f"{s}.yaml").read_text()) for s in ("S1", "S2", "S4", "S5", "S6")}
    assert doc["S6"]["framework"] == doc["S4"]["framework"] == doc["S5"]["a"]["framework"] == "mindspeed-2026"
    assert "framework" not in doc["S5"]["b"]                       # the 910C side runs S2's own stack
    assert doc["S2"]["framework"] == "mindspeed-2025"
    assert {e["framework"] for e in doc["S1"]["systems"] if e["system"] == "cloudmatrix-384"} == {"mindspeed-2025"}


# --- the rule as a mask of the search's zero axis (issue 14 item 2): refused plans are never plans of the search, the
# engine's memory stays the physics, and a stated refused plan gets the rule's reason line ---

ZERO_RULE = f"{REASONS[16][0]}: {REASONS[16][1]}"       # the search's rejection key (search._rule_texts)


def _no_fit(fw):
    """A dense 64-layer model (hidden 16384, SwiGLU ffn 65536, ~276B parameters) on 64 H100 with tp 8, dp 4 and cp 1
    fixed: every plan has pp = 64 / (8 x 4 x 1) = 2, and none fits in 80 GiB."""
    model = {"name": "g", "layers": 64, "hidden": 16384, "heads": 64, "ffn": 65536, "ffn_act": "swiglu",
             "vocab": 32000}
    return parse_run({"model": model, "system": "dgx-h100", "chips": 64, "framework": fw,
                      "training": {"seq_len": 2048, "global_batch_seqs": 64, "precision": "bf16"},
                      "plan": {"tp": 8, "dp": 4, "cp": 1}})


def _finite_json(obj) -> str:
    """``obj`` as JSON; raises ValueError on an infinite or NaN number anywhere in it."""
    return json.dumps(obj, allow_nan=False, default=str)


def test_refused_zero3_is_counted_by_its_rule_and_never_the_least_memory_plan():
    other = search(_no_fit("megatron-bridge-2026"))
    # without the rule the least-memory plan is zero 3 at pp 2 (so the checks below can fail)
    assert other.best is None and other.least_memory.plan["zero"] == 3 and other.least_memory.plan["pp"] == 2
    res = search(_no_fit("mindspeed-2026"))
    assert res.best is None
    least = res.least_memory
    assert least.plan["pp"] == 2 and least.plan["zero"] in (0, 1)
    assert np.isfinite(least.memory_per_chip_bytes) and least.memory_per_chip_bytes > 80 * 2**30
    # every base row has pp 2: of the stack's zero candidates {0, 1, 1 with the swapped optimizer (swap_optimizer
    # zero [1]), 3 over dp, 3 inside a node (its HSDP group: zero_shard_groups [3], DGX-H100's two network levels)}
    # the two ZeRO-3 ones are refused and three are plans, for each recompute choice alike, so rule 16 rejects two
    # candidates for every three plans; none of the plans fits
    rej = res.rejected
    assert 3 * rej[ZERO_RULE] == 2 * res.plans_evaluated > 0
    assert rej["memory: does not fit in HBM"] == res.plans_evaluated and res.plans_feasible == 0
    assert "zero=3" not in res.no_plan_message()
    _finite_json(res.to_dict())


def test_zero3_asked_where_every_plan_pipelines_is_no_valid_plan():
    """zero 3 stated with pp free, where tp 8, dp 4, cp 1 on 64 chips leave only pp 2: no plan of the stack, said
    with the rule (it once read 'no plan fits in memory: the smallest of 87 plans needs inf GiB')."""
    run = _no_fit("mindspeed-2026")
    run = replace(run, plan=run.plan.model_copy(update={"zero": 3}))
    for prune in (True, False):
        res = search(run, prune=prune)
        assert res.best is None and res.least_memory is None and res.plans_evaluated == 0
        msg = res.no_plan_message()
        assert msg.startswith("no valid plan") and REASONS[16][1] in msg and "inf" not in msg


def test_memory_of_a_refused_plan_is_the_physics():
    """The engine costs a zero-3 plan at pp 2 under mindspeed-2026's context as any other (the rule is a plan rule,
    :func:`check`'s 16, not a memory number): finite, and below the same plan at zero 1, since ZeRO-3 also shards
    the weights and gradients over dp = 4."""
    from trainsim.perf.step import evaluate
    from trainsim.plan_estimate import context

    run = _no_fit("mindspeed-2026")
    mem = {}
    for z in (1, 3):
        spec = trainsim.PlanSpec(tp=8, pp=2, cp=1, micro_batch=1, zero=z, recompute="full", schedule="1f1b")
        p = plans_from_spec(spec, run.chips, run.arch)
        mem[z] = float(evaluate(context(run), p, detail=False).memory["total"][0])
    assert np.isfinite(mem[3]) and 0 < mem[3] < mem[1]


def test_enumeration_masks_exactly_what_check_refuses():
    from trainsim.parallel.enumerate import enumerate_space

    run = _run("mindspeed-2026", {"micro_batch": 1}, moe=True)
    tr = run.training
    args = (run.arch, run.chips, tr.seq_len, tr.batch_seqs)
    kw = dict(batch_tol=tr.batch_tol, domain=run.system.scale_up_size, use_all=False)
    free, free_rej = enumerate_space(*args, **kw)
    masked, rej = enumerate_space(*args, **kw, zero3_fsdp2=True)
    fp = free.plans()
    # by hand: zero 3 with pp > 1 or etp > 1
    refused = (fp.zero == 3) & ((fp.pp > 1) | (fp.etp > 1))
    assert 0 < refused.sum() < len(fp) and free_rej.get(16, 0) == 0
    assert rej[16] == int(refused.sum()) and len(masked) == len(free) - int(refused.sum())
    mp = masked.plans()
    assert len(mp) == len(masked) and not np.any((mp.zero == 3) & ((mp.pp > 1) | (mp.etp > 1)))
    assert np.any(mp.zero == 3)
    assert not check(mp, run.arch, run.chips, tr.seq_len, tr.batch_seqs, tr.batch_tol, only={16},
                     zero3_fsdp2=True).any()


@pytest.fixture(scope="module", params=["mindspeed-2026", "mindspeed-2025"])
def pruned_and_exhaustive(request):
    run = _run(request.param, {"micro_batch": 1}, moe=True)
    return search(run, with_pareto=False), search(run, prune=False, with_pareto=False)


def test_pruned_search_counts_the_space_it_searched(pruned_and_exhaustive):
    """A pruned search without the Pareto front counts the whole space afterwards; it counts the plans of the
    stack's rules (zero 3, DualPipe, even vpp) as the exhaustive search does (it once recounted without them)."""
    a, b = pruned_and_exhaustive
    assert (a.plans_evaluated, a.plans_feasible, a.rejected) == (b.plans_evaluated, b.plans_feasible, b.rejected)


def test_pruned_search_finds_the_exhaustive_best(pruned_and_exhaustive):
    """Once a strict xfail (gemm30, s30): the exhaustive grid ranked mindspeed-2026's tp 1 pp 2 DualPipe ep 16 row
    2.2% slower per sequence than ep 8 where evaluate put it 0.13% faster: perf.step.STATE_KEY lacked the
    schedule, so a DualPipe plan took the dp sync and optimizer time of a 1F1B plan of its layout in the same grid
    (tests/test_search_grid_consistency.py). Both searches now give ep 16 (51,317 tokens/s per chip)."""
    a, b = pruned_and_exhaustive
    assert a.best.plan == b.best.plan


REFUSED = """\
model: {name: g, layers: 8, hidden: 2048, heads: 16, ffn: 8192, ffn_act: swiglu, vocab: 32000,
        moe: {experts: 16, top_k: 2, expert_ffn: 1024}}
system: dgx-h100
chips: 64
framework: mindspeed-2026
training: {seq_len: 2048, global_batch_seqs: 256, precision: bf16}
plan: {tp: 2, pp: PP, cp: 1, ep: 4, ETP micro_batch: 1, zero: 3, recompute: none, schedule: 1f1b}
"""


@pytest.mark.parametrize("pp,etp,commands", [
    (2, "etp: 1,", ("estimate", "check", "plan")),     # pp stated: refused as the spec is read
    (1, "etp: 2,", ("estimate", "check", "plan")),     # etp 2 stated at zero 3: the FSDP2 backend has no etp
])
def test_stated_refused_plan_is_the_rule_reason_exit_2(tmp_path, pp, etp, commands):
    f = tmp_path / "run.yaml"
    f.write_text(REFUSED.replace("PP", str(pp)).replace("ETP ", etp + " " if etp else ""))
    for cmd in commands:
        r = trainsim_cli(cmd, str(f))
        assert r.returncode == 2, (cmd, r.stdout, r.stderr)      # the CLI's input-error contract (test_cli.py)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert f"plan.zero: {REASONS[16][1]}" in r.stderr


def test_plan_and_scenario_carry_no_infinite_memory(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text(REFUSED.replace("tp: 2, pp: PP, cp: 1, ep: 4, ETP micro_batch: 1, zero: 3, recompute: none, "
                                 "schedule: 1f1b", "micro_batch: 1"))
    r = trainsim_cli("plan", str(f), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in plan --json"))
    assert d["rejected"][ZERO_RULE] > 0 and d["best"] is not None
    assert all(not (p["plan"]["zero"] == 3 and (p["plan"]["pp"] > 1 or p["plan"]["etp"] > 1)) for p in d["pareto"])
    # S6 runs mindspeed-2026
    r = trainsim_cli("scenario", str(Path(__file__).resolve().parents[1] / "scenarios" / "S6.yaml"), "--json", "-q")
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in scenario S6 --json"))


def test_zero3_default_etp_is_the_fsdp2_backends_with_its_source():
    # By hand from the sources (Ascend/MindSpeed-LLM c77308a1, Ascend/MindSpeed 028de58c): the FSDP2 backend's
    # ParallelArguments have tp_size but no expert tensor-parallel size (mindspeed_llm/fsdp2/utils/arguments.py
    # :371-384), and the experts' device mesh is ('edp', 'efsdp', 'ep') with no tp dimension (mindspeed/fsdp/
    # distributed/parallel_state.py:74-78). So at ZeRO-3 an unstated etp is 1.
    from trainsim.frameworks import zero3_defaults
    from trainsim.spec import PlanSpec
    p = profile("mindspeed-2026")
    assert p["zero3_defaults"] == {"etp": 1}
    assert "parallel_state.py:74-78" in p["zero3_defaults_source"] and "arguments.py:371-384" in p["zero3_defaults_source"]
    assert zero3_defaults(PlanSpec(tp=2, zero=3), "mindspeed-2026") == (PlanSpec(tp=2, zero=3, etp=1), {"etp": 1})
    # a stated etp stays (restrict_plan refuses one other than 1 at zero 3); another ZeRO stage is the Megatron path
    assert zero3_defaults(PlanSpec(tp=2, zero=3, etp=1), "mindspeed-2026")[1] == {}
    assert zero3_defaults(PlanSpec(tp=2, zero=1), "mindspeed-2026") == (PlanSpec(tp=2, zero=1), {})
    assert zero3_defaults(PlanSpec(tp=2, zero=[1, 3]), "mindspeed-2026")[1] == {}   # zero not fixed: searched
    # stacks without the key (zero 3 is not another backend there) leave the plan alone
    assert "zero3_defaults" not in profile("mindspeed-2025")
    assert zero3_defaults(PlanSpec(tp=2, zero=3), "torchtitan-2024")[1] == {}


@pytest.mark.parametrize("zero,etp", [
    (3, 1),   # FSDP2 backend: experts not tensor-split (profile zero3_defaults)
    (1, 2),   # Megatron path: --expert-tensor-parallel-size defaults to tp = 2 (expert_ffn 1024 % 2 == 0 and
              # tp cp dp = 64 divisible by ep tp = 8, plan_estimate.plans_from_spec)
])
def test_check_and_estimate_read_an_unstated_etp_alike(tmp_path, zero, etp):
    f = tmp_path / "run.yaml"
    f.write_text(REFUSED.replace("PP", "1").replace("ETP ", "").replace("zero: 3", f"zero: {zero}"))
    e = trainsim_cli("estimate", str(f), "--json")
    c = trainsim_cli("check", str(f), "--json")
    assert e.returncode == 0 and c.returncode == 0, (e.stderr, c.stderr)
    assert json.loads(e.stdout)["plan"]["etp"] == etp
    resolved = json.loads(c.stdout)["resolved"]
    assert f"etp={etp}" in resolved["plan defaulted"] and resolved["plan searched"] == "none"
    assert ("mindspeed-2026 at zero 3" in resolved["plan defaulted"]) == (zero == 3)


def test_check_refuses_the_complete_plan_estimate_refuses(tmp_path):
    # tp 3 does not divide the 16 heads (parallel/validity.py): estimate and check give the one same error line
    f = tmp_path / "run.yaml"
    f.write_text(REFUSED.replace("PP", "1").replace("ETP ", "").replace("tp: 2", "tp: 3"))
    e, c = trainsim_cli("estimate", str(f)), trainsim_cli("check", str(f))
    assert e.returncode == c.returncode == 2 and e.stderr == c.stderr and "plan.tp:" in c.stderr


def test_fsdp2_backend_runs_expert_parallelism_at_zero3():
    """MindSpeed-LLM's own DeepSeek-V4-Flash FSDP2 script (Ascend/MindSpeed-LLM
    examples/fsdp2/deepseek4/pretrain_deepseek4_flash_284b_4k_fsdp2_A3.sh at c77308a1): 16 A3 nodes x 16 NPUs = 256,
    --parallel.fsdp_size 256, --parallel.ep_size 128, --parallel.ep_fsdp_size 2, no tp / cp / pipeline size
    (the YAML's ep_modules: the experts), per_device_train_batch_size 2 x gradient_accumulation_steps 4 x 256 ranks
    = 2,048 sequences of 4,096 tokens. So EP with ZeRO-3 at pp 1 is a plan of mindspeed-2026: the rule refuses
    only pp > 1 and etp > 1, not ep > 1 (the Megatron path's --use-torch-fsdp2 does refuse ep, initialize.py:585-586,
    which a rule on ep would wrongly carry over), and the engine prices it."""
    spec = {"tp": 1, "pp": 1, "cp": 1, "ep": 128, "etp": 1, "zero": 3, "micro_batch": 2, "recompute": "full",
            "schedule": "1f1b"}
    run = parse_run({"model": "deepseek-v4-flash", "system": "cloudmatrix-384", "chips": 256,
                     "framework": "mindspeed-2026", "plan": spec,
                     "training": {"seq_len": 4096, "global_batch_seqs": 2048, "precision": "bf16"}})
    p = plans_from_spec(run.plan, run.chips, run.arch)
    tr = run.training
    assert int(p.dp[0]) == 256 and int(p.ep[0]) == 128
    assert int(check(p, run.arch, run.chips, tr.seq_len, tr.batch_seqs, zero3_fsdp2=True)[0]) == 0
    assert restrict_plan(trainsim.PlanSpec(pp=1, ep=128, etp=1), "mindspeed-2026").zero == [0, 1, 3]
    est = trainsim.estimate(run)
    assert est.plan["zero"] == 3 and est.plan["ep"] == 128 and est.plan["pp"] == 1
