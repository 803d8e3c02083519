"""Review of the stacks / rlgb200 merges (rev13a): what each mend fixes, asserted from the schedule registry's
sources and hand derivations, not from trainsim's output."""
from __future__ import annotations

import pytest
import yaml

from trainsim.api import estimate, parse_run
from trainsim.emit import emit_args
from trainsim.errors import TrainsimError

NANO = """
name: nano
framework: nanotron-2025
model: {name: t7b, layers: 32, hidden: 4096, heads: 32, ffn: 11008, ffn_act: swiglu, vocab: 32000}
system: dgx-h100
chips: 64
training: {seq_len: 4096, global_batch_seqs: 256, precision: bf16}
plan: {tp: 2, pp: 4, zero: 1, micro_batch: 1, schedule: afab}
"""


@pytest.fixture(scope="module")
def afab_estimate():
    return estimate(parse_run(yaml.safe_load(NANO)))


@pytest.mark.parametrize("emitter", ["megatron", "mindspeed"])
def test_afab_refused_by_the_megatron_emitters_without_pointing_at_torchtitan(afab_estimate, emitter):
    # nanotron's AllForwardAllBackwardPipelineEngine has no Megatron-LM / MindSpeed-LLM spelling (their schedules
    # are 1F1B, interleaved and MindSpeed's dualpipev), and torchtitan's emitter writes only 1F1B, Interleaved1F1B
    # and InterleavedZeroBubble: the refusal must not send the user to --emit torchtitan, which refuses it too
    with pytest.raises(TrainsimError, match="afab is not a " + emitter + " schedule; no emitter of trainsim") as exc:
        emit_args(afab_estimate, emitter)
    assert "torchtitan" not in str(exc.value)
    with pytest.raises(TrainsimError, match="afab is not a torchtitan schedule"):
        emit_args(afab_estimate, "torchtitan")


def test_zero_bubble_refused_by_mindspeed_points_at_torchtitan():
    # ZB-H1 is torchtitan's InterleavedZeroBubble (torch.distributed.pipelining) and neither Megatron-LM's nor
    # MindSpeed-LLM's: the refusal names the one emitter that writes it
    doc = yaml.safe_load(NANO.replace("nanotron-2025", "torchtitan-2024").replace("zero: 1", "zero: 0")
                         .replace("schedule: afab", "schedule: zero-bubble"))
    est = estimate(parse_run(doc))
    with pytest.raises(TrainsimError, match="zero-bubble is not a mindspeed schedule; use --emit torchtitan or another"):
        emit_args(est, "mindspeed")


def test_placed_system_cuts_the_scale_up_wiring_with_its_size():
    # placement.placed_system cuts the scale-up level to one host as a run spec's scale_up.size cuts a base system
    # (catalog/resolve.py): the topology is cut too. A 4x4x4 torus of 64 chips on hosts of 16 chips keeps its
    # leading dimensions while they divide 16: 4x4 (catalog/topology.py Topology.resized); left whole, a group of
    # 16 would be priced on a 64-chip torus it does not span
    from dataclasses import replace

    from trainsim.catalog.load import get_system
    from trainsim.catalog.topology import Topology
    from trainsim.posttrain.placement import placed_system

    g = get_system("gb200-nvl72")
    torus = replace(g, levels=(replace(g.levels[0], size=64, topology=Topology("torus", 1.0, 0, (4, 4, 4))),
                               *g.levels[1:]))
    p = placed_system(torus, 128, 16)
    assert p is not None and p.levels[0].size == 16
    assert p.levels[0].topology == Topology("torus", 1.0, 0, (4, 4))
    assert p.levels[1:] == g.levels[1:] and p.levels[0].bw == g.levels[0].bw
    # the sweep's and the scenario ranges' scale-up size go through the same cut
    from trainsim.scenario.ranges import apply
    assert apply(torus, "system", "scale_up_size", 16).levels[0] == p.levels[0]


@pytest.mark.parametrize("name", ["automodel-qwen3-30b-a3b-h100-8-bf16", "gpt-neox-20b-96"])
def test_calibration_plans_only_what_the_stack_offers(name):
    # the calibration's plan set is the estimate's (validate/calibrate.py _plans): the search limits an unstated
    # schedule to the run's stack (search.py restrict_plan), so must the calibration. Before, these runs' plan sets
    # held afab (NeMo AutoModel builds torch.distributed.pipelining schedules, no nanotron engine) and interleaved
    # plans (GPT-NeoX's profile runs 1F1B only), which the estimate never considers
    from pathlib import Path

    from trainsim.frameworks import framework_of, profile
    from trainsim.parallel.schedules import SCHEDULES
    from trainsim.spec import load_run
    from trainsim.validate.calibrate import _plans

    run = load_run(Path(__file__).resolve().parents[1] / "validation" / "runs" / f"{name}.yaml")
    offered = profile(framework_of(run))["schedules"]
    assert "afab" not in offered
    plans = _plans(run)
    assert len(plans) > 0
    assert {SCHEDULES[int(c)] for c in plans.schedule} <= set(offered)


def test_run_spec_doc_lists_every_framework_profile():
    # docs/run-spec.md names the profile ids a run spec's `framework:` takes; megatron-lm-2023 and nanotron-2025
    # were added to the catalog without it. The list must be the catalog's, no more, no less
    import re
    from pathlib import Path

    from trainsim.frameworks import frameworks

    text = (Path(__file__).resolve().parents[1] / "docs" / "run-spec.md").read_text(encoding="utf-8")
    para = text.split("Framework profile ids (in the catalog today):", 1)[1].split("An unknown id", 1)[0]
    assert set(re.findall(r"`([a-z0-9-]+)`", para)) == set(frameworks())


@pytest.mark.parametrize("per_node, ok", [(5, False), (3, False), (96, False), (4, True), (8, True), (128, True)])
def test_gpus_per_node_divides_the_cluster_chips(tmp_path, per_node, ok):
    # NeMo RL v0.6.0 builds the job from num_nodes hosts of gpus_per_node GPUs (grpo.py RayVirtualCluster with
    # bundle_ct_per_node_list = [gpus_per_node] * nodes): 128 chips are 32 hosts of 4, 16 of 8 or 1 of 128, never
    # hosts of 3, 5 or 96 (128 / 5 = 25.6, 128 / 96 = 1.33)
    from pathlib import Path

    from trainsim.posttrain.spec import load_posttrain

    src = Path(__file__).resolve().parents[1] / "validation" / "rl" / "nemo-rl-gb200-q235-128-sync.yaml"
    text = src.read_text(encoding="utf-8")
    assert "    chips: 128" in text and "    gpus_per_node: 4" in text
    f = tmp_path / "spec.yaml"
    f.write_text(text.replace("    gpus_per_node: 4", f"    gpus_per_node: {per_node}", 1), encoding="utf-8")
    if ok:
        assert load_posttrain(f).clusters["main"].gpus_per_node == per_node
    else:
        with pytest.raises(TrainsimError, match=f"chips 128 is not a whole number of hosts of gpus_per_node {per_node}"):
            load_posttrain(f)
