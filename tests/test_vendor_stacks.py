"""Vendor stacks end to end (issue 14 item 2, frameworks as profiles): the AMD Instinct platforms of the catalog
(systems.yaml mi300x- / mi325x- / mi350x- / mi355x-platform), a run on them that names no framework priced on
AMD's stack (Primus, framework_schedules.yaml default_framework_by_vendor), and the explorer's plan door writing
the flags of the run's own stack (an Ascend run that names none: MindSpeed-LLM's, not Megatron-LM's).

The figures below are the sources' own, written here by hand: AMD's MI300X product page ('Infinity Fabric Links 8,
Peak Infinity Fabric Link Bandwidth 128 GB/s', 'Typical Board Power 750W Peak'), AMD's MI350X datasheet
(LE-92701-00 C 9/25: 'scale-up AMD Infinity Fabric links 7x 153.6 GB/s', 'maximum TBP 1000W'), Azure's ND MI300X v5
('8x400 Gigabit NDR' for 8 MI300X), AMD's ROCm MoRI guide for MI355X ('8x AMD Pensando Pollara 400 AI NICs per
node, ... 1:1 mapping between GPUs and network interfaces') and RCCL's tuning_model_5 (ROCm/rccl
src/graph/tuning.cc at 0cbce2a7: tree LL step xGMI 0.9 us, network 10.5 us)."""
from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner
import pytest
import yaml

from conftest import emitted_args
from trainsim.api import scenarios
from trainsim.catalog import get_system
from trainsim.cli import app
from trainsim.emit import emit_args
from trainsim.estimate import estimate
from trainsim.frameworks import emitter_for, framework_of, resolve_choice
from trainsim.spec import parse_run

GB, GBIT = 1e9, 1e9 / 8
#: the 8-GPU UBB of each platform: 7 of the Infinity Fabric links go one to each peer (no switch)
PEER_LINKS = 7


def _run(system: str, chips: int, **extra):
    return parse_run({"model": "llama-3.1-8b", "system": system, "chips": chips,
                      "training": {"seq_len": 4096, "global_batch_seqs": 64, "precision": "bf16", "tokens": "10B"},
                      **extra})


@pytest.mark.parametrize("sid, chip, link_GBps, tbp_w", [
    ("mi300x-platform", "amd-mi300x", 128.0, 750),     # MI300X page
    ("mi325x-platform", "amd-mi325x", 128.0, 1000),    # the MI300X platform's fabric; MI325X 1000 W (Epoch)
    ("mi350x-platform", "amd-mi350x", 153.6, 1000),    # MI350X datasheet
    ("mi355x-platform", "amd-mi355x", 153.6, 1400),    # MI350 series datasheet; MI355X 1400 W (Epoch)
])
def test_amd_platforms_load_with_their_sources_figures(sid, chip, link_GBps, tbp_w):
    s = get_system(sid)
    up, out = s.levels[0], s.levels[1]
    assert s.chip.id == chip and s.chip.vendor == "AMD"
    assert up.size == 8
    # per chip, one direction: 7 peer links, each figure read as both directions together (hardware.yaml's reading)
    assert up.bw == pytest.approx(PEER_LINKS * link_GBps * GB / 2)
    assert up.topology.kind == "fullmesh"
    assert out.bw == pytest.approx(400 * GBIT)                     # one 400 Gb/s NIC per GPU
    assert (up.latency_s, out.latency_s) == (pytest.approx(0.9e-6), pytest.approx(10.5e-6))   # RCCL tuning_model_5
    assert s.power_per_chip_w == pytest.approx(tbp_w * 1.4)        # TBP x the catalog's all-in factor
    for field in ("scale_up_bw", "scale_out_bw", "scale_up_latency", "power_per_chip_w"):
        assert s.sources[field].source, field                        # every number says where it comes from


def test_amd_platforms_in_catalog_systems():
    r = CliRunner().invoke(app, ["catalog", "systems", "--json"])
    assert r.exit_code == 0, r.output
    ids = r.output
    for sid in ("mi300x-platform", "mi325x-platform", "mi350x-platform", "mi355x-platform"):
        assert sid in ids


