"""A plan prints the node limit the engine used. DeepSeek's HAI-LLM routes each token to at most M = 4 nodes
(DeepSeek-V3 report, arXiv 2412.19437, sec. 2.1.2 and 4.2: M = 4, the HF config's topk_group 4), and the engine
applies that cap when a plan states none (perf/comm_ep.node_cap); before this change a searched HAI-LLM plan still
printed node_limit=0 (summary, runners-up, Pareto front, to_frame, --json, scenario tables)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

import trainsim
from trainsim.plan_estimate import effective_node_limit
from trainsim.report.fmt import plan as plan_text

ROOT = Path(__file__).resolve().parent.parent
DSV3 = ROOT / "validation" / "runs" / "deepseek-v3-paper-h800-2048.yaml"


def _run(tmp_path: Path, framework: str | None, **plan):
    d = yaml.safe_load(DSV3.read_text())
    d["plan"] = {"tp": 1, "pp": 16, "schedule": "dualpipe", "ep": 64, "cp": 1, "zero": 1, "recompute": "selective",
                 "pipeline_split": "balanced", "recompute_modules": ["layernorm", "mla_up_proj", "moe_act"], **plan}
    if framework is None:
        d.pop("framework")
    else:
        d["framework"] = framework
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(d))
    return trainsim.load_run(p)


def test_searched_hai_llm_plan_shows_the_stacks_four_node_cap(tmp_path):
    res = trainsim.search(_run(tmp_path, "deepseek-hai-llm"))
    assert res.best.plan["ep"] == 64 and res.best.plan["node_limit"] == 4
    assert "node_limit=4" in plan_text(res.best.plan)
    assert all(p["plan"]["node_limit"] == 4 for p in res.pareto if p["plan"]["ep"] > 1)
    assert res.to_dict()["best"]["plan"]["node_limit"] == 4


def test_a_stated_limit_is_kept_and_megatron_has_none(tmp_path):
    assert trainsim.search(_run(tmp_path, "deepseek-hai-llm", node_limit=2)).best.plan["node_limit"] == 2
    # Megatron-Core does not route node-limited (no topk_group cap in its dispatcher): nothing to show
    res = trainsim.search(_run(tmp_path, "megatron-bridge-2026", tp=1, pp=16, schedule="1f1b"))
    assert res.best.plan["node_limit"] == 0


def test_effective_limit_is_vectorised_and_none_without_expert_parallelism(tmp_path):
    run = _run(tmp_path, "deepseek-hai-llm")
    got = effective_node_limit(run, np.array([0, 0, 3]), np.array([1, 8, 8]))
    assert got.tolist() == [0, 4, 3]      # ep 1: no all-to-all, no cap; ep 8: topk_group 4; stated 3 kept
