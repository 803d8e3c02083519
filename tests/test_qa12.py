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


# ---------------------------------------------------------------- 2. infer: no expert entries for a dense model

EXPERT_ENTRY = re.compile(r"(^|\.)(experts|ep_comm|expert_imbalance|a2a_eff|expert_precision|ep|etp)$")


def _keys(d, prefix=""):
    for k, v in d.items():
        yield f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _keys(v, f"{prefix}{k}.")


def test_infer_of_a_dense_model_lists_no_expert_entries(capsys):
    """`infer --json` / `--csv` of Llama 3.1 8B (dense) listed breakdown_s.experts = 0 and ep_comm = 0 in prefill
    and decode, and the expert-only constants (expert_imbalance, a2a_eff) with their sources. Fix:
    inference.serve._drop_expert_fields drops them with the plans' ep / etp."""
    code, out, err = run_main(capsys, "infer", SERVE_DENSE, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["moe"] is False
    assert [k for k in _keys(res) if EXPERT_ENTRY.search(k)] == []
    assert {"gemm", "attention", "tp_comm"} <= set(res["decode"]["breakdown_s"])
    code, out, err = run_main(capsys, "infer", SERVE_DENSE, "--csv")
    assert code == 0, err
    header = out.splitlines()[0].split(",")
    assert [k for k in header if EXPERT_ENTRY.search(k)] == []


def test_infer_of_a_moe_model_keeps_its_expert_entries(capsys, tmp_path):
    spec = _spec(tmp_path, "name: m\nmodel: mixtral-8x7b\nsystem: dgx-h100\nchips: 8\n"
                           "serving: {input_len: 1024, output_len: 256, precision: bf16}\n", "moe.yaml")
    code, out, err = run_main(capsys, "infer", spec, "--json")
    assert code == 0, err
    res = json.loads(out)
    for phase in ("prefill", "decode"):
        assert {"experts", "ep_comm"} <= set(res[phase]["breakdown_s"])
        assert res[phase]["breakdown_s"]["experts"] > 0          # Mixtral's FFNs are all routed experts
    assert {"expert_imbalance", "a2a_eff"} <= set(res["constants"])


# ---------------------------------------------------------------- 3. serving spec: expert inputs on a dense model

@pytest.mark.parametrize("edit, field", [
    (("latency:", "plan: {ep: 4}\nlatency:"), "plan.ep"),
    (("kv_precision: bf16", "kv_precision: bf16\n  expert_precision: fp4"), "serving.expert_precision"),
    (("kv_precision: bf16", "kv_precision: bf16\n  expert_imbalance: 1.18"), "serving.expert_imbalance"),
    (("latency:", "uncertain: {expert_imbalance: [1.0, 1.2]}\nlatency:"), "uncertain.expert_imbalance"),
])
@pytest.mark.parametrize("command", ["infer", "check"])
def test_expert_inputs_on_a_dense_serving_spec_are_refused(tmp_path, capsys, edit, field, command):
    """A serving spec for Llama 3.1 8B (dense) with plan.ep 4, serving.expert_precision fp4 or
    serving.expert_imbalance 1.18 was answered exactly as without them (exit 0: accepted and silently ignored).
    Fix: inference.spec._check_dense refuses them with one line naming the field, exit 2, as the run spec does
    for ep / etp (spec.check_expert_fields)."""
    text = SERVE_DENSE.read_text()
    assert edit[0] in text
    code, out, err = run_main(capsys, command, _spec(tmp_path, text.replace(edit[0], edit[1], 1), "serve.yaml"))
    assert code == 2
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and field in lines[0] and "dense" in lines[0] and "serve.yaml" in lines[0]


@pytest.mark.parametrize("edit", [("latency:", "plan: {ep: 1}\nlatency:"),
                                  ("kv_precision: bf16", "kv_precision: bf16\n  expert_precision: fp8"),
                                  ("kv_precision: bf16", "kv_precision: bf16\n  expert_imbalance: 1.0")])
def test_a_dense_serving_spec_may_state_the_neutral_expert_values(tmp_path, capsys, edit):
    """ep 1, expert_precision equal to the weights' precision (fp8 in this spec) and imbalance 1 change nothing."""
    text = SERVE_DENSE.read_text().replace(edit[0], edit[1], 1)
    code, out, err = run_main(capsys, "infer", _spec(tmp_path, text, "serve.yaml"), "--json")
    assert code == 0, err


def test_moe_serving_spec_keeps_its_expert_inputs(tmp_path, capsys):
    spec = _spec(tmp_path, "name: m\nmodel: mixtral-8x7b\nsystem: dgx-h100\nchips: 8\nplan: {ep: 8}\n"
                           "serving: {input_len: 1024, output_len: 256, precision: bf16, expert_imbalance: 1.18}\n")
    code, out, err = run_main(capsys, "infer", spec, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["decode"]["plan"]["ep"] == 8 and res["constants"]["expert_imbalance"] == 1.18
