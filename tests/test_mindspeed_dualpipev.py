"""MindSpeed's DualPipeV with fb-overlap in the MindSpeed profiles (framework_schedules.yaml mindspeed-2025 / -2026,
flag ``dualpipev_fb_overlap``).

What the sources say, read by hand (Ascend/MindSpeed at 028de58c, Ascend/MindSpeed-LLM at c77308a1):

* mindspeed/features_manager/pipeline_parallel/dualpipev_feature.py:25-27: 'The dualpipev and overlap_grad_reduce are
  incompatible.'; :34-36: 'The dualpipev and context_parallel are incompatible.' (since 7fbac648, 5 Jun 2025).
* mindspeed/features_manager/moe/fb_overlap.py:77 incompatible_check(args, 'overlap_grad_reduce'); :91-94 'fb overlap
  only support expert-tensor-parallel-size=1 and expert-model-parallel-size > 1'. Its first form
  (pipeline_parallel/fb_overlap_feature.py at 788a2150, 28 Mar 2025): overlap_grad_reduce refused (:20) and tp > 1
  needs --moe-tp-extend-ep (:37), experts not tensor-split.
* MindSpeed-LLM ac5e0a66 (29 Mar 2025) to 97328951 (4 Aug 2025), mindspeed_llm/training/arguments.py
  _validate_dualpipe_args: 'dualpipev currently can only be used with 1f1b overlap' (dualpipev needed fb-overlap);
  the A3 DeepSeek-V3 script sets --schedules-method dualpipev and --moe-fb-overlap from 7dd81733 (30 Mar 2025), not
  at 404144b6 (10 Feb 2025); no version of it sets --overlap-grad-reduce.
* Without overlap_grad_reduce the DualPipeV DDP keeps one bucket (dualpipev_chunks.py:454-456) reduced by
  finalize_model_grads after the schedule (dualpipev_schedules.py:1589): the gradient sync is exposed, and Megatron-LM
  refuses --overlap-param-gather without --overlap-grad-reduce (megatron/training/arguments.py:505-506,
  core_v0.12.1).

So on these stacks a DualPipe plan needs etp = 1 and cp = 1, and its DP gradient sync hides nothing.
"""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.errors import TrainsimError
from trainsim.frameworks import profile, stack_flags
from trainsim.parallel.schedules import code
from trainsim.parallel.validity import check, dualpipev_fb_overlap_ok, reason
from trainsim.plan_estimate import estimate_complete, plans_from_spec
from trainsim.search import search
from trainsim.spec import parse_run


def test_profiles_carry_the_rule_with_sources():
    for fw in ("mindspeed-2025", "mindspeed-2026"):
        assert stack_flags(fw)["dualpipev_fb_overlap"]
        src = profile(fw)["dualpipev_fb_overlap_source"]
        assert "dualpipev_feature.py:25-27" in src and "fb_overlap.py" in src
    # no DualPipe in the 2024 stack; HAI-LLM's DualPipe is DeepSeek's own, not MindSpeed's
    assert not stack_flags("mindspeed-2024")["dualpipev_fb_overlap"]
    assert not stack_flags("deepseek-hai-llm")["dualpipev_fb_overlap"]


def test_rule_by_hand():
    d, f = code("dualpipe"), code("1f1b")
    schedule = np.array([d, d, d, d, f, f])
    etp = np.array([1, 2, 1, 2, 2, 1])
    cp = np.array([1, 1, 2, 2, 1, 2])
    # DualPipe only with etp 1 and cp 1; other schedules untouched by this rule
    assert dualpipev_fb_overlap_ok(schedule, etp, cp).tolist() == [True, False, False, False, True, True]


def _run(fw, plan, training=None, chips=64):
    model = {"name": "m", "layers": 16, "hidden": 2048, "heads": 16, "ffn": 8192, "ffn_act": "swiglu",
             "vocab": 32000, "moe": {"experts": 16, "top_k": 2, "expert_ffn": 1024}}
    tr = {"seq_len": 2048, "global_batch_seqs": 256, "precision": "bf16"}
    tr.update(training or {})
    return parse_run({"model": model, "system": "dgx-h100", "chips": chips, "framework": fw, "training": tr,
                      "plan": plan})


