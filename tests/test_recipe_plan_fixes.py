"""Published tables whose plan columns were carried over from an earlier container: the run spec takes the plan of
the recipe that shipped in the measured container, and these checks hold it to that recipe.

Values below are read from the sources, not from trainsim (NVIDIA-NeMo/Megatron-Bridge git history):

- NeMo 25.11 ships Megatron-Bridge 0.2.0 (docs/releases/software-versions.md, "NeMo Framework 25.11").
  scripts/performance/configs/qwen3/workload_base_configs.py at v0.2.0, QWEN3_30B_A3B_H100_FP8_CS_BASE_CONFIG:
  num_gpus=16, pipeline_model_parallel_size=2, virtual_pipeline_model_parallel_size=12, moe_a2a_overlap=True, no
  micro_batch_size (WorkloadBaseConfig default 1); BASE_QWEN3_30B_A3B_CONFIG: expert_model_parallel_size=8,
  global_batch_size=512. Commit 8aed9a229 (PR #1348 cherry-picked into r0.2.0) replaced ``micro_batch_size=2``
  with ``moe_a2a_overlap=True``. The table row (MBS 2, VP 24, GA 32) repeats the 25.09 row's columns.
- NeMo 26.02.01 ships r0.3.1 (docs/releases/known-issues.md). qwen3_workload_base_configs.py at v0.3.1,
  QWEN3_30B_A3B_PRETRAIN_CONFIG_H100_FP8_CS_V1: num_gpus=16, global_batch_size=1024, expert_model_parallel_size=16,
  moe_a2a_overlap=False, moe_flex_dispatcher_backend="hybridep", pipeline parallel size the default 1 (commit
  f29a269f8, PR #2477, "Update Qwen3 30B H100 Base Configs with HybridEP"). The table row repeats the 26.02 row's
  PP 2 / VP 12 / EP 8.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from trainsim.spec import load_run

RUNS = Path(__file__).resolve().parent.parent / "validation" / "runs"

# (file, {plan field: value from the recipe}, {training field: value from the recipe}); dp = gpus / (tp x pp x cp)
RECIPES = [
    ("megatron-bridge-2511-qwen3-30b-a3b-h100-16-fp8cs-pp2",
     {"tp": 1, "pp": 2, "vpp": 12, "ep": 8, "dp": 16 // (1 * 2 * 1), "micro_batch": 1},
     {"global_batch_seqs": 512, "moe_a2a_overlap": True, "moe_dispatcher": None}),
    ("megatron-bridge-260201-qwen3-30b-a3b-h100-16-fp8-pp2",
     {"tp": 1, "pp": 1, "ep": 16, "dp": 16 // (1 * 1 * 1), "micro_batch": 1},
     {"global_batch_seqs": 1024, "moe_a2a_overlap": None, "moe_dispatcher": "hybridep"}),
]


@pytest.mark.parametrize("name,plan,training", RECIPES, ids=[r[0] for r in RECIPES])
def test_spec_plan_is_the_shipped_recipe(name, plan, training):
    spec = load_run(RUNS / f"{name}.yaml")
    for k, v in plan.items():
        assert getattr(spec.plan, k) == v, (name, k)
    for k, v in training.items():
        assert getattr(spec.training, k) == v, (name, k)
    # gradient accumulation the recipe implies: 512 / (1 x 8) = 64 and 1024 / (1 x 16) = 64 micro-batches
    assert spec.training.global_batch_seqs // (plan["micro_batch"] * plan["dp"]) == 64
