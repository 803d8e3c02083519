"""Stacks as their sources state them: the SageMaker model parallelism library v1 has no ZeRO-2, and the NeMo 25.02 /
25.04 tables (NeMo 2.x on Megatron-Core 0.12) are their own stack, not Megatron-Bridge's (issue 14 criterion 2)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import trainsim
from trainsim.frameworks import profile, restrict_plan, stack_flags

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"


def test_smp_v1_offers_zero_1_and_3_only():
    # smdistributed.modelparallel 1.11-era backend/config.yaml: shard_optimizer_state (ZeRO-1) and
    # sharded_data_parallel_degree, which backend/zero_config.py accepts only as DeepSpeed stage 3
    assert set(restrict_plan(trainsim.PlanSpec(), "other-sagemaker-smp").values("zero")) == {0, 1, 3}
    with pytest.raises(trainsim.TrainsimError, match="zero"):
        restrict_plan(trainsim.PlanSpec(zero=2), "other-sagemaker-smp")
    assert "Only stage 3" in profile("other-sagemaker-smp")["zero_source"]


def test_bloomberggpt_micro_batch_is_the_whole_per_gpu_batch():
    # SMP's 'microbatches' defaults to 1: 2,048 sequences / 512 GPUs = 4 per GPU in one micro-batch
    spec = yaml.safe_load((RUNS / "bloomberggpt-50b-512.yaml").read_text())
    assert spec["plan"]["micro_batch"] == spec["training"]["global_batch_seqs"] // spec["chips"] == 4


def test_nemo_25_02_and_25_04_tables_are_nemo_2025():
    nemo = sorted(RUNS.glob("nemo-250*.yaml"))
    assert len(nemo) == 14   # 7 rows of the 25.02 summary (DGX-B200) + 7 of the 25.04 summary (GB200)
    for f in nemo:
        spec = yaml.safe_load(f.read_text())
        assert spec["framework"] == "nemo-2025", f.name
        assert "NeMo 2.0" in spec["framework_version"], f.name
    for f in RUNS.glob("megatron-bridge-2511-*.yaml"):
        assert yaml.safe_load(f.read_text())["framework"] == "megatron-bridge-2025", f.name


def test_nemo_2x_checks_gradients_for_nan_megatron_bridge_does_not():
    # NeMo v2.2.0 / v2.3.0 recipes: DistributedDataParallelConfig(check_for_nan_in_grad=True); the Megatron-Bridge
    # performance scripts set recipe.ddp.check_for_nan_in_grad = False
    assert stack_flags("nemo-2025")["grad_nan_check"]
    assert not stack_flags("megatron-bridge-2025")["grad_nan_check"]
    for fw in ("nemo-2025", "megatron-bridge-2025"):
        assert stack_flags(fw)["grad_buffer_zeroed"] and not stack_flags(fw)["grad_prescaled"]
