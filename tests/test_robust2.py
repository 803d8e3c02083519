"""Robustness, second pass (issue 16): serving specs and Hugging Face configs validated at the edge (item 1),
MFU / HFU labelled with the peak they are against in every output that shows them (item 3), and
``scenario --html DIR`` replacing pages only with ``--force``, never through a symlink (item 4).
Expected numbers are derived in the tests from datasheets, not taken from the code's output."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from fuzz.specs import TINY_MODEL, run_in_process

# NVIDIA H100 SXM5 datasheet: 989 TFLOP/s BF16 dense, 1,979 TFLOP/s FP8 dense -> FP8 peak / BF16 peak = 2.0
H100_FP8_OVER_BF16 = 1979 / 989

SERVE = {"name": "tiny-serve", "model": dict(TINY_MODEL), "system": "dgx-h100", "chips": 8,
         "serving": {"phase": "decode", "input_len": 1024, "output_len": 128, "batch_per_chip": 8}}
RUN = {"name": "tiny", "model": dict(TINY_MODEL), "system": "dgx-h100", "chips": 16,
       "training": {"tokens": "10B", "seq_len": 2048, "global_batch_seqs": 64, "precision": "fp8"},
       "plan": {"tp": 2, "pp": 1, "cp": 1, "ep": 1, "zero": 1, "recompute": "none", "micro_batch": 1}}
LLAMA = {"model_type": "llama", "hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 4,
         "num_hidden_layers": 2, "vocab_size": 32000, "intermediate_size": 2816}
QWEN3_MOE = {"model_type": "qwen3_moe", "hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 4,
             "head_dim": 64, "num_hidden_layers": 2, "vocab_size": 32000, "intermediate_size": 2816,
             "moe_intermediate_size": 256, "num_experts": 8, "num_experts_per_tok": 2}


def write(tmp_path: Path, doc, name: str) -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return p


def edited(doc: dict, path: str, value) -> dict:
    d = json.loads(json.dumps(doc))
    *head, last = path.split(".")
    node = d
    for k in head:
        node = node.setdefault(k, {})
    node[last] = value
    return d


def one_line_error(argv, *needles) -> str:
    rc, out, err = run_in_process([str(a) for a in argv])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (rc, err[-600:])
    assert len(lines) == 1 and "Traceback" not in err and not out.strip(), err[-600:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# --- item 1: serving specs -----------------------------------------------------------------------------------------

def test_valid_serving_spec_runs(tmp_path):
    rc, out, err = run_in_process(["infer", str(write(tmp_path, SERVE, "s.yaml")), "--json"])
    assert rc == 0, err


@pytest.mark.parametrize("field, value, needle", [
    ("serving.input_len", True, "boolean"),
    ("serving.input_len", 0, "greater than 0"),
    ("serving.output_len", 2.5, "integer"),
    ("serving.batch_per_chip", float("inf"), "finite"),
    ("serving.batch_per_chip", float("nan"), "finite"),
    ("serving.prefill_tokens_per_chip", -5, "greater than 0"),
    ("serving.expert_imbalance", float("inf"), "finite"),
    ("serving.expert_imbalance", 0.5, "greater than or equal to 1"),
    ("serving.max_batch", True, "boolean"),
    ("serving.mtp", {"draft_tokens": True, "acceptance": 0.7}, "boolean"),
    ("serving.mtp", {"draft_tokens": 1, "acceptance": float("nan")}, "got nan"),
    ("latency.tpot_ms", float("inf"), "finite"),
    ("latency.ttft_ms", 0, "greater than 0"),
    ("plan.tp", False, "boolean"),
    ("chips", 10**9, "at most 10,000,000 chips"),
    ("chips", True, "boolean"),
    ("reported.decode_tokens_per_s_per_chip", float("inf"), "finite"),
    ("uncertain", {"input_len": [float("nan"), 400]}, "finite"),
])
def test_serving_spec_field_errors_name_file_field_value(tmp_path, field, value, needle):
    p = write(tmp_path, edited(SERVE, field, value), "s.yaml")
    line = one_line_error(["infer", p], str(p), needle)
    assert field.split(".")[-1] in line        # the field named (the mtp/uncertain cases name their sub-key)


def test_serving_spec_hf_config_with_inconsistent_shape_is_refused(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**LLAMA, "hidden_size": 1, "num_attention_heads": 1_000_000}))
    p = write(tmp_path, {**SERVE, "model": "config.json"}, "s.yaml")
    one_line_error(["infer", p], "config.json", "hidden_size", "num_attention_heads")


# --- item 1: Hugging Face configs ----------------------------------------------------------------------------------

def test_valid_configs_import():
    from trainsim.model.hf import import_hf_config

    a = import_hf_config(LLAMA, where="c.json")
    b = import_hf_config({**LLAMA, "hidden_size": 1000, "head_dim": 64}, where="c.json")  # explicit head_dim
    assert a.name and b.name
    import_hf_config(QWEN3_MOE, where="m.json")


@pytest.mark.parametrize("base, change, key, needle", [
    (LLAMA, {"hidden_size": 1, "num_attention_heads": 1_000_000}, "hidden_size", "not a multiple"),
    (LLAMA, {"hidden_size": 1000}, "hidden_size", "not a multiple of num_attention_heads (16)"),
    (LLAMA, {"hidden_size": True}, "hidden_size", "True"),
    (LLAMA, {"num_hidden_layers": 2.5}, "num_hidden_layers", "2.5"),
    (LLAMA, {"vocab_size": 10**12}, "vocab_size", "100,000,000"),
    (LLAMA, {"vocab_size": -1}, "vocab_size", "-1"),
    (LLAMA, {"rope_theta": float("inf")}, "rope_theta", "finite"),
    (LLAMA, {"rope_scaling": {"factor": float("nan")}}, "rope_scaling.factor", "finite"),
    (LLAMA, {"num_key_value_heads": 5}, "num_key_value_heads", "not a multiple"),
    (QWEN3_MOE, {"num_experts_per_tok": 9}, "num_experts_per_tok", "experts >= top-k"),
    (QWEN3_MOE, {"num_experts_per_tok": 0}, "num_experts_per_tok", "expected both positive"),
])
def test_bad_configs_are_one_line_errors_naming_the_key(base, change, key, needle):
    from trainsim.errors import TrainsimError
    from trainsim.model.hf import import_hf_config

    with pytest.raises(TrainsimError) as ei:
        import_hf_config({**base, **change}, where="bad/config.json")
    msg = str(ei.value)
    assert "\n" not in msg and "bad/config.json" in msg and needle in msg, msg
    assert key.split(".")[0] in msg, msg


def test_bad_config_through_the_cli_exits_2(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**QWEN3_MOE, "num_experts_per_tok": 9}))
    p = write(tmp_path, {**RUN, "model": "config.json"}, "run.yaml")
    one_line_error(["estimate", p], "config.json", "num_experts_per_tok", "9")


# --- item 3: MFU / HFU labelled ------------------------------------------------------------------------------------

def test_html_report_labels_mfu_against_both_peaks(tmp_path):
    rc, out, err = run_in_process(["estimate", str(write(tmp_path, RUN, "run.yaml")), "--json"])
    assert rc == 0, err
    d = json.loads(out)
    html_path = tmp_path / "r.html"
    rc, _, err = run_in_process(["report", str(tmp_path / "run.yaml"), "-o", str(html_path), "--no-sweeps",
                                 "--quiet"])
    assert rc == 0, err
    html = html_path.read_text()
    shown = {k: v.strip() for k, v in re.findall(r'data-key="([^"]+)">([^<]*)<', html)}
    assert "MFU (vs BF16 peak)" in html and "MFU (vs FP8 peak)" in html and "HFU (vs FP8 peak)" in html
    # the FP8 figure is the BF16 one over the datasheet's FP8/BF16 peak ratio (0.1 % printed precision)
    mfu_bf16 = float(shown["mfu"].rstrip("%"))
    mfu_fp8 = float(shown["mfu_at_precision"].rstrip("%"))
    assert mfu_fp8 == pytest.approx(mfu_bf16 / H100_FP8_OVER_BF16, abs=0.06)
    assert abs(mfu_fp8 - 100 * d["mfu"] / H100_FP8_OVER_BF16) < 0.06
    assert "FP8 dense peak" in html


def test_bf16_report_shows_no_second_mfu(tmp_path):
    from trainsim.report.run_report import headline

    est = {"plan": {"tp": 1}, "step_time_s": 1.0, "tokens_per_s_per_chip": 1000.0, "mfu": 0.4, "hfu": 0.5,
           "memory_per_chip_bytes": 2**30, "hbm_bytes": 2**36, "fits": True, "microbatches_per_step": 1,
           "mfu_definition": "x / BF16 dense peak", "precision": "bf16", "mfu_at_precision": 0.4,
           "hfu_at_precision": 0.5}
    html = headline(est)
    assert "MFU (vs BF16 peak)" in html and "at_precision" not in html
    html8 = headline({**est, "precision": "fp8", "mfu_at_precision": 0.2, "hfu_at_precision": 0.25})
    assert 'data-key="mfu_at_precision">20.0%' in html8 and "MFU (vs FP8 peak)" in html8


def test_sweep_rows_carry_labelled_mfu_at_precision(tmp_path):
    from trainsim.sweep import parse_sweep
    from trainsim.sweep.evaluate import evaluate_point

    base = edited(RUN, "plan.tp", 2)
    spec = parse_sweep({"base": base, "axes": {"chips": [16]}, "record": ["inputs", "time"]}, base_dir=tmp_path)
    assert {"mfu", "hfu", "precision", "mfu_at_precision", "hfu_at_precision"} <= set(spec.column_names)
    row = evaluate_point(spec, 0)
    assert row["error_kind"] is None, row["error"]
    assert row["precision"] == "fp8"
    assert row["mfu_at_precision"] == pytest.approx(row["mfu"] / H100_FP8_OVER_BF16, rel=2e-3)
    assert row["hfu_at_precision"] == pytest.approx(row["hfu"] / H100_FP8_OVER_BF16, rel=2e-3)
    cols = json.loads(spec.metadata()["trainsim.sweep.columns"])
    assert "BF16" in cols["mfu"] and "precision" in cols["mfu_at_precision"]


def test_infer_says_mfu_does_not_apply():
    import trainsim.cli.infer_cmd as m

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "MFU / HFU do not apply to ``infer``" in m.__doc__ and "`infer` reports no MFU" in readme


# --- item 4: scenario --html DIR -----------------------------------------------------------------------------------

def test_scenario_html_refuses_existing_page_without_force(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "S1.html").write_text("mine")
    scen = Path(__file__).resolve().parent.parent / "scenarios" / "S1.yaml"
    one_line_error(["scenario", scen, "--html", site, "--quiet"], "--force", "S1.html")
    assert (site / "S1.html").read_text() == "mine"
    assert sorted(p.name for p in site.iterdir()) == ["S1.html"]       # nothing else written


def test_scenario_html_refuses_a_symlinked_folder_even_with_force(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    scen = Path(__file__).resolve().parent.parent / "scenarios" / "S1.yaml"
    one_line_error(["scenario", scen, "--html", tmp_path / "link", "--force", "--quiet"], "symlink")
    assert list(real.iterdir()) == []


def _fake_results():
    return [{"id": "S1", "kind": "x", "claim": "c", "verdict": "supported", "verdict_class": "supported",
             "numbers": {}, "assumptions": []}]


def test_write_site_replaces_pages_only_with_force_and_never_through_a_symlink(tmp_path, monkeypatch):
    from trainsim.errors import TrainsimError
    from trainsim.report import site
    from trainsim.report.page import Report

    monkeypatch.setattr("trainsim.report.site.build_scenario_report",
                        lambda r, with_run=True: Report(title="t", html="<html>new</html>", data={}, charts={}),
                        raising=True)
    out = tmp_path / "site"
    out.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (out / "S1.html").symlink_to(target)
    with pytest.raises(TrainsimError, match="--force"):
        site.write_site(_fake_results(), out, jobs=1)
    assert target.read_text() == "keep me"
    site.write_site(_fake_results(), out, jobs=1, force=True)
    assert target.read_text() == "keep me"                        # the link's target untouched
    assert not (out / "S1.html").is_symlink() and "new" in (out / "S1.html").read_text()
    assert (out / "index.html").is_file()
    with pytest.raises(TrainsimError, match="--force"):            # a second run without --force: refused
        site.write_site(_fake_results(), out, jobs=1)
