"""Pipeline degrees that do not divide the layers (qa23's finding): per stack, refused (uneven_stages: false, rule 21)
or priced at the slowest stage of a first/last-only layout (uneven_stages: first_last, Megatron-Core's
--decoder-first/last-pipeline-num-layers) instead of ceil(L / pp). Hand derivations in each test."""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.api import TrainsimError, as_run
from trainsim.frameworks import plan_rules, stage_layout
from trainsim.parallel.validity import even_pp_ok
from trainsim.perf.memory import first_last_layers, rank_layers
from trainsim.plan_estimate import complete_plans, context

from fuzz.specs import run_in_process


def test_even_pp_ok_32_layers():
    # 32 = 2^5: pp 1, 2, 4, 8, 16, 32 divide it; 3, 5, 6, 25 do not
    pp = np.array([1, 2, 3, 4, 5, 6, 8, 16, 25, 32])
    assert list(even_pp_ok(32, pp)) == [True, True, False, True, False, False, True, True, False, True]
    # DeepSeek-V3's 61 layers (a prime): only pp 1 and 61
    assert list(even_pp_ok(61, np.array([1, 2, 6, 16, 61]))) == [True, False, False, False, True]


def test_stage_layouts_of_profiles():
    # Megatron-LM before Megatron-Core's uneven PP (fa8bb5921b, Sep 2024) splits evenly; Megatron-Core 0.9-0.12
    # has first/last stages only; 0.13 on (--pipeline-model-parallel-layout) and MindSpeed (--num-layer-list) any
    assert stage_layout("megatron-lm-2023") == "even" and plan_rules("megatron-lm-2023")["even_pp"]
    assert stage_layout("megatron-core-2024") == "first_last" and not plan_rules("megatron-core-2024")["even_pp"]
    assert stage_layout("megatron-bridge-2025") == "any"
    assert stage_layout("mindspeed-2025") == "any"
    # DeepSpeed's PipelineModule partitions any number of layers (partition_uniform spreads the residual one layer
    # per stage): GLM-130B ran its 70 layers on pp 8 (validation/runs/glm-130b-768.yaml), which must stay valid
    assert stage_layout("deepspeed-megatron") == "any" and stage_layout("gpt-neox") == "any"
    assert 70 % 8 != 0 and not plan_rules("deepspeed-megatron")["even_pp"]


def test_first_last_layers_hand():
    # Llama 3.1 8B, 32 layers on pp 25: 23 middle stages of k = 1 layer leave 9 for the first and last: 5 and 4
    # (k = 2 would need 46 > 32 layers); the even price was ceil(32 / 25) = 2
    even = np.ceil(32 / 25)
    f, m, l_ = first_last_layers(32.0, np.array([25.0]), np.array([1]), np.array([even]))
    assert (f[0], m[0], l_[0]) == (5, 1, 4)
    # 32 layers on pp 12: 10 middle stages of 3 = 30, first 1 and last 1 (slowest 3 = ceil(32 / 12))
    f, m, l_ = first_last_layers(32.0, np.array([12.0]), np.array([1]), np.array([3.0]))
    assert (f[0], m[0], l_[0]) == (1, 3, 1)
    # DeepSeek-V3, 61 layers on pp 6: 4 middle stages of 10 leave 21 -> 11 and 10 (k = 11 leaves 17 -> 9 / 8 with
    # 11-layer middles: also 11); the slowest rank holds 11 = ceil(61 / 6) either way
    f, m, l_ = first_last_layers(61.0, np.array([6.0]), np.array([1]), np.array([11.0]))
    assert max(f[0], m[0], l_[0]) == 11 and f[0] + 4 * m[0] + l_[0] == 61
    # pp dividing L, pp 2 and interleaved plans keep the even split
    f, m, l_ = first_last_layers(32.0, np.array([8.0, 2.0, 5.0]), np.array([1, 1, 2]), np.array([4.0, 16.0, 8.0]))
    assert list(f) == [4, 16, 8] and list(m) == [4, 16, 8] and list(l_) == [4, 16, 8]


def _run(fw: str, pp: int):
    return as_run({"name": "ppdiv", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 100, "framework": fw,
                   "training": {"tokens": 1e12, "seq_len": 8192, "global_batch_seqs": 512, "precision": "bf16"},
                   "plan": {"tp": 1, "pp": pp, "ep": 1, "cp": 1, "micro_batch": 1, "zero": 1, "recompute": "none"}})


def test_stated_pp25_refused_on_even_stack():
    run = _run("megatron-lm-2023", 25)
    with pytest.raises(TrainsimError, match="pp must divide the number of layers"):
        complete_plans(run, run.plan)


def test_stated_pp25_priced_at_slowest_stage():
    # Megatron-Core 0.10: the first rank holds 5 layers (hand derivation above), not ceil(32 / 25) = 2
    run = _run("megatron-core-2024", 25)
    plans, _ = complete_plans(run, run.plan)
    f, m, l_ = rank_layers(context(run), plans)
    assert (f[0], m[0], l_[0]) == (5, 1, 4)
    # Megatron-Bridge (core 0.13 on, any layout): the even price
    run = _run("megatron-bridge-2025", 25)
    plans, _ = complete_plans(run, run.plan)
    assert tuple(x[0] for x in rank_layers(context(run), plans)) == (2, 2, 2)


def test_cli_refusal_one_line_exit_2(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 100\nframework: megatron-lm-2023\n"
                 "training: {tokens: 1T, seq_len: 8192, global_batch_seqs: 512, precision: bf16}\n"
                 "plan: {tp: 1, pp: 25, ep: 1, cp: 1, micro_batch: 1, zero: 1, recompute: none}\n")
    rc, out, err = run_in_process(["estimate", str(p)])
    text = out + err
    assert rc == 2
    assert "plan.pp" in text and "pp=25" in text and "divide the number of layers" in text
    assert len(text.strip().splitlines()) == 1


def test_search_offers_no_pp25_on_even_stack():
    # plan --use-all on 100 chips (qa23 offered pp 25): under Megatron-LM 23.08 pp must divide both the 32 layers
    # and 100 / (tp cp): one of 1, 2, 4
    from trainsim.api import search_plans
    run = as_run({"name": "ppdiv", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 100,
                  "framework": "megatron-lm-2023",
                  "training": {"tokens": 1e12, "seq_len": 8192, "global_batch_seqs": 500, "precision": "bf16"}})
    res = search_plans(run, use_all=True, top=1000)
    pps = {int(e.plan["pp"]) for e in [res.best, *res.runners_up] if e is not None}
    assert pps and pps <= {1, 2, 4}