def test_a_run_on_an_amd_platform_with_no_framework_is_priced_on_primus():
    """Unstated is the vendor's stack: the estimate takes primus-megatron-2025's defaults and is the very estimate
    of the run that names it; before the AMD platforms were in the catalog the id did not resolve at all."""
    run = _run("mi355x-platform", 16)
    assert run.framework is None and framework_of(run) == "primus-megatron-2025"
    est = estimate(run)
    assert est.extra["profile_defaults"]["framework"] == "primus-megatron-2025"
    named = estimate(_run("mi355x-platform", 16, framework="primus-megatron-2025"))
    assert est.step_time_s == pytest.approx(named.step_time_s, rel=1e-12)


def test_plan_of_an_ascend_run_with_no_framework_writes_mindspeed_flags():
    """The plan door's default was ``framework='megatron'``: an Ascend run naming no stack was searched under
    MindSpeed's space (mindspeed-2026) but given Megatron-LM's flags. Now the flags follow the run's stack."""
    spec = {"model": "llama-3.1-8b", "system": "atlas-900-a2-pod", "chips": 16,
            "training": {"seq_len": 4096, "global_batch_seqs": 64, "precision": "bf16", "tokens": "10B"}}
    ans = scenarios.plan(spec, top=1)
    assert ans.framework == "mindspeed-2026" and ans.emitter == "mindspeed"
    assert ans.flags is not None and "MindSpeed-LLM" in ans.flags.splitlines()[0]
    # an explicit emitter is still honoured: the same search, Megatron-LM's names
    meg = scenarios.plan(spec, top=1, framework="megatron")
    assert meg.framework == "mindspeed-2026" and meg.emitter == "megatron"
    assert "Megatron-LM" in meg.flags.splitlines()[0] and "--tensor-model-parallel-size" in meg.flags
    # an NVIDIA run naming none keeps Megatron-LM's flags
    nv = scenarios.plan({**spec, "system": "dgx-h100"}, top=1)
    assert nv.framework == "megatron-bridge-2026" and nv.emitter == "megatron"


def test_cli_emit_megatron_on_an_ascend_run_still_works(tmp_path):
    """An explicit ``--emit megatron`` on an Ascend run naming no stack is honoured: Megatron-LM's flags, searched
    within what both stacks offer, and one line saying the run's own stack is mindspeed-2026."""
    spec = {"model": "llama-3.1-8b", "system": "atlas-900-a2-pod", "chips": 16,
            "training": {"seq_len": 4096, "global_batch_seqs": 64, "precision": "bf16", "tokens": "10B"}}
    f = tmp_path / "ascend.yaml"
    f.write_text(yaml.safe_dump(spec))
    r = CliRunner().invoke(app, ["plan", str(f), "--emit", "megatron"])
    assert r.exit_code == 0, r.output
    assert "--tensor-model-parallel-size" in r.stdout and "Megatron-LM" in r.stdout.splitlines()[0]
    assert "mindspeed-2026" in r.output and "--parallel.tp_size" not in r.stdout


# ---------------------------------------------------------------- --emit primus

DATA = Path(__file__).resolve().parent / "data"


def _primus_keys() -> set[str]:
    """The keys Primus b3699abf's Megatron pre-trainer config holds (scripts/primus_config_keys.py), the only names
    its ``--key value`` overrides may use (primus/core/launcher/parser.py load_primus_config, then
    primus/modules/trainer/megatron/pre_trainer.py: 'Megatron backend does not support unregistered config keys')."""
    lines = (DATA / "primus_megatron_keys.txt").read_text().splitlines()
    return {ln.split("\t")[0] for ln in lines if ln and not ln.startswith("#")}


def _amd_spec(**training):
    return {"model": "llama-3.1-8b", "system": "mi355x-platform", "chips": 32,
            "training": {"seq_len": 4096, "global_batch_seqs": 96, "precision": "fp8", "tokens": "10B", **training},
            "plan": {"tp": 2, "pp": 2, "vpp": 2, "zero": 1, "recompute": "selective", "recompute_modules": ["core_attn"],
                     "schedule": "interleaved", "micro_batch": 1}}


