"""The scenario kinds' structure (issue 12 item 6): one module per kind, each with a pydantic input model whose
defaults are visible fields with descriptions, ``compute`` separate from ``verdict``; the scenario cache keyed by
the engine's data files too."""
from __future__ import annotations

import importlib
import pkgutil

import pytest

import trainsim.scenario.kinds as kinds
from trainsim.errors import TrainsimError
from trainsim.scenario import common
from trainsim.scenario.kinds.base import KindInputs, KindResult, parse_inputs
from trainsim.scenario.registry import HANDLERS, handler

MODULES = [m.name for m in pkgutil.iter_modules(kinds.__path__) if m.name != "base"]


def test_one_module_per_kind():
    handler("pretrain-compare")      # imports every kind module
    mods = {HANDLERS[k].compute.__module__ for k in HANDLERS if hasattr(HANDLERS[k], "compute")}
    assert len(mods) == len(MODULES) == 8
    assert mods == {f"trainsim.scenario.kinds.{m}" for m in MODULES}


@pytest.mark.parametrize("name", MODULES)
def test_inputs_state_their_defaults(name):
    mod = importlib.import_module(f"trainsim.scenario.kinds.{name}")
    assert issubclass(mod.Inputs, KindInputs)
    for fname, f in mod.Inputs.model_fields.items():
        assert f.description, f"{name}.Inputs.{fname} has no description"
    assert callable(mod.compute) and callable(mod.verdict)


def test_hidden_defaults_are_fields():
    from trainsim.scenario.kinds import pretrain_compare, pretrain_feasibility

    f = pretrain_feasibility.Inputs.model_fields
    assert f["deadline_days"].default == 120.0 and f["claimed_ratio"].default == 1.5
    assert pretrain_compare.Inputs.model_fields["fallback_system"].default == "dgx-h100"


def test_verdict_reads_only_the_result():
    """verdict() is a pure function of a KindResult: a hand-made result gets the verdict the rules say."""
    from trainsim.scenario.kinds import pretrain_feasibility as pf

    eff = {"low": 80.0, "nominal": 100.0, "high": 130.0}
    res = KindResult(numbers={"effective_days": eff, "days": {"nominal": 70.0}, "mfu": 0.3,
                              "memory_per_chip_gib": 50.0, "hbm_gib": 128.0},
                     facts={"deadline": 120.0, "fits": True, "message": None, "arch_name": "m", "chips": 1000,
                            "chip": "c", "dominant": "the failure rate", "ratio": None})
    cls, head, text = pf.verdict(res)
    assert cls == "depends on the failure rate"        # nominal 100 <= 120 < high 130
    assert "pessimistic end exceeds the 120-day window" in text
    assert "100 days with failures (80-130)" in head and head.count(". ") <= 1
    res.numbers["effective_days"] = {"low": 60.0, "nominal": 70.0, "high": 110.0}
    assert pf.verdict(res)[0] == "supported"
    res.numbers["effective_days"] = {"low": 125.0, "nominal": 130.0, "high": 140.0}
    assert pf.verdict(res)[0] == "not supported"


def test_bad_input_is_one_line():
    from trainsim.scenario.kinds import pretrain_feasibility as pf

    with pytest.raises(TrainsimError) as exc:
        parse_inputs(pf.Inputs, {"id": "X", "kind": "pretrain-feasibility", "model": "m", "training": {},
                                 "system": "s", "deadline_days": "soon"})
    assert "deadline_days" in str(exc.value) and "\n" not in str(exc.value)


def test_cache_key_changes_with_calibration_content(tmp_path, monkeypatch):
    f = tmp_path / "calibration.yaml"
    f.write_text("a: 1\n")
    monkeypatch.setattr(common, "_data_files", lambda: [f])
    k1 = common.engine_data_key()
    f.write_text("a: 2\n")          # same size, new content
    import os
    os.utime(f, ns=(os.stat(f).st_atime_ns, os.stat(f).st_mtime_ns + 1_000_000))
    k2 = common.engine_data_key()
    assert k1 != k2
    assert common.engine_data_key() == k2
