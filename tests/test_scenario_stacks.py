"""Each system of a seed scenario runs its own software stack ("unstated is not optimal": a field a source leaves
out takes what that source's stack would have done). An Ascend cluster trains with Huawei's MindSpeed-LLM
(Ascend/MindSpeed-LLM ships the GLM-5 744B and DeepSeek-V3 671B pre-training scripts for the Atlas 900 A3 SuperPoD,
examples/mcore/glm5/pretrain_glm5_744b_4k_A3_ptd.sh and examples/mcore/deepseek3/pretrain_deepseek3_671b_4k_A3_ptd.sh),
an NVIDIA one with Megatron-Core / Megatron-Bridge. Before this change S1's 910C row, S2, S4, S5 and S6 ran the
NVIDIA default stack (megatron-bridge-2026) on Ascend chips."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trainsim.catalog.load import get_system
from trainsim.errors import TrainsimError
from trainsim.frameworks import default_framework, framework_of
from trainsim.scenario.kinds.base import KindResult, _job_run, _stack_input, _system_id
from trainsim.scenario.kinds.pretrain_compare import verdict as s1_verdict

ROOT = Path(__file__).resolve().parent.parent
SCEN = ROOT / "scenarios"


def _doc(name: str) -> dict:
    return yaml.safe_load((SCEN / name).read_text())


def _stack(entry: dict, doc: dict) -> str:
    """The stack a scenario entry runs: its own framework, else the document's, else the default profile (the
    rule of scenario.kinds.base._job_run, restated here)."""
    return entry.get("framework") or doc.get("framework") or default_framework()


def _pairs() -> list[tuple[str, str, str]]:
    """(scenario, system id, stack) of every training run of S1-S6 that compares or sizes Ascend and NVIDIA."""
    out = []
    s1 = _doc("S1.yaml")
    out += [("S1", _system_id(e["system"]), _stack(e, s1)) for e in s1["systems"]]
    s2 = _doc("S2.yaml")
    out.append(("S2", s2["system"], _stack({}, s2)))
    s3 = _doc("S3.yaml")
    out += [("S3", _system_id(e["system"]), _stack(e, s2)) for e in s3["compare"]]   # S3 runs S2's job
    s4 = _doc("S4.yaml")
    out.append(("S4", s4["system"], _stack({}, s4)))
    s5 = _doc("S5.yaml")
    out += [("S5", _system_id(s5[k]["system"]), _stack(s5[k], s2)) for k in ("a", "b")]   # S5 runs S2's job
    s6 = _doc("S6.yaml")
    out.append(("S6", s6["system"], _stack({}, s6)))
    return out


@pytest.mark.parametrize("scen,system,stack", _pairs())
def test_each_system_runs_its_vendors_stack(scen, system, stack):
    fam = get_system(system).chip.family
    if fam.startswith("ascend"):
        assert stack.startswith("mindspeed"), (scen, system, stack)
    else:
        assert fam.startswith("nvidia") and stack.startswith("megatron"), (scen, system, stack)


def test_s1_entries_name_their_stack_with_a_source():
    s1 = _doc("S1.yaml")
    by_sys = {_system_id(e["system"]): e for e in s1["systems"]}
    assert by_sys["cloudmatrix-384"]["framework"] == "mindspeed-2025"
    assert "pretrain_glm5_744b_4k_A3_ptd.sh" in by_sys["cloudmatrix-384"]["framework_source"]
    for s in ("hgx-h800", "dgx-h100", "hgx-h200"):
        assert by_sys[s]["framework"] == "megatron-bridge-2026"
        assert by_sys[s]["framework_source"]


def test_job_run_takes_the_entry_stack_then_the_documents_then_the_default():
    s1, s2 = _doc("S1.yaml"), _doc("S2.yaml")
    plain = _job_run(s1, SCEN, system="cloudmatrix-384", chips=384)
    # S1 states no document-level stack: the Ascend run takes its vendor's (MindSpeed, tests/test_vendor_default_framework.py)
    assert plain.framework is None and framework_of(plain) == "mindspeed-2026"
    own = _job_run(s1, SCEN, system="cloudmatrix-384", chips=384, framework="mindspeed-2025")
    assert own.framework == "mindspeed-2025"
    assert _job_run(s2, SCEN, chips=384).framework == "mindspeed-2025"          # S2's framework: key
    nv = _job_run(s2, SCEN, system="dgx-h100", chips=384, framework="megatron-bridge-2026")
    assert nv.framework == "megatron-bridge-2026"                  # an entry overrides the job's stack (S3)


def test_an_unknown_entry_stack_is_refused():
    with pytest.raises(TrainsimError, match="mindspeed-2099"):
        _job_run(_doc("S1.yaml"), SCEN, system="cloudmatrix-384", chips=384, framework="mindspeed-2099")


def test_stack_input_names_entry_then_document_then_default():
    assert _stack_input("x", {"framework": "a", "framework_source": "src a"}, {"framework": "b"})["value"] == "a"
    d = _stack_input("x", {}, {"framework": "b", "framework_source": "src b"})
    assert (d["value"], d["source"]) == ("b", "src b")
    d = _stack_input("x", {}, {})
    assert d["value"] == default_framework() and "default" in d["source"]


def test_s1_answer_says_which_stack_each_system_ran():
    rows = [{"chip": "ascend-910c", "precision": "bf16", "framework": "mindspeed-2025", "fits": False,
             "message": "m"},
            {"chip": "nvidia-h800", "precision": "bf16", "framework": "megatron-bridge-2026", "fits": False,
             "message": "m"}]
    res = KindResult(numbers={}, facts={"rows": rows, "flops_6na": 6.9e24, "active_params": 41e9, "tokens": 28e12,
                                        "size_for_days": None, "size_system": None, "size_system_name": "",
                                        "sized": None})
    _, _, text = s1_verdict(res)
    assert "bf16, mindspeed-2025" in text and "bf16, megatron-bridge-2026" in text


def test_runtime_defaults_doc_says_megatron_core_defaults_to_allgather():
    """Megatron-LM d98e8a6 transformer_config.py: moe_token_dispatcher_type = "allgather". The docstring once listed
    all-to-all among Megatron-Core's argument defaults; the engine's all-to-all fallback is the stacks' choice."""
    from trainsim.frameworks import RUNTIME_DEFAULTS, runtime_settings
    doc = " ".join(runtime_settings.__doc__.split())
    assert RUNTIME_DEFAULTS["moe_dispatcher"] == "alltoall"
    assert "argument default (off, off, all-to-all" not in doc
    assert 'moe_token_dispatcher_type = "allgather"' in doc and "deepseek_v3_bridge.py" in doc