def _plan(**kw):
    p = {"tp": 1, "pp": 4, "vpp": 1, "cp": 1, "ep": 8, "etp": 1, "micro_batch": 1, "zero": 1,
         "recompute": "none", "schedule": "dualpipe", "node_limit": 0}
    p.update(kw)
    return p


@pytest.mark.parametrize("field, value", [("etp", 2), ("cp", 2)])
def test_check_refuses_dualpipe_with_etp_or_cp(field, value):
    run = _run("mindspeed-2025", _plan(**{field: value}))
    p = plans_from_spec(run.plan, run.chips, run.arch)
    tr = run.training
    c = check(p, run.arch, run.chips, tr.seq_len, tr.batch_seqs, dualpipev_fb_overlap=True)
    assert int(c[0]) == 17 and "dualpipe as MindSpeed's dualpipev" in reason(c[0]) and "etp 1 and cp 1" in reason(c[0])
    assert int(check(p, run.arch, run.chips, tr.seq_len, tr.batch_seqs)[0]) == 0     # a stack without the rule
    with pytest.raises(TrainsimError, match="needs etp 1 and cp 1"):
        estimate_complete(run, run.plan)


def test_search_never_picks_dualpipe_with_etp():
    """Under HAI-LLM (DualPipe without the rule) the same MoE has fitting DualPipe plans with etp > 1, so the check
    below can fail; mindspeed-2025 searches both but never together."""
    def table(fw):
        c = search(_run(fw, {"micro_batch": 1, "cp": 1}), keep_all=True).feasible_table()
        return np.asarray(c["schedule"]), np.asarray(c["etp"])
    s, etp = table("deepseek-hai-llm")
    assert np.any((s == "dualpipe") & (etp > 1))
    s, etp = table("mindspeed-2025")
    assert np.any(s == "dualpipe") and np.any(etp > 1)
    assert not np.any((s == "dualpipe") & (etp > 1))


def _dp_comm(schedule, stated=None):
    tr = {} if stated is None else {"grad_sync_overlap": stated}
    run = _run("mindspeed-2025", _plan(schedule=schedule), tr)
    return estimate_complete(run, run.plan).breakdown["dp_comm"]


def test_dualpipe_gradient_sync_is_exposed():
    # dualpipev runs without --overlap-grad-reduce: the stack's default exposes all of the sync, as a run stating
    # grad_sync_overlap false does ...
    exposed = _dp_comm("dualpipe", stated=False)
    assert exposed > 0
    assert _dp_comm("dualpipe") == pytest.approx(exposed)
    # ... while its 1F1B keeps Megatron-Core's overlapped buckets (less exposed than the stated-false run)
    assert _dp_comm("1f1b") < _dp_comm("1f1b", stated=False)


def test_emit_mindspeed_dualpipe_moe_writes_fb_overlap(tmp_path):
    """MindSpeed-LLM ac5e0a66 - 97328951 refused dualpipev without --moe-fb-overlap, and the A3 MoE scripts set it
    next to --schedules-method dualpipev; a dense model has no expert all-to-all to overlap (fb-overlap needs
    expert-model-parallel-size > 1, fb_overlap.py:91), so it gets dualpipev alone."""
    from types import SimpleNamespace

    from conftest import emitted_args
    from trainsim.emit import emit_args

    def est(moe):
        plan = {"tp": 1, "pp": 4, "vpp": 1, "dp": 16, "ep": 8 if moe else 1, "etp": 1, "cp": 1, "zero": 1,
                "recompute": "none", "micro_batch": 1, "schedule": "dualpipe", "node_limit": 0}
        run = SimpleNamespace(arch=SimpleNamespace(n_layers=16, is_moe=moe, name="m"),
                              training=SimpleNamespace(batch_seqs=256, seq_len=2048, precision="bf16"), chips=64,
                              system=SimpleNamespace(chip=SimpleNamespace(id="ascend-910c")))
        return SimpleNamespace(plan=plan, run=run, step_time_s=1.0)

    moe = emitted_args(emit_args(est(True), "mindspeed"), tmp_path)
    assert "--moe-fb-overlap" in moe and "--overlap-grad-reduce" not in moe
    assert dict(zip(moe, moe[1:]))["--schedules-method"] == "dualpipev"
    dense = emitted_args(emit_args(est(False), "mindspeed"), tmp_path)
    assert "--moe-fb-overlap" not in dense and "dualpipev" in dense
