"""qa22: product defects a sceptical user hits. Each regression test failed before its fix (the defect named in its
docstring); expected values are hand derivations or published figures written here, never the engine's own output."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from trainsim.inference.setup import ServeSetup
from trainsim.inference.step import ServePlans, step_time, weight_bytes_per_chip, weights_read_per_step

from conftest import ideal_infer_calib, make_system, one_line, run_main, write_spec

ROOT = Path(__file__).resolve().parents[1]
Q30 = ROOT / "validation" / "rl" / "nemo-rl-gb200-q30-16-sync.yaml"   # 64 x 32 = 2,048 sequences, T-GBS 512


def _q30(tmp_path, name: str, chips: int, **plan) -> Path:
    doc = yaml.safe_load(Q30.read_text())
    doc["clusters"]["main"]["chips"] = chips
    if plan:
        doc["student"]["train_plan"] = plan
    return write_spec(tmp_path, yaml.safe_dump(doc, sort_keys=False), name)


# ---------------------------------------------------------------- 1. serving EP not dividing the experts


def test_serving_ep_not_dividing_experts_prices_the_busiest_rank(small_moe):
    """16 routed experts on ep = 6 chips: vLLM's determine_expert_map (PR #21497) places 16 // 6 = 2 on every rank
    and one more on the first 16 % 6 = 4, so the busiest rank holds 3 (the engine spread them evenly: 16 / 6 = 2.67
    each). Against ep = 16 (one expert per rank, same tp = 1, so the dense part is identical) the busiest rank holds
    3 - 1 = 2 more experts in each of the 7 MoE layers (8 layers, the first dense): the held weights differ by
    2 x 7 x one expert, and so do the weights a huge batch (every expert hit) reads per decode step; ep = 8 (2 per
    rank) sits one expert below ep = 6."""
    system = make_system(bf16=1e18, hbm_bw=1e12)
    s = ServeSetup(small_moe, system, calib=ideal_infer_calib())
    moe = [lk for lk in small_moe.layers if lk.moe][0]
    assert moe.n_layers == 7 and moe.moe.experts == 16
    one_expert = 3 * 1024 * 512 * 2          # SwiGLU gate, up, down of hidden 1024 x expert_ffn 512, BF16
    assert sum(m.k * m.n for m in moe.matrices if m.group == "expert") * 2 == one_expert
    p6, p8, p16 = ServePlans(6, 1, 1, 6), ServePlans(8, 1, 1, 8), ServePlans(16, 1, 1, 16)
    held = {n: float(weight_bytes_per_chip(s, p)) for n, p in ((6, p6), (8, p8), (16, p16))}
    assert held[6] - held[16] == pytest.approx(2 * 7 * one_expert, rel=1e-12)
    assert held[6] - held[8] == pytest.approx(1 * 7 * one_expert, rel=1e-12)
    big = 1_000_000                                   # every expert hit
    read6 = float(weights_read_per_step(s, p6, big * 6))
    read16 = float(weights_read_per_step(s, p16, big * 16))
    assert read6 - read16 == pytest.approx(2 * 7 * one_expert, rel=1e-6)
    # the routed-expert GEMM time of the busiest rank: 3 experts against ep = 8's 2, each with the same tokens
    # (T k / E per expert for the same T = 4096 tokens of an instance, every expert hit): 3 / 2
    _, b6 = step_time(s, p6, 4096, 16, "decode")
    _, b8 = step_time(s, p8, 4096, 16, "decode")
    assert float(b6["experts"]) / float(b8["experts"]) == pytest.approx(3 / 2, rel=1e-6)


# ---------------------------------------------------------------- 2. a trainer dp the global batch cannot be sharded over


@pytest.mark.parametrize("chips", [100_000, 48])
def test_posttrain_refuses_a_stated_trainer_dp_that_does_not_divide_the_global_batch(tmp_path, capsys, chips):
    """The NeMo RL Qwen3-30B-A3B recipe (T-GBS 512, trainer tp 1, cp 1, pp 1) on 100,000 chips was priced with a
    data-parallel size of 100,000 over 512 sequences (the packed bins rounded up to one per rank; MFU 0.68%), and
    on 48 chips with dp 48. NeMo RL refuses both: Policy.train shards each global batch over the dp ranks and
    BatchedDataDict.shard_by_batch_size asserts batch_size % shards == 0 (512 % 100,000 = 512, 512 % 48 = 32).
    Bad input: one line naming the field and both numbers, exit 2."""
    spec = _q30(tmp_path, f"q30-{chips}.yaml", chips)
    code, _, err = run_main(capsys, "posttrain", spec)
    line = one_line(code, err, 2)
    assert "student.train_plan" in line and f"{chips:,}" in line and "512" in line


def test_posttrain_keeps_a_stated_trainer_dp_that_divides_the_global_batch(tmp_path, capsys):
    """64 chips with tp 1, cp 1, pp 1: dp 64 divides 512 (8 sequences a rank per optimizer step): answered."""
    code, out, err = run_main(capsys, "posttrain", _q30(tmp_path, "q30-64.yaml", 64), "--json")
    assert code == 0, err[-400:]
    upd = [p for p in json.loads(out)["phases"] if p["stage"] == "train"][0]
    assert upd["detail"]["plan"]["dp"] == 64


def test_posttrain_searched_trainer_takes_a_dp_that_divides_the_global_batch(tmp_path, capsys):
    """Trainer plan left to the search (only ep 16 stated) on 100,000 chips with sequence packing: it exited 2 with
    'plan.ep: ep x etp must divide tp x cp x dp ... dp 277' -- the log-prob pass searched its own dp (277, one that
    divides nothing) instead of running on the trainer's. Now the search takes only a dp NeMo RL can shard the
    512-sequence global batch over (a divisor of 512, at most 512) and the log-probs run on the same ranks."""
    code, out, err = run_main(capsys, "posttrain", _q30(tmp_path, "q30-search.yaml", 100_000, ep=16), "--json")
    assert code == 0, err[-400:]
    upd = [p for p in json.loads(out)["phases"] if p["stage"] == "train"][0]
    dp = upd["detail"]["plan"]["dp"]
    assert 512 % dp == 0


# ---------------------------------------------------------------- 3. explorer edits without a lower bound


def test_explorer_refuses_vanishing_system_edits():
    """The explorer took a 1-byte HBM and 0.001 GB/s links (positive, so valid) and searched plans on them. Each
    numeric edit now also has a floor, the mirror of qa21b's ceiling: the catalog's smallest value of the field over
    100. The smallest HBM in the catalog is TPU v4's 32 GiB (Google Cloud TPU v4 docs) and the slowest per-chip link
    its pod's data-centre network, 3.125 GB/s (25 Gb/s): 1 GiB and 1 GB/s what-ifs pass (10 GB/s for the scale-up
    link, whose slowest in the catalog is 196 GB/s), 1 byte, 0.001 GB/s and a 1 GFLOP/s chip do not; a price of 0
    (hardware already paid for) still passes."""
    from trainsim.errors import TrainsimError
    from trainsim.serve.inputs import Edits, RunRequest, validate
    gib = 2.0 ** 30
    ok = validate(Edits, {"hbm_bytes": 1 * gib, "scale_out_bw": 1e9, "scale_up_bw": 10e9, "price_per_chip_usd": 0.0})
    assert (ok.hbm_bytes, ok.scale_out_bw, ok.price_per_chip_usd) == (gib, 1e9, 0.0)
    for field, v in (("hbm_bytes", 1.0), ("hbm_bytes", 0.1 * gib), ("scale_out_bw", 1e6), ("scale_up_bw", 1e6),
                     ("hbm_bw", 1e6), ("bf16_flops", 1e9), ("fp8_flops", 1e9)):
        with pytest.raises(TrainsimError) as e:
            validate(RunRequest, {"spec": {}, "edits": {field: v}})
        assert f"edits.{field}" in str(e.value) and "at least" in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- 4. errors raised after parsing name their line


def _line_of(path: Path, key: str) -> int:
    """1-based line of the first line of ``path`` that starts (after indentation) with ``key:``."""
    return next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if ln.strip().startswith(f"{key}:"))


def test_error_raised_after_parsing_names_its_line(tmp_path, capsys):
    """An error the spec parser cannot see (here the trainer's dp against its batch, known only once the chips
    are read) named the file and the field but not the line, unlike every parse error ('(line 9)'). It now ends
    with the line the field is written on: student.train_plan's, found here by reading the file as text."""
    spec = _q30(tmp_path, "q30-48.yaml", 48)
    code, _, err = run_main(capsys, "posttrain", spec)
    line = one_line(code, err, 2)
    assert line.endswith(f"(line {_line_of(spec, 'train_plan')})"), line


