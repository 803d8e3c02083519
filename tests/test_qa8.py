"""qa8: a first-use pass over the product (the full-mesh topology, the FP8 sweep axes, the RL optimizer offload,
the older commands). Each test failed before the fix it names; expected values come from the inputs or the
catalog's own text, never from the engine's output."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainsim.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _main(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("system, text", [("atlas-900-a2-pod", "fullmesh 8"), ("tpu-v4-pod", "torus 16x16x16")])
def test_catalog_show_system_names_its_scale_up_topology(capsys, system, text):
    """`catalog show SYSTEM` listed size, bandwidth and latency of each level but not the wiring the engine
    costs collectives on (systems.yaml `topology`: the Atlas 900 A2's 'fullmesh 8', a TPU pod's torus), so a
    reader could not see why an 8-NPU all-gather is priced below the 196 GB/s the table shows. Fix: the
    topology is a sourced field of the table and of --json."""
    code, out, _ = _main(capsys, "catalog", "show", system, "--json")
    assert code == 0
    fields = {f["field"]: f for f in json.loads(out)["fields"]}
    assert fields["scale_up_topology"]["display"] == text
    assert fields["scale_up_topology"]["source"]           # the systems.yaml entry names its sources
    code, out, _ = _main(capsys, "catalog", "show", system)
    assert code == 0 and text in out
