"""An unstated framework follows the chip's vendor ("unstated is not optimal": a field a source leaves out takes what
that source's software stack would have done). On Ascend, today's Megatron-Core stack is Huawei's MindSpeed (MindSpeed
Core patches Megatron-LM for torch_npu, gitcode.com/Ascend/MindSpeed README; MindSpeed-LLM is the LLM suite on it),
on NVIDIA it is Megatron-Core through Megatron-Bridge, on AMD Instinct it is Primus ('Primus supports Megatron-Core
as backend optimization library, replacing ROCm Megatron-LM', ROCm docs, migration guide of 2025-08-21). The ids
below are the newest catalog profile of each of those stacks (framework_schedules.yaml, profiles mindspeed-2026 at
Ascend/MindSpeed-LLM c77308a1, megatron-bridge-2026 at NVIDIA/Megatron-LM d98e8a6, primus-megatron-2025 at
AMD-AGI/Primus b3699abf), written here from those sources, not read from the code. Before this change every run
that named no framework was priced on megatron-bridge-2026, Ascend ones included."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from trainsim import frameworks
from trainsim.catalog.load import get_system
from trainsim.errors import TrainsimError
from trainsim.frameworks import default_framework, framework_of, restrict_plan
from trainsim.scenario.kinds.base import _stack_input
from trainsim.spec import PlanSpec, parse_run

TRAINING = {"seq_len": 4096, "global_batch_seqs": 1536, "precision": "bf16", "tokens": "1T"}


def _run(system: str, chips: int, **extra):
    return parse_run({"model": "deepseek-v3", "system": system, "chips": chips, "training": TRAINING, **extra})


def test_an_ascend_run_with_no_framework_runs_mindspeed():
    run = _run("cloudmatrix-384", 384)
    assert run.framework is None                       # unstated in the spec ...
    assert framework_of(run) == "mindspeed-2026"       # ... so the vendor's stack, not NVIDIA's


def test_an_nvidia_run_with_no_framework_runs_megatron_bridge():
    assert framework_of(_run("dgx-h100", 512)) == "megatron-bridge-2026"


def test_amd_and_unlisted_vendors():
    amd = SimpleNamespace(chip=SimpleNamespace(vendor="AMD"))
    assert default_framework(amd) == "primus-megatron-2025"
    # and a catalog AMD platform (systems.yaml, since vendor31), not only a stand-in
    assert framework_of(_run("mi300x-platform", 64)) == "primus-megatron-2025"
    assert framework_of(_run("mi355x-platform", 64)) == "primus-megatron-2025"
    # Google TPUs (JAX / MaxText) have no profile in the catalog: the fallback, today's Megatron-Core
    assert framework_of(_run("tpu-v5p-pod", 8960)) == "megatron-bridge-2026"
    assert default_framework() == "megatron-bridge-2026"       # no system known (the catalog listing's default)


def test_a_stated_framework_always_wins():
    assert framework_of(_run("cloudmatrix-384", 384, framework="megatron-core-2024")) == "megatron-core-2024"
    assert framework_of(_run("dgx-h100", 512, framework="mindspeed-2025")) == "mindspeed-2025"


def test_the_910c_runs_zero_offer_is_mindspeeds():
    """MindSpeed-LLM's ZeRO-3 is its FSDP2 backend, which has no pipeline (framework_schedules.yaml mindspeed-2026
    zero3_fsdp2_source: '--use-torch-fsdp2 is not supported with pipeline parallelism'); Megatron-Core on NVIDIA
    offers FSDP at any pp. So at a fixed pp 4 an unstated-stack 910C run is offered ZeRO 0 and 1 only (and
    MindSpeed's dualpipev schedule), an H100 run 0, 1 and 3 (no DualPipe in Megatron-Core's schedules.py)."""
    fixed = PlanSpec(pp=4)
    ascend = restrict_plan(fixed, framework_of(_run("cloudmatrix-384", 384)))
    nvidia = restrict_plan(fixed, framework_of(_run("dgx-h100", 512)))
    assert ascend.values("zero") == [0, 1] and "dualpipe" in ascend.values("schedule")
    assert nvidia.values("zero") == [0, 1, 3] and "dualpipe" not in nvidia.values("schedule")


def test_a_910c_spec_is_read_with_mindspeeds_rules():
    """The spec's plan is checked against the vendor's stack when it reads: ZeRO-3 at pp 4 is refused on Ascend
    (MindSpeed's FSDP2 runs at pp 1 only), accepted on NVIDIA's Megatron-Core."""
    plan = {"pp": 4, "zero": 3}
    with pytest.raises(TrainsimError, match="mindspeed-2026"):
        _run("cloudmatrix-384", 384, plan=plan)
    assert _run("dgx-h100", 512, plan=plan).plan.zero == 3


def test_the_scenario_input_names_the_vendor_rule():
    line = _stack_input("software stack", {}, {}, system=get_system("cloudmatrix-384"))
    assert line["value"] == "mindspeed-2026"
    assert "vendor" in line["source"] and "Huawei" in line["source"] and "default_framework_by_vendor" in line["source"]
    line = _stack_input("software stack", {}, {}, system=get_system("dgx-h100"))
    assert line["value"] == "megatron-bridge-2026"
    stated = _stack_input("s", {"framework": "mindspeed-2025", "framework_source": "src"}, {},
                          system=get_system("dgx-h100"))
    assert stated["value"] == "mindspeed-2025"


@pytest.fixture
def vendor_table(monkeypatch):
    """Reads framework_schedules.yaml with its vendor table edited by ``edit`` (the cache cleared around it)."""
    real = frameworks.load_data

    def with_edit(edit):
        def load(text):
            doc = real(text)
            edit(doc)
            return doc
        monkeypatch.setattr(frameworks, "load_data", load)
        frameworks._doc.cache_clear()
        return frameworks._doc
    yield with_edit
    monkeypatch.setattr(frameworks, "load_data", real)
    frameworks._doc.cache_clear()


def test_a_bad_profile_id_in_the_vendor_table_is_one_line(vendor_table):
    read = vendor_table(lambda d: d["default_framework_by_vendor"].update({"NVIDIA": "megatron-bridge-2099"}))
    with pytest.raises(TrainsimError) as exc:
        read()
    msg = str(exc.value)
    assert "\n" not in msg and "megatron-bridge-2099" in msg
    assert exc.value.field == "default_framework_by_vendor.NVIDIA" and "framework_schedules.yaml" in exc.value.where


def test_a_vendor_not_spelt_as_hardware_yaml_is_one_line(vendor_table):
    read = vendor_table(lambda d: d["default_framework_by_vendor"].update({"Huawei": "mindspeed-2026"}))
    with pytest.raises(TrainsimError) as exc:
        read()
    assert "\n" not in str(exc.value) and "Huawei (HiSilicon)" in str(exc.value)
    assert exc.value.field == "default_framework_by_vendor.Huawei"