def test_a_cut_error_line_keeps_its_line_number(tmp_path, capsys):
    """Error lines are cut at 400 characters, and the '(line N)' at their end went with the cut. A trainer with
    dp 512 stated on 100,000 chips (512 chips busy, under the 75% a plan must use) has no plan: exit 1 with the
    nearest alternatives, a line longer than 400 characters; it keeps its '(line N)'."""
    spec = _q30(tmp_path, "q30-dp512.yaml", 100_000, tp=1, cp=1, pp=1, ep=16, etp=1, dp=512, micro_batch=1, zero=1)
    code, _, err = run_main(capsys, "posttrain", spec)
    line = one_line(code, err, 1)
    assert len(line) == 400 and "..." in line, line
    assert line.endswith(f"(line {_line_of(spec, 'train_plan')})"), line


# ---------------------------------------------------------------- 5. serving ties went to a float-noise winner


def test_infer_dense_model_ties_go_to_the_smallest_instance(tmp_path, capsys):
    """`trainsim infer` for Llama 3.1 70B (FP4 weights, H100, TPOT <= 50 ms, instance size searched) answered
    'decode plan chips=440 tp=8 pp=1 dp=55': for a dense model an instance of 55 tp-8 replicas is 55 copies of the
    8-chip one (same tokens/s per chip, same TPOT; its runners-up were 56, 80, 112 and 160 chips with identical
    numbers), and 440 won on a TPOT 1e-17 s lower. Ties now go to the smallest instance: one tp group, dp 1."""
    spec = write_spec(tmp_path, "name: s\nmodel: llama-3.1-70b\nsystem: dgx-h100\n"
                                "serving: {input_len: 1024, output_len: 256, precision: fp4}\n"
                                "latency: {tpot_ms: 50}\n", "serve.yaml")
    code, out, err = run_main(capsys, "infer", spec, "--json")
    assert code == 0, err[-400:]
    plan = json.loads(out)["decode"]["plan"]
    assert plan["dp"] == 1 and plan["chips"] == plan["tp"] * plan["pp"], plan


