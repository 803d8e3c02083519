"""Per-system training keys in a pretrain-compare scenario (S1): the NVIDIA rows of GLM-5 dispatch with HybridEP,
as Megatron-Bridge's GLM5Bridge.provider_bridge sets (moe_token_dispatcher_type 'flex', backend 'hybridep',
glm_moe_dsa/glm5_bridge.py at 65563ad2), while the Ascend 910C row keeps the stack's all-to-all."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trainsim.errors import TrainsimError
from trainsim.scenario.kinds.base import _job_run

ROOT = Path(__file__).resolve().parent.parent
S1 = ROOT / "scenarios" / "S1.yaml"


def _doc():
    return yaml.safe_load(S1.read_text())


def test_s1_nvidia_entries_state_hybridep_and_the_910c_does_not():
    doc = _doc()
    by_sys = {e["system"]: e for e in doc["systems"]}
    for s in ("hgx-h800", "dgx-h100", "hgx-h200"):
        # the provider also sets moe_flex_dispatcher_num_sms = 16 (glm5_bridge.py line 98 at 65563ad2), stated
        # because the megatron-bridge-2026 profile's default is the performance scripts' 32
        assert by_sys[s]["training"] == {"moe_dispatcher": "hybridep", "moe_hybridep_num_sms": 16}
        assert "glm5_bridge.py" in by_sys[s]["training_source"]
    assert "training" not in by_sys["cloudmatrix-384"]


def test_entry_training_replaces_only_its_keys():
    doc = _doc()
    r = _job_run(doc, S1.parent, system="dgx-h100", chips=64, precision="fp8",
                 training={"moe_dispatcher": "hybridep"})
    assert r.training.moe_dispatcher == "hybridep"
    assert r.training.precision == "fp8"                     # the entry's precision still applies
    assert r.training.seq_len == doc["training"]["seq_len"]  # the rest is the document's
    plain = _job_run(doc, S1.parent, system="dgx-h100", chips=64, precision="fp8")
    assert plain.training.moe_dispatcher is None             # unstated: the stack's default (all-to-all)


def test_entry_training_with_a_bad_value_is_refused():
    with pytest.raises(TrainsimError):
        _job_run(_doc(), S1.parent, system="dgx-h100", chips=64, training={"moe_dispatcher": "pigeon"})
