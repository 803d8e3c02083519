"""The residual look across the validation runs (trainsim/validate/residuals.py, scripts/residuals.py): the table
parser, the within-group rank correlation and bins on hand-made rows, the features of one run against its spec's
arithmetic, and the script's bad-input exits."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script
from trainsim.estimate import context
from trainsim.perf.step import evaluate
from trainsim.validate.calibrate import prepare
from trainsim.validate.residuals import Row, bin_table, parse_loo_table, run_features, spearman, within_rho

ROOT = Path(__file__).resolve().parents[1]

TABLE = """129 runs; pooled {'bf16': 0.63}
moe_layer_host_s 3.262 ms; L1 log loss 6.970
  nemo-2407-gpt3-20b-h100-64-fp8                             5851.0     6198.4   +5.9%
  bloomberggpt-50b-512                                        252.0      407.2  +61.6% family gemm_eff (fewer than 3)
leave-one-out: {'runs': 129}
"""


def _row(name: str, group: str, x: float, e: float) -> Row:
    return Row(name, (group, "bf16", "fw"), e, {"x": x})


def test_parse_loo_table():
    """The per-run lines (name, reported, predicted) and nothing else."""
    assert parse_loo_table(TABLE) == {"nemo-2407-gpt3-20b-h100-64-fp8": (5851.0, 6198.4),
                                      "bloomberggpt-50b-512": (252.0, 407.2)}
    assert parse_loo_table("no table here\n") == {}


def test_spearman_by_hand():
    """x = 1..6 against y ranked 4, 5, 6, 1, 2, 3: d = (3, 3, 3, -3, -3, -3), 1 - 6 x 54 / (6 x 35) = -0.5429;
    ties take their mean rank (x = 1, 1, 2 against 1, 2, 3: ranks 0.5, 0.5, 2 -> rho = 0.866)."""
    assert spearman([1, 2, 3, 4, 5, 6], [4, 5, 6, 1, 2, 3]) == pytest.approx(1 - 6 * 54 / 210)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_within_group_removes_group_means():
    """Two groups, each with error rising along x, group B shifted down by 2 and right by 3: pooled over both
    the rank correlation is -0.543 (the raw one, above), within the groups +1 (errors exact in binary, so the
    deviations from the group means tie exactly). A group of 2 runs and a group in
    which x does not vary add nothing."""
    rows = [_row("a1", "A", 1, 2.0), _row("a2", "A", 2, 2.5), _row("a3", "A", 3, 3.0),
            _row("b1", "B", 4, 0.0), _row("b2", "B", 5, 0.5), _row("b3", "B", 6, 1.0)]
    small = [_row("c1", "C", 7, 5.0), _row("c2", "C", 8, -5.0)]
    flat = [_row("d1", "D", 9, 0.3), _row("d2", "D", 9, 0.1), _row("d3", "D", 9, 0.2)]
    a = within_rho(rows, "x")
    assert a.raw == pytest.approx(1 - 6 * 54 / 210)
    assert a.within == pytest.approx(1.0)
    assert (a.runs, a.groups_pos, a.groups_neg) == (6, 2, 0)
    b = within_rho(rows + small + flat, "x")
    assert (b.within, b.runs, b.groups_pos) == (pytest.approx(1.0), 6, 2)


def test_bin_table_by_hand():
    """Cut x at 2.5 and 4.5: [-inf, 2.5) holds a1, a2 (errors 2.0, 2.5: mean 2.25; from group A's mean 2.5: -0.5
    and 0, mean -0.25); [2.5, 4.5) a3 and b1 (3.0, 0.0: mean 1.5; +0.5, -0.5: 0; median |e| 1.5); [4.5, inf) b2, b3
    (0.5, 1.0: mean 0.75; from group B's mean 0.5: 0, +0.5: 0.25)."""
    rows = [_row("a1", "A", 1, 2.0), _row("a2", "A", 2, 2.5), _row("a3", "A", 3, 3.0),
            _row("b1", "B", 4, 0.0), _row("b2", "B", 5, 0.5), _row("b3", "B", 6, 1.0)]
    b = bin_table(rows, "x", [2.5, 4.5])
    assert [x.runs for x in b] == [2, 2, 2]
    assert [x.mean_error for x in b] == pytest.approx([2.25, 1.5, 0.75])
    assert [x.mean_in_group for x in b] == pytest.approx([-0.25, 0.0, 0.25])
    assert b[1].median_abs == pytest.approx(1.5)
    assert len(bin_table(rows, "x", [100.0])) == 1   # empty bins left out


@pytest.fixture(scope="module")
def gpt20b():
    runs = [r for r in prepare([ROOT / "validation" / "runs" / "nemo-2407-gpt3-20b-h100-64-fp8.yaml"])]
    assert len(runs) == 1
    return runs[0]


def test_chosen_plan_is_the_fastest_that_fits(gpt20b):
    """CalRun.chosen: a plan that fits in HBM, and no plan that fits is faster; predict() is its rate."""
    res = evaluate(context(gpt20b.run), gpt20b.plans, detail=False)
    i = gpt20b.chosen(res)
    fits = res.memory["total"] <= gpt20b.run.system.chip.hbm_bytes
    assert fits[i]
    assert res.tokens_per_s_per_chip[i] == res.tokens_per_s_per_chip[fits].max()
    assert gpt20b.predict(context(gpt20b.run).calib) == pytest.approx(float(res.tokens_per_s_per_chip[i]))


def test_features_of_one_run(gpt20b):
    """NeMo 24.07 GPT-3 20B on 64 H100 (its spec): global batch 256 x 2,048 tokens over 64 chips = 8,192 tokens per
    chip per step; tp 2, dp 32, micro-batch 2: 256 / (2 x 32) = 4 micro-batches of 2 x 2,048 tokens; tp x cp = 2
    inside the 8-GPU NVLink domain; FP8, dense. Parameters 12 l h^2 + V h (tied) + 9 h biases and 2 layernorms
    (4 h) per layer + the final layernorm (2 h) + the learned position table (2,048 x h) = 19,931,332,608 +
    308,779,008 + 3,514,368 + 12,288 + 12,582,912 = 20,256,221,184. The shares of the step sum to 1 (the breakdown is every part of it)."""
    f = run_features(gpt20b)
    assert f["log2_tokens_chip_step"] == pytest.approx(13.0)
    assert f["log2_microbatches"] == pytest.approx(2.0)
    assert f["log2_tokens_microbatch"] == pytest.approx(12.0)
    assert (f["log2_tp"], f["log2_dp"], f["log2_pp"], f["log2_cp"]) == (1.0, 5.0, 0.0, 0.0)
    assert (f["tp_cp_cross"], f["fp8"], f["moe"]) == (0.0, 1.0, 0.0)
    h, l_, v = 6144, 44, 50257
    params = 12 * l_ * h * h + v * h + l_ * (9 * h + 4 * h) + 2 * h + 2048 * h
    assert params == 20_256_221_184
    assert 2 ** f["log2_params"] == pytest.approx(params, rel=1e-9)
    shares = [x for k, x in f.items() if k.startswith("share_")]
    assert sum(shares) == pytest.approx(1.0, abs=1e-9)
    assert all(x >= 0 for x in shares) and f["share_compute_gemm"] > 0.5


@pytest.fixture(scope="module")
def script():
    return load_script("residuals")


def _exit2(script, capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as ex:
        script.main(argv)
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


def test_script_bad_input(script, capsys, tmp_path):
    """A missing table, a table without per-run lines, non-numeric bin edges and an unknown feature: one line
    naming what was wrong and what was expected, exit 2."""
    assert "cannot read" in _exit2(script, capsys, [str(tmp_path / "none.txt")])
    empty = tmp_path / "empty.txt"
    empty.write_text("leave-one-out: {}\n")
    assert "no per-run line" in _exit2(script, capsys, [str(empty)])
    tab = tmp_path / "t.txt"
    tab.write_text(TABLE)
    assert "numeric edges" in _exit2(script, capsys, [str(tab), "--bins", "log2_chips=a,b"])
    err = _exit2(script, capsys, [str(tab), "--bins", "log2_chip=10"])
    assert "'log2_chip'" in err and "log2_chips" in err


def test_script_prints_the_ranking(script, capsys, tmp_path):
    """On a two-run table the script runs end to end: the header counts the runs it joined."""
    tab = tmp_path / "t.txt"
    tab.write_text(TABLE)
    script.main([str(tab), "--top", "3", "--bins", "log2_chips=8"])
    out = capsys.readouterr().out
    assert out.startswith("2 runs (all) of 2 in ")
    assert "log2_chips: bin" in out
    assert np.isfinite(float(out.splitlines()[-1].split()[2]))