# ---------------------------------------------------------------- 6. `size` printed the count below the answer as meeting the deadline


def test_size_says_the_count_below_misses_the_deadline(tmp_path, capsys):
    """`trainsim size RUN --days 0.5` (Llama 3.1 8B, 1e11 tokens, DGX H100) answered '30 systems (240 chips) finish
    in 0.5 days ...; 29 take 0.5 days': the one-decimal rounding made the count below the answer read as meeting
    the deadline. The days of the count below are now printed with the decimals it takes to exceed the deadline."""
    spec = write_spec(tmp_path, "name: s\nmodel: llama-3.1-8b\nsystem: dgx-h100\nchips: 100\n"
                                "training: {seq_len: 4096, global_batch_seqs: 1000, precision: bf16, tokens: 1e11}\n",
                      "run.yaml")
    code, out, err = run_main(capsys, "size", spec, "--days", "0.5", "--json")
    assert code == 0, err[-400:]
    msg = json.loads(out)["message"]
    below = msg.split("; ")[1]                       # '29 take 0.504 days'
    assert " take " in below and float(below.split(" take ")[1].split()[0]) > 0.5, msg


# ---------------------------------------------------------------- 7. `sweep --summary` cut the example error mid-word


def test_sweep_summary_prints_the_example_error_whole(tmp_path, capsys):
    """`trainsim sweep --summary` printed each error kind's example cut at 160 characters, mid-word and without
    '...': 'no plan fits in memory: the smallest of 9 plans (...) needs 150.0 GiB per chi', losing the figures a
    reader needs. Llama 3.1 8B on one H100: BF16 weights, FP32 gradients and Adam (2 + 4 + 12 bytes x 8.0e9
    parameters, ~134 GiB before activations) cannot fit 80 GiB, so the 1-chip points fail with no-fit; the
    example now ends with the HBM it was measured against."""
    write_spec(tmp_path, "name: b\nmodel: llama-3.1-8b\nsystem: dgx-h100\nchips: 8\n"
                         "training: {seq_len: 4096, global_batch_seqs: 64, precision: bf16, tokens: 1e10}\n", "b.yaml")
    sw = write_spec(tmp_path, "name: sw\nbase: b.yaml\naxes:\n  chips: [1, 8]\n", "sw.yaml")
    out_file = tmp_path / "sw.parquet"
    code, _, err = run_main(capsys, "sweep", sw, "-o", out_file)
    assert code == 0, err[-400:]
    code, out, err = run_main(capsys, "sweep", "--summary", out_file)
    assert code == 0, err[-400:]
    text = " ".join(out.split())
    assert "e.g. no-fit" in text and "vs 80.0 GiB HBM" in text, text[:600]


