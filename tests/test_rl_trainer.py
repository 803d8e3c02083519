"""The RL trainer as its recipe states it (issues 13 and 18): every NeMo RL GRPO point of validation/rl trains with
the plan, software stack and optimizer precisions of its recipe (NVIDIA-NeMo/RL tag v0.6.0, or tag v0.5.0 for the
nemo-rl-v05-* rows: examples/configs/recipes/llm/performance/grpo-*.yaml over examples/configs/grpo_math_1B.yaml), and
that plan fits.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from trainsim.errors import TrainsimError
from trainsim.posttrain.spec import load_posttrain

REPO = Path(__file__).resolve().parents[1]
RL = sorted((REPO / "validation" / "rl").glob("*.yaml"))

#: (model, pp) -> (first-stage layers, last-stage layers, layers of each middle stage), by hand from the recipes:
#: DeepSeek-V3 (61 layers) PP16 first 3 / last 2 (grpo-deepseek-v3-32n8g.yaml): 3 + 2 + 14 x 4 = 61; PP8 first 7 /
#: last 6 (grpo-deepseek-v3-32n4g.yaml): 7 + 6 + 6 x 8 = 61; Qwen3-235B-A22B (94 layers) PP8 11 / 11
#: (grpo-qwen3-235b-16n8g.yaml): 11 + 11 + 6 x 12 = 94; PP4 23 / 23 (grpo-qwen3-235b-16n4g.yaml): 23 + 23 + 2 x 24 = 94
STAGES = {("deepseek-v3", 16): (3, 2, 4), ("deepseek-v3", 8): (7, 6, 8),
          ("qwen3-235b-a22b", 8): (11, 11, 12), ("qwen3-235b-a22b", 4): (23, 23, 24)}
LAYERS = {"deepseek-v3": 61, "qwen3-235b-a22b": 94}


def _model(pt) -> str:
    return pt.student_arch.name.lower()


@pytest.mark.parametrize("path", RL, ids=[p.stem for p in RL])
def test_rl_trainer_states_its_recipe(path):
    pt = load_posttrain(path)
    s = pt.student
    plan = s.train_plan
    # use_distributed_optimizer true (grpo_math_1B.yaml megatron_cfg.optimizer, no recipe turns it off)
    assert plan["zero"] == 1
    # the stack of the table's release: v0.6 rows on NeMo RL v0.6.0's pins, the v0.5 rows (nemo-rl-v05-*) on v0.5.0's
    # (Megatron-Bridge 1e9a459b of 2025-11-24, hence megatron-bridge-2025), the v0.4 rows (nemo-rl-v04-*) on v0.4.0's
    release = ("v0.5.0" if path.name.startswith("nemo-rl-v05-") else
               "v0.4.0" if path.name.startswith("nemo-rl-v04-") else "v0.6.0")
    assert s.train_framework and s.train_framework_version and release in s.train_framework_version
    if release in ("v0.4.0", "v0.5.0"):
        # Megatron-Bridge 62f4704b (2025-10-03) at v0.4.0, 1e9a459b (2025-11-24) at v0.5.0
        assert s.train_framework == "megatron-bridge-2025"
    # grad_reduce_in_fp32 false -> BF16 gradient buffer; Adam states at Megatron-Core's FP32 defaults
    assert (s.train_optimizer.grads, s.train_optimizer.moments, s.train_optimizer.master_weights) == \
        ("bf16", "fp32", "fp32")
    # NeMo RL builds its ConfigContainer without comm_overlap: Megatron-Core's tp_comm_overlap default False
    assert s.train_options["tp_comm_overlap"] is False
    if plan.get("pp", 1) > 1 and _model(pt) in LAYERS:
        first, last, middle = STAGES[(_model(pt), plan["pp"])]
        assert (plan["first_stage_layers"], plan["last_stage_layers"]) == (first, last)
        assert first + last + (plan["pp"] - 2) * middle == LAYERS[_model(pt)] == pt.student_arch.n_layers


@pytest.mark.parametrize("path", RL, ids=[p.stem for p in RL])
def test_rl_trainer_fits_with_its_stated_plan(path):
    """A run that happened is the proof: the trainer's stated plan fits in the chip's memory, with the ZeRO stage
    the recipe used (no ZeRO-3 the recipe did not use)."""
    from trainsim.posttrain.timeline import trainer_time

    pt = load_posttrain(path)
    tr = trainer_time(pt)
    hbm = pt.clusters[pt.student.cluster].system.chip.hbm_bytes
    assert tr.fits and 0 < tr.memory_per_chip_bytes <= hbm, \
        f"{path.name}: {tr.memory_per_chip_bytes / 2**30:.1f} GiB per chip > {hbm / 2**30:.1f} GiB"
    for k, v in pt.student.train_plan.items():
        if k in tr.plan:
            assert tr.plan[k] == v, f"{path.name}: plan {k} {tr.plan[k]} != stated {v}"


def test_trainer_run_carries_the_stack():
    from trainsim.catalog import get_system
    from trainsim.model.load import resolve_model
    from trainsim.posttrain.phases import trainer_run

    run = trainer_run(resolve_model("deepseek-v3", None), get_system("dgx-h100"), 256, 1536, 256, "bf16",
                      {"pp": 16, "ep": 16, "zero": 1, "first_stage_layers": 3, "last_stage_layers": 2},
                      "megatron-bridge-2026", {"grads": "bf16"}, {"tp_comm_overlap": False})
    assert run.framework == "megatron-bridge-2026"
    assert run.optimizer.grads == "bf16" and run.optimizer.moments is None
    assert run.training.tp_comm_overlap is False and run.training.seq_len == 1536
    assert run.training.global_batch_seqs == 256
    assert (run.plan.first_stage_layers, run.plan.last_stage_layers, run.plan.zero) == (3, 2, 1)


BAD = [("train_framework: nemo-rl-0.6", "student.train_framework", "nemo-rl-0.6"),
       ("train_optimizer: {grads: fp16}", "student.train_optimizer.grads", "fp16"),
       ("train_options: {seq_len: 4096}", "student.train_options", "seq_len"),
       ("train_options: {tp_comm_overlap: maybe}", "student.train_options.tp_comm_overlap", "maybe")]


@pytest.mark.parametrize("line,field,value", BAD)
def test_bad_trainer_keys_name_file_field_and_value(tmp_path, line, field, value):
    text = (REPO / "validation" / "rl" / "nemo-rl-h100-q30-32-sync.yaml").read_text()
    kept = []
    skip = False
    for ln in text.splitlines():
        if ln.startswith("  train_framework:") or ln.startswith("  train_optimizer:") or \
                ln.startswith("  train_options:"):
            skip = ln.rstrip().endswith(":")
            continue
        if skip and ln.startswith("    "):
            continue
        skip = False
        kept.append(ln)
        if ln.startswith("  cluster: main"):
            kept.append("  " + line)
    bad = tmp_path / "bad-rl.yaml"
    bad.write_text("\n".join(kept) + "\n")
    with pytest.raises(TrainsimError) as exc:
        load_posttrain(bad)
    msg = str(exc.value)
    assert "bad-rl.yaml" in msg and field in msg and value in msg


def test_trainer_stack_reaches_the_engine():
    """The spec's trainer keys are what the engine prices: FP32 gradients instead of the recipe's BF16 ones add
    2 bytes per local parameter (more memory), and dropping the recipe's uneven stages (3 / 2 layers on the first /
    last of 16 stages) puts 4 layers plus the embedding on the first stage (more memory there)."""
    from dataclasses import replace

    from trainsim.posttrain.phases import clear_cache
    from trainsim.posttrain.timeline import trainer_time

    pt = load_posttrain(REPO / "validation" / "rl" / "nemo-rl-h100-dsv3-256-sync.yaml")
    clear_cache()
    base = trainer_time(pt)
    fp32 = replace(pt, student=pt.student.model_copy(
        update={"train_optimizer": pt.student.train_optimizer.model_copy(update={"grads": "fp32"})}))
    even_plan = {k: v for k, v in pt.student.train_plan.items() if k not in ("first_stage_layers", "last_stage_layers")}
    even = replace(pt, student=pt.student.model_copy(update={"train_plan": even_plan}))
    assert trainer_time(fp32).memory_per_chip_bytes > base.memory_per_chip_bytes
    assert trainer_time(even).memory_per_chip_bytes > base.memory_per_chip_bytes
