"""posttrain.phases._fastest_dp picks the trainer's data-parallel size with the RL framework's training-loop cost
included (posttrain/loops.py train_loop_cost): the loop charges a fixed cost per MoE layer and micro-batch on a
rank, so a larger dp (fewer micro-batches per rank) can win what the engine's step alone would lose."""
from __future__ import annotations

import pytest

from tests.conftest import make_system
from trainsim.model.load import resolve_model
from trainsim.posttrain.phases import train_time

TRAIN_S = 6.50e-3   # NeMo RL's Megatron trainer, per MoE layer and training micro-batch (posttrain/data/train_loops.yaml)


def test_loop_cost_changes_the_dp_choice():
    """Qwen3-30B-A3B (48 MoE layers) on 16 chips of 80 GB, 256 sequences of 8,192 tokens packed two per
    16,384-token bin: 128 micro-batches per step. The engine alone is fastest at dp 4 (tp 4): 32 micro-batches per
    rank, pp 1, so the loop adds 6.5 ms x 48 x 32 = 9.984 s; at dp 16 (tp 1) 8 per rank, 6.5 ms x 48 x 8 = 2.496 s.
    With the loop counted, dp 16 is the faster trainer, and its update is its engine step + 2.496 s."""
    arch = resolve_model("qwen3-30b-a3b")
    assert arch.n_moe_layers == 48
    system = make_system(hbm=80e9)
    kw = dict(pack_tokens=16384)
    alone = train_time(arch, system, 16, 256, 8192, **kw)
    assert alone.plan["dp"] == 4 and alone.plan["pp"] == 1
    dp16 = train_time(arch, system, 16, 256, 8192, plan={"dp": 16}, **kw)
    assert dp16.plan["pp"] == 1
    with_loop = train_time(arch, system, 16, 256, 8192, train_loop="nemo-rl-megatron", **kw)
    assert with_loop.plan["dp"] == 16
    assert with_loop.update_s == pytest.approx(dp16.update_s + TRAIN_S * 48 * 8, rel=1e-9)
    # the engine's pick with its loop (what the choice was before) is slower
    assert with_loop.update_s < alone.update_s + TRAIN_S * 48 * 32