# ---------------------------------------------------------------- 8. `capacity` without an answer blamed a flag not given


def test_capacity_without_an_answer_states_the_goodput_it_counted(capsys):
    """`trainsim capacity --system dgx-h100 --units 1 --days 1` (no model of the family reaches its token budget
    on 8 chips in a day: exit 1) printed 'goodput not counted (--no-failures)' -- a flag nobody gave -- above a
    limits table whose failures row counted it ('goodput 100.0%: job MTBF 6334.57 h on 8 chips'). The answer now
    carries that goodput: a day-long job on 8 chips with a job MTBF of thousands of hours loses well under 1%."""
    code, out, err = run_main(capsys, "capacity", "--system", "dgx-h100", "--units", "1", "--days", "1", "--json")
    assert code == 1, err[-400:]
    res = json.loads(out)
    row = next(r for r in res["limits"] if r["limit"] == "failures")
    assert res["goodput"] is not None and 0.99 < res["goodput"] <= 1.0
    from trainsim.numfmt import fraction      # never '100.0%' below 1 (qa32a)
    assert row["detail"].startswith(f"goodput {fraction(res['goodput'])}")
    code, out, err = run_main(capsys, "capacity", "--system", "dgx-h100", "--units", "1", "--days", "1")
    assert code == 1 and "--no-failures" not in out


# ---------------------------------------------------------------- 9. the trainer's "no plan" read as the cluster's


def test_posttrain_trainer_without_a_plan_names_its_own_chips(tmp_path, capsys):
    """The two-cluster OPD example with 383 of main's 384 chips given to rollouts leaves the trainer one chip: exit 1
    'student.train_plan: no plan fits in memory ... nearest alternatives: chips: 384 (1 x 384)' -- which read as if
    the 384-chip cluster itself could not hold the plan. The line now starts with the trainer's own chip count,
    384 - 383 = 1, so the alternative reads against it."""
    doc = yaml.safe_load((ROOT / "examples" / "posttrain-opd-two-clusters.yaml").read_text())
    doc["student"]["rollout_chips"] = 383
    spec = write_spec(tmp_path, yaml.safe_dump(doc, sort_keys=False), "opd.yaml")
    code, _, err = run_main(capsys, "posttrain", spec)
    line = one_line(code, err, 1)
    assert "student.train_plan: the trainer on its 1 chip: no plan fits in memory" in line, line
