"""qa12: a first-use QA pass's defects (S6's peak column in two number styles, a dense model's zero expert entries
in `infer`, ...). Each test failed before the fix it names; expected values come from the inputs, the catalog or
hand derivations, never from the engine."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import SMALL_RUN as SMALL
from conftest import run_main

ROOT = Path(__file__).resolve().parents[1]
SERVE_DENSE = ROOT / "examples/serving-llama-3.1-8b-h800.yaml"


def _spec(tmp_path, text=SMALL, name="run.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


# ---------------------------------------------------------------- 1. S6: one unit in the effective-peak column

def test_s6_effective_peak_column_is_one_style_in_tflops(capsys):
    """`scenario S6`'s sizing_over_precision_inputs table printed '836T' above '1.41e+15' in one column (raw SI
    through the count formatter, which switches to e-notation at 1e15) under the header '(FLOP)' for a rate.
    Fix: report.fmt.catalog_input reads a ``*_peak_flops`` column as a chip's peak rate (TFLOP/s, as
    numfmt.axis_value does) and the label of such a key says FLOP/s. Each cell equals the --json value / 1e12."""
    code, out, err = run_main(capsys, "scenario", ROOT / "scenarios/S6.yaml", "--json")
    assert code == 0, err
    res = json.loads(out)
    res = res[0] if isinstance(res, list) else res
    rows = res["numbers"]["sizing_over_precision_inputs"]
    code, out, err = run_main(capsys, "scenario", ROOT / "scenarios/S6.yaml")
    assert code == 0, err
    assert "effective fp8 peak (FLOP/s)" in out
    table = out[out.index("sizing_over_precision_inputs"):]
    cells = re.findall(r"│ (fp8_efficiency|fp4)\s+│ (low|high)\s+│ ([^│]+?)\s+│", table)
    assert len(cells) == len(rows) == 4
    for (name, end, cell), row in zip(cells, rows):
        assert (name, end) == (row["input"], row["end"])
        assert "e+" not in cell and cell.endswith(" TFLOP/s")
        assert float(cell.split()[0]) == pytest.approx(row["effective_fp8_peak_flops"] / 1e12, rel=5e-4)


def test_peak_flops_formatting_in_one_place():
    from trainsim.numfmt import label
    from trainsim.report.fmt import catalog_input
    assert catalog_input({"effective_fp8_peak_flops": 1.41e15}, "effective_fp8_peak_flops") == "1410 TFLOP/s"
    assert catalog_input({"training_flops": 2.1e26}, "training_flops") is None      # a FLOP count, not a rate
    assert label("effective_fp8_peak_flops") == "effective fp8 peak (FLOP/s)"
    assert label("training_flops") == "training (FLOP)"
