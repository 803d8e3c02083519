"""Runs whose own stack states the gradient-reduction dtype carry it (grads pass).

NeMo v2.2.0 (the 25.02 container) scripts/llm/performance/pretrain_<model>.py and NeMo v2.3.0 (25.04)
scripts/performance/utils.py set_primary_perf_configs both set ``recipe.trainer.plugins.grad_reduce_in_fp32 = False``
for FP8 (BF16 main gradients and reduce-scatter, where bf16_mixed() alone says True); NVIDIA's NeMo-Framework-Launcher
config for Nemotron-4 340B's pretraining (nemotron_340b.yaml at 7c842fcd, 'actual GPU/GBS numbers used in
pretraining') sets ``grad_sync_dtype: bf16``. A BF16 gradient is 2 bytes (IEEE-style 16-bit float), an FP32 one 4,
so the engine's data-parallel gradient bytes per parameter are 2 for these runs.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from trainsim.plan_estimate import context
from trainsim.spec import load_run, parse_run

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"
NEMO_25 = sorted(RUNS.glob("nemo-2502-*.yaml")) + sorted(RUNS.glob("nemo-2504-*.yaml"))
NEMOTRON4 = sorted(RUNS.glob("nemotron-4-340b-*.yaml"))


def test_the_rows_are_there():
    # 7 models on each of the 25.02 (B200) and 25.04 (GB200) tables, 3 batch-ramp stages of Nemotron-4 340B
    assert len(NEMO_25) == 14 and len(NEMOTRON4) == 3


@pytest.mark.parametrize("path", NEMO_25 + NEMOTRON4, ids=lambda p: p.stem)
def test_stated_bf16_gradients_with_their_source(path):
    run = load_run(path)
    assert run.optimizer.grads == "bf16"
    text = path.read_text()
    assert ("grad_reduce_in_fp32 = False" in text) if path in NEMO_25 else ("grad_sync_dtype: bf16" in text)
    assert context(run).optimizer.grad_bytes == 2.0


def test_unknown_gradient_dtype_is_an_input_error():
    with pytest.raises(Exception, match="grads"):
        parse_run({"model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8,
                   "training": {"seq_len": 4096, "global_batch_seqs": 8}, "optimizer": {"grads": "fp8"}})
