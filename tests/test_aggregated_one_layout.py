"""Aggregated serving (``phase: both``) runs one parallel layout for both phases: one vLLM / SGLang server takes one
``--tensor-parallel-size`` and chunked prefill runs the prompts in the decode steps of the same workers, so the
answer is the layout with the most output tokens/s per chip of the whole request, each layout's prefill and decode
priced together (inference/search.py join_phases). Before, the two phases were searched apart and Llama 3.1 8B on
H800 was told prefill at tp 1 and decode at tp 2 on the same chips (2,913 tokens/s per chip, no deployment anyone
can run; one layout: 2,790, qa32)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from trainsim.inference.search import Evaluated, best_per_plan, join_phases, pick_rows
from trainsim.inference.serve import aggregate_output_rate, infer
from trainsim.inference.spec import load_serving, parse_serving
from trainsim.inference.step import ServePlans

ROOT = Path(__file__).resolve().parents[1]

# four layouts (A, B, C, D), two candidate batches each (the candidates are plan-major); prefill tokens/s per chip
# and whether each candidate meets the TTFT bound, decode tokens/s per chip (all meet the TPOT bound)
PREFILL = [10_000, 12_000, 4_000, 5_000, 9_000, 8_000, 20_000, 20_000]
PREFILL_OK = [True, False, True, True, True, True, False, False]   # A's larger round and all of D miss the TTFT
DECODE = [600, 900, 1_100, 700, 1_050, 400, 2_000, 100]
IN = OUT = 1000


def _ev(tps, ok, per_plan=2, rows=1):
    n = len(tps)
    plans = ServePlans(np.arange(n) // per_plan + 1, np.ones(n), np.ones(n), np.ones(n))
    tps = np.asarray(tps, dtype=np.float64)
    return Evaluated(plans, np.ones(n), np.ones(n), tps, np.ones(n), {}, {}, np.ones(n, bool),
                     np.broadcast_to(np.asarray(ok), tps.shape), None, per_plan=per_plan)


def _joint(pre, dec):
    pre_at, pre_tps = best_per_plan(pre)
    score = aggregate_output_rate(IN, OUT, np.repeat(pre_tps, dec.per_plan, axis=-1), dec.tokens_per_s_per_chip)
    return pre_at, pre_tps, join_phases(pre, pre_at, dec, score)


def test_joint_layout_by_hand():
    # separately: the best prefill is A's 10,000 (its 12,000 and D's 20,000 miss the TTFT bound), the best decode
    # D's 2,000 (D cannot prefill) or, among the layouts that can, B's 1,100. One request of 1,000 in / 1,000 out
    # costs 1,000 / P + 1,000 / D chip-seconds per layout:
    #   A: 0.1 + 1 / 0.9 = 1.2111 -> 825.7 tok/s/chip; B: 0.2 + 0.9091 = 1.1091 -> 901.6; C: 0.1111 + 0.9524 = 1.0635
    #   -> 940.3: C, neither phase's own optimum, with its first prefill and first decode batch (candidate 4 of each)
    pre, dec = _ev(PREFILL, PREFILL_OK), _ev(DECODE, True)
    pre_at, pre_tps, (jp, jd) = _joint(pre, dec)
    assert pre_at.tolist() == [0, 3, 4, -1]
    assert pre_tps[:3].tolist() == [10_000, 5_000, 9_000] and np.isnan(pre_tps[3])
    apart = [int(pick_rows(e.tokens_per_s_per_chip, e.latency_s, e.ok)[0]) for e in (pre, dec)]
    assert apart == [0, 6]                                    # the two searches apart: A's prefill, D's decode
    assert (jp.best, jd.best) == (4, 4)
    assert jp.plans.row(jp.best) == jd.plans.row(jd.best)
    assert aggregate_output_rate(IN, OUT, PREFILL[jp.best], DECODE[jd.best]) == pytest.approx(1000 / (1 / 9 + 1 / 1.05),
                                                                                              rel=1e-12)
    assert not jd.ok[6] and not jd.ok[7]                      # D runs no prefill under the bound: not a layout


def test_joint_layout_per_grid_row_by_hand():
    # over a grid of constants (G = 2 rows): row 0 as above; in row 1 C decodes at 500 tok/s/chip, so C's request
    # costs 0.1111 + 2 = 2.1111 s (473.7) and B (901.6) wins, with its second prefill batch (index 3)
    dec = np.array([DECODE, DECODE], dtype=np.float64)
    dec[1, 4] = 500.0
    pre = _ev(PREFILL, PREFILL_OK)
    d = _ev(dec[0], True)
    d = Evaluated(d.plans, d.batch, np.ones((2, 8)), dec, d.round_s, {}, {}, d.fits, np.ones((2, 8), bool), None,
                  per_plan=2)
    _, _, (jp, jd) = _joint(pre, d)
    assert jd.best_rows.tolist() == [4, 2] and jp.best_rows.tolist() == [4, 3]
    assert jp.at_best(pre.tokens_per_s_per_chip).tolist() == [9_000, 5_000]


def test_example_is_one_layout_and_the_best_of_each_layout_by_brute_force():
    """The example (Llama 3.1 8B, FP8, on H800; 2,048 in, 512 out; TTFT 2 s, TPOT 30 ms): every (chips, tp, pp)
    layout up to one 8-chip node served alone, its request priced as out / (in / P + out / D) from that layout's own
    prefill and decode rates (a plain loop here, the engine's vectorised search on the other side). The layout
    with the best prefill and the one with the best decode differ, and the joint answer is the best request rate."""
    path = ROOT / "examples" / "serving-llama-3.1-8b-h800.yaml"
    raw = yaml.safe_load(path.read_text())
    joint = infer(load_serving(path))
    assert joint["prefill"]["plan"] == joint["decode"]["plan"]
    rates = {}
    for chips in (1, 2, 4, 8):
        for tp in (1, 2, 4, 8):
            for pp in (1, 2, 4, 8):
                if chips % (tp * pp):
                    continue
                spec = {**raw, "chips": chips, "plan": {"tp": tp, "pp": pp}}
                try:
                    d = infer(parse_serving(spec))
                except Exception:      # no plan under the bounds
                    continue
                rates[(chips, tp, pp)] = (d["prefill"]["tokens_per_s_per_chip"], d["decode"]["tokens_per_s_per_chip"])
    best_pre = max(rates, key=lambda k: rates[k][0])
    best_dec = max(rates, key=lambda k: rates[k][1])
    assert best_pre != best_dec
    agg = {k: 512 / (2048 / p + 512 / dd) for k, (p, dd) in rates.items()}
    top = max(agg.values())
    assert joint["aggregate"]["output_tokens_per_s_per_chip"] == pytest.approx(top, rel=1e-9)
    plan = joint["decode"]["plan"]
    assert agg[(plan["chips"], plan["tp"], plan["pp"])] == pytest.approx(top, rel=1e-9)


BOTH = sorted(p for p in [*(ROOT / "validation" / "inference").glob("*.yaml"), *(ROOT / "examples").glob("serving*.yaml")]
              if (yaml.safe_load(p.read_text()).get("serving") or {}).get("phase", "both") == "both")


@pytest.mark.parametrize("path", BOTH, ids=lambda p: p.stem)
def test_every_phase_both_answer_reports_one_layout(path):
    d = infer(load_serving(path))
    if "decode" in d:        # one-token outputs have no decode phase
        assert d["prefill"]["plan"] == d["decode"]["plan"]