def test_primus_is_the_emitter_of_amds_stack():
    assert emitter_for("primus-megatron-2025") == "primus"
    assert resolve_choice("primus") == "primus-megatron-2025"


def test_primus_fragment_uses_primus_config_keys(tmp_path):
    """Primus reads Megatron-LM's argument set by argparse destination (primus/backends/megatron/argument_builder.py
    at b3699abf), so the plan is written as ``--tensor_model_parallel_size 2``, a switch as ``--bf16 True`` and
    --fp8-format under its destination ``fp8`` (Megatron-LM 847781764f arguments.py line 1292, dest='fp8'; Primus's
    own script writes ``--fp8 hybrid``). Megatron-LM's hyphenated names are no keys of Primus's config."""
    est = estimate(parse_run(_amd_spec()))
    tokens = emitted_args(emit_args(est, "primus"), tmp_path)
    keys = [t[2:] for t in tokens if t.startswith("--")]
    assert keys and not set(keys) - _primus_keys(), set(keys) - _primus_keys()
    val = dict(zip(tokens, tokens[1:]))
    assert val["--tensor_model_parallel_size"] == "2" and val["--pipeline_model_parallel_size"] == "2"
    assert val["--bf16"] == "True" and val["--sequence_parallel"] == "True"
    assert val["--fp8"] == "hybrid" and val["--fp8_recipe"] == "delayed"   # the stack's recipe (trainer_base.yaml)
    assert val["--use_distributed_optimizer"] == "True" and val["--recompute_granularity"] == "selective"
    # every flag of the megatron emitter has its Primus key, save recompute_modules, which Primus b3699abf lacks
    meg = [t for t in emitted_args(emit_args(est, "megatron"), tmp_path) if t.startswith("--")]
    assert "tensor-model-parallel-size" not in _primus_keys()
    assert len(keys) == len(meg) - 1 and "--recompute-modules" in meg and "recompute_modules" not in _primus_keys()
    assert "recompute-modules core_attn: not written" in emit_args(est, "primus")


def test_primus_moe_deepep_is_megatron_847781764fs_flag(tmp_path):
    """Megatron-LM 847781764f (Primus b3699abf's) enables DeepEP behind the flex dispatcher with --moe-enable-deepep
    (arguments.py line 3089: 'Only works with flex token dispatcher'); --moe-flex-dispatcher-backend came later."""
    spec = {"model": "deepseek-v2-lite", "system": "mi355x-platform", "chips": 16,
            "training": {"seq_len": 4096, "global_batch_seqs": 64, "precision": "bf16", "tokens": "10B",
                         "moe_dispatcher": "deepep"},
            "plan": {"tp": 1, "pp": 1, "ep": 8, "zero": 1}}
    tokens = emitted_args(emit_args(estimate(parse_run(spec)), "primus"), tmp_path)
    val = dict(zip(tokens, tokens[1:]))
    assert val["--moe_token_dispatcher_type"] == "flex" and val["--moe_enable_deepep"] == "True"
    assert val["--expert_model_parallel_size"] == "8"
    assert not {t[2:] for t in tokens if t.startswith("--")} - _primus_keys()


def test_plan_of_an_amd_run_with_no_framework_writes_primus_flags(tmp_path):
    spec = {k: v for k, v in _amd_spec().items() if k != "plan"}
    ans = scenarios.plan(spec, top=1)
    assert ans.framework == "primus-megatron-2025" and ans.emitter == "primus" and ans.flags_note is None
    assert "Primus" in ans.flags.splitlines()[0] and "--tensor_model_parallel_size" in ans.flags
    f = tmp_path / "amd.yaml"
    f.write_text(yaml.safe_dump(spec))
    r = CliRunner().invoke(app, ["plan", str(f), "--emit", "primus"])
    assert r.exit_code == 0, r.output
    assert "--tensor_model_parallel_size" in r.stdout and "--tensor-model-parallel-size" not in r.stdout
