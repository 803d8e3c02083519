"""QA pass 31: defects found using the CLI as a compute-policy analyst and as an ML-infrastructure engineer would
(each test fails on the code before its fix)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import one_line, run_main, write_spec


# ---------------------------------------------------------------- 1. days of 1,000 or more keep their separator

def test_days_of_a_thousand_or_more_are_grouped():
    """numfmt.days printed ``f"{d:.1f}"``: a sweep point of 1,234.5 days read '1234.5' beside every other count's
    separators ('24,960 chips'); now '1,234.5 days', and '1,234.5' in a `sweep --summary` days cell."""
    from trainsim.numfmt import days
    from trainsim.report.sweep import _fmt
    assert days(1234.5) == "1,234.5 days"
    assert days(1234.5, unit=False) == "1,234.5"
    assert _fmt(1234.5, "days") == "1,234.5"
    assert days(54.26) == "54.3 days"


def test_interconnect_cut_verdict_prints_days_as_numfmt_does():
    """S9's verdict formatted its days itself (``:.1f``): 1,234.5 days read '1234.5'. Now numfmt.days, as every
    other days figure: 1,234.5 and 1,000.0 days with their separators."""
    from trainsim.scenario.kinds import interconnect_cut as ic
    run = {"slowdown_pct": 23.45, "days_restricted": 1234.5, "days_reference": 1000.0,
           "plan_restricted": {"tp": 1, "ep": 64, "pp": 16}, "plan_reference": {"tp": 1, "ep": 64, "pp": 16},
           "tp_comm_share_restricted": 0.0, "ep_share_restricted": 0.1,
           "published_slowdown_pct": 10.0, "published_days": {"restricted": 1100.0, "reference": 1000.0}}
    dense = {"slowdown_pct": None}
    res = SimpleNamespace(numbers={"runs": {"moe": run, "dense_equal_active": dense, "dense_chinchilla": dense},
                                   "scale_up_gb_s": {"reference": 450.0, "restricted": 200.0}, "chips": 2048},
                          facts={"total": 671e9, "active": 37e9})
    text = " ".join(ic.verdict(res))
    assert "takes 1,234.5 vs 1,000.0 days" in text, text
    assert "(1,100.0 vs 1,000.0 days" in text, text


# ---------------------------------------------------------------- 2. an FP4 KV cache needs a chip with FP4

SERVE_8B = """name: kv-fp4
model: llama-3.1-8b
system: {system}
serving: {{input_len: 2048, output_len: 512, precision: fp8, kv_precision: {kv}}}
"""


def test_fp4_kv_cache_refused_on_a_chip_without_fp4(tmp_path, capsys):
    """`kv_precision: fp4` on an H800 (no FP4 rate in the catalog: Hopper has no FP4 tensor cores) was priced as a
    4.5-bit cache, 36 KiB per token for Llama 3.1 8B (128 KiB in BF16 x 0.5625 / 2), which no serving stack
    offers there: NVFP4 KV caches are a Blackwell format (NVIDIA technical blog, 'Optimizing Inference for Long
    Context and Large Batch Sizes with NVFP4 KV Cache', 2025-12-08). Now one line naming the field and value,
    exit 2."""
    p = write_spec(tmp_path, SERVE_8B.format(system="hgx-h800", kv="fp4"), "serve.yaml")
    code, _, err = run_main(capsys, "infer", p)
    line = one_line(code, err, 2)
    assert "serving.kv_precision" in line and "fp4" in line and "nvidia-h800-sxm5" in line, line


def test_fp4_kv_cache_accepted_on_blackwell_and_fp8_on_hopper(tmp_path, capsys):
    """The check refuses only what the chip lacks: FP4 KV on a B200 (9,000 TFLOP/s dense FP4) and FP8 KV on an
    H800 both still answer (exit 0)."""
    for system, kv in (("dgx-b200", "fp4"), ("hgx-h800", "fp8")):
        p = write_spec(tmp_path, SERVE_8B.format(system=system, kv=kv), f"serve-{system}.yaml")
        code, out, err = run_main(capsys, "infer", p, "--json")
        assert code == 0, err


# ---------------------------------------------------------------- 3. one PUE check, one wording

@pytest.mark.parametrize("value", ["0.5", "nan", "inf", "100"])
def test_every_out_of_range_pue_gets_the_same_line(tmp_path, capsys, value):
    """api.cost_inputs checked ``--pue >= 1`` itself before assumptions.check_pue, so ``--pue 0.5`` read 'expected
    a number >= 1' and ``--pue 100`` 'expected a PUE between 1 and 3': a user told the first then tried 5 and was
    refused again. Now check_pue alone (assumptions.yaml's pue entry, 1 to 3; the Uptime Institute's 2024 survey
    average is ~1.56): one line with the range, whichever side the value misses."""
    code, out, err = run_main(capsys, "estimate", write_spec(tmp_path), "--pue", value)
    line = one_line(code, err, 2)
    assert line == f"error: --pue: expected a PUE between 1 and 3 (facility / IT energy), got {value}", line


# ---------------------------------------------------------------- 4. plan --against on the cluster paid for

RUN_100 = """name: t100
model: llama-3.1-8b
system: dgx-h100
chips: 100
training: {tokens: 1.0e11, seq_len: 4096, global_batch_seqs: 1000}
"""


def test_plan_against_headline_is_on_the_run_s_chips(tmp_path, capsys):
    """Llama 3.1 8B on 100 H100 against ``tp=8,pp=1``: the reference fits only 80 chips (dp 10 divides 1,000
    sequences, dp 12 does not; test_qa22b), 20 idle but paid for. Both plans train the same 1,000-sequence step,
    so on the run's 100 chips the best is (reference step s) / (best step s) faster -- the headline said the
    per-used-chip ratio instead, that times 80 / 100 (27.7% where the run finishes 59.6% sooner), and the
    table's 'best' step was not the best plan's step (4.16 s printed as 5.20 s, scaled to 80 chips). Now the
    headline and ``best_over_reference`` are on the run's chips, the per-used-chip ratio beside them."""
    import json
    spec = write_spec(tmp_path, RUN_100, "r100.yaml")
    code, out, err = run_main(capsys, "plan", spec, "--against", "tp=8,pp=1", "--json", "--top", "1")
    assert code == 0, err[-400:]
    doc = json.loads(out)
    ag, best_step = doc["against"], doc["best"]["step_time_s"]
    assert doc["best"]["global_batch_seqs"] == 1000 and ag["reference_chips_used"] == 80
    step = next(r for r in ag["step_time_by_cause_s"] if r["cause"] == "step")
    assert step["best"] == pytest.approx(best_step, rel=1e-9)          # the same batch: the best plan's own step
    assert ag["best_over_reference"] == pytest.approx(step["reference"] / best_step, rel=1e-9)
    assert ag["best_over_reference_per_used_chip"] == pytest.approx(ag["best_over_reference"] * 80 / 100, rel=1e-9)
    pct = f"{ag['best_over_reference'] - 1:.1%}"
    assert ag["headline"].startswith(f"the best plan is {pct} faster than the reference on the run's 100 chips ("), \
        ag["headline"]
    assert "per used chip: it uses 100 chips, the reference 80)" in ag["headline"], ag["headline"]


# ---------------------------------------------------------------- 5. compare: exact chips, chips used, days

def _row(out: str, label: str) -> list[str]:
    """The cells of the side-by-side row whose label is ``label``."""
    line = next(ln for ln in out.splitlines() if ln.startswith(f"│ {label} "))
    return [c.strip() for c in line.strip("│").split("│")][1:]


def test_compare_prints_exact_chips_the_chips_used_and_grouped_days(tmp_path, capsys):
    """`compare` printed chips with the 3-significant-digit count format: 24,960 and 25,000 chips both read
    '25k'; it had no row for the chips a plan keeps busy, so Llama 3.1 8B on 25,000 H100 with 16,384 sequences
    (tp 4 x pp 3 x cp 2 x dp 1,024 = 24,576 chips, 424 idle but paid for) showed tokens/s per used chip beside
    chip-hours of all 25,000 without a word; and days as ``:.1f``: 100T tokens on 8 H100 at ~9,500 tokens/s per
    chip, 1e14 / (8 x 9,500) / 86,400 ~ 15,000 days, read '15151.2'. Now exact counts, a 'chips used' row with
    the idle chips, and days as numfmt.days."""
    run = "name: {n}\nmodel: llama-3.1-8b\nsystem: dgx-h100\nchips: {c}\ntraining: {{tokens: {t}, seq_len: 4096, " \
          "global_batch_seqs: {b}}}\n"
    a = write_spec(tmp_path, run.format(n="a", c=24960, t="15T", b=24960), "a.yaml")
    b = write_spec(tmp_path, run.format(n="b", c=25000, t="15T", b=16384), "b.yaml")
    c = write_spec(tmp_path, run.format(n="c", c=8, t="100T", b=512), "c.yaml")
    code, out, err = run_main(capsys, "compare", a, b, c)
    assert code == 0, err[-400:]
    assert _row(out, "chips") == ["24,960", "25,000", "8"], out
    used = _row(out, "chips used")
    assert used[0] == "24,960" and used[2] == "8", used
    n = int(used[1].split()[0].replace(",", ""))                       # whatever plan the estimate completes
    assert n < 25000 and used[1] == f"{n:,} ({25000 - n:,} idle, paid for)", used
    d = _row(out, "days")[2]
    assert "," in d and 14000 < float(d.replace(",", "")) < 17000, d


# ---------------------------------------------------------------- 6. a sweep value given twice, in its unit

@pytest.mark.parametrize("axes, what", [
    # 1.6 TB/s and 1,600 GB/s are one bandwidth (decimal units): named as the summary prints bandwidths
    ({"system.chip.hbm_bw": ["1.6 TB/s", "3.35 TB/s", "1600 GB/s"]}, "value 1,600 GB/s is given twice"),
    ({"system.chip.hbm_bw": {"scale": [0.5, 0.50]}}, "value x0.5 is given twice"),
    ({"pair": {"zip": {"system.chip.hbm_bw": ["1 TB/s", "1000 GB/s"], "training.tokens": ["1T", 1e12]}}},
     "row system.chip.hbm_bw 1,000 GB/s, training.tokens 1T is given twice"),
])
def test_sweep_duplicate_value_named_in_its_unit(tmp_path, capsys, axes, what):
    """A user who wrote '1.6 TB/s' and '1600 GB/s' on one axis was told 'value 1600000000000.0 is given twice',
    the SI number the file holds, and a repeated scale factor read as a bandwidth of 0.5 B/s would: now the value
    as numfmt.axis_value prints axis values (the sweep summary's unit) and a factor as x0.5."""
    import yaml
    base = write_spec(tmp_path)
    sweep = write_spec(tmp_path, yaml.safe_dump({"base": str(base), "axes": axes}, sort_keys=False), "sweep.yaml")
    code, _, err = run_main(capsys, "check", sweep)
    line = one_line(code, err, 2)
    assert what in line, line


# ---------------------------------------------------------------- 7. the report says a plan's idle chips

RUN_100_TP8 = RUN_100 + "plan: {tp: 8, pp: 1}\n"


def test_report_says_the_chips_a_plan_leaves_idle(tmp_path, capsys):
    """Llama 3.1 8B on 100 H100 with tp 8: dp 10 on 80 chips splits 1,000 sequences, 20 chips idle (test_qa22b).
    The report's answer read '... on 100 x nvidia-h100-sxm5 ... (7,712.3 tokens/s per chip, ...)' and its
    headline table had no chips-used row, though `estimate` prints one: 7,712 x 100 chips x 6.64 s = 5.1M tokens
    per step where the step trains 1,000 x 4,096 = 4.1M (7,712 x 80 x 6.64 s). Now the sentence and the table say
    80 used, 20 idle, and the rate is per used chip."""
    import json
    spec = write_spec(tmp_path, RUN_100_TP8, "r100i.yaml")
    page = tmp_path / "r.html"
    code, out, err = run_main(capsys, "report", spec, "-o", page, "--json")
    assert code == 0, err[-400:]
    d = json.loads(out)
    est = d["estimate"]
    assert est["chips_used"] == 80 and est["idle_chips"] == 20
    tokens_per_step = 1000 * 4096
    assert est["tokens_per_s_per_chip"] * 80 * est["step_time_s"] == pytest.approx(tokens_per_step, rel=1e-6)
    assert "(dgx-h100; the plan uses 80, 20 idle but paid for)" in d["answer"], d["answer"]
    assert "tokens/s per used chip" in d["answer"], d["answer"]
    html = page.read_text()
    assert 'data-key="chips_used">80 of 100 (20 idle, paid for)<' in html


# ---------------------------------------------------------------- 8. known gap: idle counts of the free search

def test_the_free_search_is_at_least_as_fast_as_a_constrained_one():
    """Was a strict xfail (qa31): the free search tried all chips and whole domains x 2^j (96 H100 -> 96 only: 64
    is under the 75% floor), the stated-degrees fallback also the whole-domain multiples of their product (88, 80,
    72). On 96 H100, 1,000 sequences split by dp 8 at most (gcd(1,000, 96) = 8), so `plan` found tp=2 pp=3 cp=2
    dp=8, 5.58 s per step, while `plan --fix tp=2,pp=1` found dp 40 on 80 chips (16 idle), 5.37 s: a constrained
    search beat the 'fastest plan'. The free search now also tries the counts on which the batch splits finer
    than on every larger count (parallel/batch.split_counts: 80, where dp 40 divides 1,000)."""
    from trainsim import api
    import yaml
    run = yaml.safe_load(RUN_100.replace("chips: 100", "chips: 96"))
    free = api.search_plans(run, top=1).best
    fixed = api.search_plans(run, fix="tp=2,pp=1", top=1).best
    assert fixed.used == 80                                    # the constrained answer idles 16 chips
    assert free.days <= fixed.days * (1 + 1e-9), (free.plan, free.days, fixed.plan, fixed.days)


def test_split_counts_hand_derived():
    """96 H100 (12 servers of 8), 1,000 sequences, tol 0: the whole-server counts at or above 75% are 96, 88, 80,
    72; the largest dp of each that divides 1,000 is 8, 8, 40, 8 (1,000 = 2^3 x 5^3: 96 = 2^5 x 3, 88 = 2^3 x 11,
    80 = 2^4 x 5, 72 = 2^3 x 9), so only 80 splits finer than every larger count. 24 chips in domains of 4,
    100 sequences: counts 24 and 20 (16 < 18 = 75%); tol 0: dp 4 (of 24) and 20 divide 100, 20 is kept; tol 5%:
    dp 24 runs 24 x round(100 / 24) = 96 sequences, 4% off, finer than 20 on 20 chips: nothing added."""
    from trainsim.parallel.batch import chip_counts, split_counts
    assert split_counts(96, 8, 1000, 0.0) == [80]
    assert chip_counts(96, 8, target_seqs=1000) == [96, 80]
    assert chip_counts(96, 8, use_all=True, target_seqs=1000) == [96]
    assert split_counts(24, 4, 100, 0.0) == [20]
    assert split_counts(24, 4, 100, 0.05) == []


# ---------------------------------------------------------------- 9. MindSpeed: noop layers, not --num-layer-list

def test_mindspeed_noop_layers_hand_layout():
    """61 layers, pp 6, DualPipeV: 72 slots = 6 ranks x 2 chunks x 6; chunk c on rank c, then 11 - c (the V), so
    rank 0 holds layers 0-5 and 66-71, rank 5 holds 30-35 and 36-41. The engine prices ceil(61 / 6) = 11 real
    layers per rank, so each rank's last slot is a noop (71, 65, 59, 53, 47, 41) and the other 72 - 61 - 6 = 5
    are the last indices left (66-70): every rank keeps 11 real layers but rank 0 (6). DeepSeek-V3 on pp 8 with
    dualpipev: MindSpeed-LLM's own script pads to 64 with --noop-layers 61,62,63
    (examples/mcore/deepseek3/pretrain_deepseek3_671b_4k_A3_ptd.sh)."""
    from trainsim.emit import mindspeed_noop_layers
    assert mindspeed_noop_layers(61, 6, 1, True, 11) == (72, [41, 47, 53, 59, 65, 66, 67, 68, 69, 70, 71])
    assert mindspeed_noop_layers(61, 8, 1, True, 8) == (64, [61, 62, 63])
    assert mindspeed_noop_layers(61, 6, 6, False, 12) == (72, list(range(61, 72)))   # interleaved: 2 per chunk
    assert mindspeed_noop_layers(64, 8, 1, True, 8) is None                           # 64 = 8 x 2 x 4: even


def test_emit_mindspeed_pads_an_uneven_split_with_noop_layers(tmp_path, capsys):
    """`plan --emit mindspeed` of DeepSeek-V3 on pp 8 with DualPipe wrote '--num-layer-list 7,8,8,8,8,8,8,6'
    beside '--schedules-method dualpipev', which MindSpeed-LLM refuses ('Dynamic pipeline model and dualpipev
    cannot be enabled at the same time', num_layer_list.py validate_args at c77308a1); the search's best plan of
    DeepSeek-V4-Pro on 25,000 Ascend 910C (pp 6, vpp 6: 61 layers in 36 chunks) exited 2 ('61 layers cannot be
    split over pp 6 with vpp 6'). Now both are MindSpeed's noop layers: 64 with 61,62,63 as its own script, and
    72 with 61..71 at 2 layers per virtual stage."""
    ds = write_spec(tmp_path, "name: ds\nmodel: deepseek-v3\nsystem: cloudmatrix-384\nchips: 768\n"
                              "framework: mindspeed-2026\ntraining: {tokens: 1T, seq_len: 4096, "
                              "global_batch_seqs: 1536}\n", "ds.yaml")
    code, out, err = run_main(capsys, "plan", ds, "--top", "1", "--fix", "pp=8,schedule=dualpipe,tp=1,cp=1",
                              "--emit", "mindspeed")
    assert code == 0, err[-400:]
    assert "  --num-layer-list" not in out and "  --num-layers 64\n" in out and "  --noop-layers 61,62,63\n" in out
    assert "  --schedules-method dualpipev\n" in out
    code, out, err = run_main(capsys, "plan", ds, "--top", "1", "--fix", "pp=6,vpp=2,schedule=interleaved,tp=1,cp=1",
                              "--emit", "mindspeed")
    assert code == 0, err[-400:]
    # 61 layers over 6 x 2 chunks: 6 per chunk, 72 slots, 11 noop (the engine prices 12 per rank)
    assert "  --num-layers 72\n" in out and "  --noop-layers 61,62,63,64,65,66,67,68,69,70,71\n" in out, out
    assert "  --num-layers-per-virtual-pipeline-stage 6\n" in out and "  --num-layer-list" not in out


# ---------------------------------------------------------------- 10. the search's counts add up

def test_search_counts_name_the_candidates_the_rules_rejected():
    """DeepSeek-V4-Pro on 25,000 Ascend 910C printed '51,660 plans evaluated, 13,990 fit; rejected by reason'
    above rows of 6,800,640 (tp), 2,540,160 (micro_batch) ... candidates: the rules reject candidates before
    evaluation, the memory row counts evaluated plans (51,660 - 13,990 = 37,670). The title now adds them up:
    51,660 + 6,800,640 + 2,540,160 + 981,120 + 122,880 + 72,960 + 51,660 + 34,560 + 15,360 + 360 =
    10,671,360 candidates."""
    from trainsim.report.fmt import search_counts
    rules = [6_800_640, 2_540_160, 981_120, 122_880, 72_960, 51_660, 34_560, 15_360, 360]
    rejected = {f"rule {i}": n for i, n in enumerate(rules)} | {"memory: does not fit in HBM": 37_670}
    assert search_counts(51_660, 13_990, rejected) == \
        "10,671,360 candidate plans: 51,660 valid and evaluated, 13,990 fit"
    # nothing rejected by a rule (a plan fixed in full, or only memory): the plain count (test_first_use)
    assert search_counts(1, 1, {}) == "1 plan evaluated, 1 fit"
    assert search_counts(10, 4, {"memory: does not fit in HBM": 6}) == "10 plans evaluated, 4 fit"


def test_plan_title_counts_add_up(tmp_path, capsys):
    """The terminal title of `plan` on Llama 3.1 8B on 100 H100: candidates = plans evaluated + the rule rows of
    the table (the JSON's counts), each row at most the candidates."""
    import json
    spec = write_spec(tmp_path, RUN_100, "r100.yaml")
    code, out, err = run_main(capsys, "plan", spec, "--top", "1", "--json")
    d = json.loads(out)
    ev, fit, rej = d["plans_evaluated"], d["plans_feasible"], d["rejected"]
    assert rej["memory: does not fit in HBM"] == ev - fit
    cand = ev + sum(v for k, v in rej.items() if not k.startswith("memory"))
    code, out, err = run_main(capsys, "plan", spec, "--top", "1")
    assert code == 0, err
    assert f"{cand:,} candidate plans: {ev:,} valid and evaluated, {fit:,} fit, in " in " ".join(out.split())
    assert max(rej.values()) <= cand
