"""Every interleaved model chunk holds at least one layer (check rule 3, parallel/validity.py chunks_filled_ok), and a
stack without uneven stages needs pp x vpp to divide the layers (rule 21, even_pp_ok). Hand-derived cases from
Megatron-Core's get_num_layers_to_build (megatron/core/transformer/transformer_block.py at d98e8a64dd)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import one_plan
from trainsim.errors import TrainsimError
from trainsim.model.load import resolve_model
from trainsim.parallel.enumerate import enumerate_space
from trainsim.parallel.schedules import code
from trainsim.parallel.validity import REASONS, check, chunks_filled_ok, even_pp_ok
from trainsim.plan_estimate import estimate_complete
from trainsim.spec import PlanSpec, load_run
from dataclasses import replace as dreplace
from pathlib import Path

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"
IL = code("interleaved")


def _check(arch, pp, vpp, chips, **kw):
    p = one_plan(pp=pp, vpp=vpp, dp=chips // pp, schedule=IL)
    return int(check(p, arch, chips, 8192, 1152.0, **kw)[0])   # 1,152 = 8 x 144: m a multiple of pp 4 and 6


def test_llama31_8b_pp6_vpp6_has_empty_chunks():
    """32 layers over 6 x 6 = 36 chunks: at least four chunks hold no layer (Megatron-Core builds 32 // 6 = 5 per
    rank, not divisible by vpp 6); pp 4 x vpp 8 = 32 chunks of one layer each is valid."""
    arch = resolve_model("llama-3.1-8b")
    assert arch.n_layers == 32
    assert _check(arch, 6, 6, 48) == 3
    assert _check(arch, 4, 8, 32) == 0
    assert _check(arch, 6, 5, 48) == 0          # 30 chunks for 32 layers: the 'any layout' stacks take it


def test_the_searched_space_no_longer_offers_it():
    """enumerate_space with pp 6 fixed on 48 chips offers vpp up to 5 (6 x 5 = 30 <= 32), never 6 or more."""
    arch = resolve_model("llama-3.1-8b")
    space, rejected = enumerate_space(arch, 48, 8192, 1152.0, PlanSpec(pp=6, schedule="interleaved"))
    vpps = set(np.unique(space.base.vpp).tolist())
    assert vpps and max(vpps) <= 5
    assert rejected[3] > 0


def test_stated_plan_is_an_input_error_naming_the_rule():
    """The same plan stated: an input error with rule 3's text (6 chips, dp 1)."""
    run = load_run(RUNS / "mindspeed-ascend-llama31-8b-8.yaml")
    run = dreplace(run, chips=6, training=run.training.model_copy(update={"global_batch_seqs": 12}))
    plan = PlanSpec(tp=1, pp=6, vpp=6, schedule="interleaved", cp=1, dp=1, zero=0, micro_batch=1, recompute="none")
    with pytest.raises(TrainsimError, match="at least one layer"):
        estimate_complete(run, plan)


def test_balanced_split_counts_embedding_and_loss():
    """Llama 3 paper (arXiv 2407.21783 sec. 3.3.2): 126 layers, pp 16, vpp 8 = 128 chunks; under the balanced split
    (--account-for-embedding/loss-in-pipeline-split) the embedding and the loss fill the two extra chunks:
    126 + 2 = 128 units, valid; with the even split two chunks would be empty."""
    assert bool(chunks_filled_ok(126, np.array([16]), np.array([8]), split_units=(1, 1))[0])
    assert not bool(chunks_filled_ok(126, np.array([16]), np.array([8]))[0])
    # stated first / last 7 layers at pp 16, vpp 8 (the 26.06 Llama 3.1 405B rows): 7 + 1 = 8 on each end, the
    # 112 others 8 per middle rank
    assert bool(chunks_filled_ok(126, np.array([16]), np.array([8]), 7, 7, (1, 1))[0])
    assert not bool(chunks_filled_ok(126, np.array([16]), np.array([8]), 7, 7, (0, 0))[0])


def test_even_stack_needs_pp_times_vpp_to_divide_layers():
    """Megatron-LM without uneven stages: 32 layers at pp 4 vpp 3 -> 32 / 4 = 8 per rank, not divisible by 3
    (get_num_layers_to_build: 'num_layers_per_pipeline_rank ... should be divisible by vp_size'); pp 4 vpp 2
    -> 4 per chunk."""
    assert not bool(even_pp_ok(32, np.array([4]), np.array([3]))[0])
    assert bool(even_pp_ok(32, np.array([4]), np.array([2]))[0])
    arch = resolve_model("llama-3.1-8b")
    assert _check(arch, 4, 3, 32, even_pp=True) == 21
    assert _check(arch, 4, 3, 32) == 0
    assert "pp x vpp when interleaved" in REASONS[21][1]


def test_even_stack_counts_embedding_and_loss_under_the_balanced_split():
    """Megatron-Core get_num_layers_to_build at d98e8a64dd (lines 148-158): with --account-for-embedding- and
    --account-for-loss-in-pipeline-split, num_layers = 32 + 1 + 1 = 34 must be divisible by pp: pp 2 and 17
    pass, pp 4 (34 / 4) fails although 4 divides the 32 decoder layers; pp 16 fails too (34 / 16)."""
    arch = resolve_model("llama-3.1-8b")

    def code21(pp, units):
        p = one_plan(pp=pp, dp=1)
        return int(check(p, arch, pp, 8192, 64.0, even_pp=True, split_units=units)[0])
    assert code21(4, (0, 0)) == 0
    assert code21(4, (1, 1)) == 21
    assert code21(2, (1, 1)) == 0
    assert code21(17, (1, 1)) == 0
    assert code21(17, (0, 0)) == 21
    assert code21(16, (1, 1)) == 21
