"""DeepSeek-V3's published plan with the Megatron default recompute modules (core_attn) fits nowhere; the "no plan
fits" message listed two full-recompute alternatives for the same printed plan, at 29.7 s and 22.4 s (main
6202fee). They differed in the stage split, which the message does not show: the least-memory plan's fix
(fit_advice) dropped the stated ``pipeline_split`` and costed the even split, the freed ``plan.recompute`` search kept
it. Now every stated plan option is carried into a fix, and an alternative that reaches the same answer as an
earlier one is listed once."""
from __future__ import annotations

from pathlib import Path

import yaml

import trainsim
from trainsim.alternatives import alternatives, dedupe
from trainsim.fit_advice import KEPT_OPTIONS

ROOT = Path(__file__).resolve().parent.parent
DSV3 = ROOT / "validation" / "runs" / "deepseek-v3-paper-h800-2048.yaml"


def _run(tmp_path: Path, **plan):
    d = yaml.safe_load(DSV3.read_text())
    d["plan"].update(plan)
    d["plan"] = {k: v for k, v in d["plan"].items() if v is not None}
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(d))
    return trainsim.load_run(p)


def test_full_recompute_is_listed_once_and_on_the_stated_split(tmp_path):
    # pipeline_split even is stated against HAI-LLM's balanced default: a fix must keep what the run states
    run = _run(tmp_path, recompute_modules=["core_attn"], pipeline_split="even")
    res = trainsim.search(run)
    assert res.best is None and res.least_memory is not None
    alts = alternatives(run, least=res.least_memory)
    full = [a for a in alts if (a.get("plan") or {}).get("recompute") == "full"]
    assert len(full) == 1
    stated = _run(tmp_path, pipeline_split="even", recompute="full", recompute_modules=None)
    want = trainsim.estimate(stated)
    assert abs(full[0]["step_time_s"] - want.step_time_s) < 1e-9 * want.step_time_s


def test_every_plan_option_is_kept():
    assert {"pipeline_split", "recompute_modules", "recompute_method", "recompute_num_layers",
            "first_stage_layers", "last_stage_layers", "offload_activation_layers"} <= set(KEPT_OPTIONS)


def test_dedupe_keeps_the_first_of_equal_answers_only():
    a = {"text": "full recompute", "plan": {"tp": 1, "recompute": "full"}, "global_batch_seqs": 8, "chips_used": 16,
         "step_time_s": 2.0, "memory_per_chip_bytes": 5e10}
    b = {**a, "text": "plan.recompute: full instead of selective"}
    c = {**a, "text": "optimizer states in host memory", "memory_per_chip_bytes": 4e10}   # same plan, other run
    assert [x["text"] for x in dedupe([a, b, c])] == ["full recompute", "optimizer states in host memory"]
    assert dedupe([]) == []
