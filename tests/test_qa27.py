"""qa27: defects a demanding user hits. Each regression test failed before its fix (the defect named in its
docstring); expected values are hand derivations written here, never the engine's own output."""
from __future__ import annotations

import json
import pathlib

import pytest
from conftest import one_line, run_main, write_spec

from trainsim.errors import TrainsimError
from trainsim.model.load import resolve_model
from trainsim.parallel.enumerate import enumerate_parents
from trainsim.report.posttrain import render_rl_errors
from trainsim.report.scenario_render import _plans_of, assumption_value, fmt_key, key_label
from trainsim.catalog.resolve import resolve_system
from trainsim.scenario.capacity import capacity, most_tokens, tokens_bound
from trainsim.scenario.failure_modes import with_option
from trainsim.scenario.kinds import fleet_capacity, load_doc
from trainsim.spec import PlanSpec

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "trainsim"


# ---------------------------------------------------------------- 1. one rule for zero 0 beside a sharding group

def test_zero_0_beside_a_sharding_group_is_refused_in_one_place():
    """The rule 'training.zero_shard_group beside zero 0 only is refused' was written twice (review finding):
    spec.check_shard_group and parallel/enumerate.enumerate_parents, each with its own message. It now lives in
    parallel/validity.sharding_zeros: its message text is in one source file only, and the search path refuses a
    plan fixed at zero 0 with that same one-line error, naming the field."""
    owners = sorted(str(f.relative_to(PKG)) for f in PKG.rglob("*.py")
                    if "or leave zero_shard_group out" in f.read_text(encoding="utf-8"))
    assert owners == ["parallel/validity.py"], owners
    arch = resolve_model("llama-3.1-8b")
    with pytest.raises(TrainsimError) as e:
        enumerate_parents(arch, 16, 4096, 64, PlanSpec(zero=0), zero_shard_group=8)
    msg = str(e.value)
    assert "training.zero_shard_group" in msg and "nothing sharded" in msg and "\n" not in msg, msg
    assert "zero 0 only" in msg, msg


# ---------------------------------------------------------------- 2. a number's decimal point inside a result key

def test_scenario_labels_keep_a_decimal_point_inside_a_key():
    """S4's numbers table printed 'ratio to reference / LongCat-2 / 0 class (S2)', 'Llama 3 / 1 405B', 'Gemini 1 /
    0 Ultra' and 'tokens vs scale out bandwidth / x0 / 5': the flattened key (parts joined by '.') was split at
    every dot, the decimal points of the reference names and of the factor 0.5 included."""
    assert key_label("ratio_to_reference.LongCat-2.0 class (S2)") == "ratio to reference / LongCat-2.0 class (S2)"
    assert key_label("ratio_to_reference.Llama 3.1 405B") == "ratio to reference / Llama 3.1 405B"
    assert key_label("tokens_vs_scale_out_bandwidth.x0.5") == "tokens vs scale out bandwidth / x0.5"
    assert key_label("reference.Gemini 1.0 Ultra") == "reference / Gemini 1.0 Ultra"
    # the ordinary joins still split: cost.rental_usd -> cost / rental (USD)
    assert key_label("cost.rental_usd") == "cost / rental (USD)"
    assert key_label("by_failure_handling.whole_job_restart.goodput") == \
        "by failure handling / whole job restart / goodput"
    # and the value is formatted by its own last part: a goodput as a percentage, 0.562 -> 56.2%
    assert fmt_key("by_failure_handling.x0.5.goodput", 0.562) == "56.2%"


# ---------------------------------------------------------------- 3. capacity: a larger fleet never trains less

def test_most_tokens_walks_past_a_count_that_trains_fewer():
    """Tokens need not fall steadily as a fleet leaves chips idle. Hand-made walk over 2604, 2048, 1536, 1024 units
    training 1.58, 1.50, 1.72, 1.40 (e14 tokens): the old walk stopped at 2048 (fewer than 2604) and answered
    2604; the most is at 1536. A bound below the best stops the walk (1024 is never trained)."""
    tokens = {2604: 1.58e14, 2048: 1.50e14, 1536: 1.72e14, 1024: 1.40e14, 768: 1.0e14}
    trained: list[int] = []

    def train(c: int) -> dict:
        trained.append(c)
        return {"chips": c, "tokens": tokens[c]}

    top = most_tokens([2604, 2048, 1536, 1024, 768], train, lambda c: c * 1.2e11)   # 1024 -> 1.23e14 < 1.72e14
    assert top["chips"] == 1536 and trained == [2604, 2048, 1536]
    # the bound itself, by hand: 1,024 chips at 1 PFLOP/s for 1 day, 6 x 1e9 FLOPs per token
    assert tokens_bound(1024, 1e15, 1.0, 1e9) == pytest.approx(1024 * 1e15 * 86400 / 6e9)


def test_capacity_of_a_larger_fleet_is_never_smaller():
    """S4's whole-fleet rows: 749,952 chips (1,953 CloudMatrix 384 pods, in-memory hot spares) trained a
    4.38e26-FLOP run on 589,824 of them, but 999,936 chips (2,604 pods) only 4.04e26 on all of them, although
    589,824 chips (1,536 pods, a count both fleets offer: 3 x 2^9) were theirs too: for a 425B-active model its walk
    stopped at 2,048 pods, which trained fewer tokens than 2,604. Now the larger fleet trains at least as much, and
    no answer trains more tokens than its chips could at MFU 1 (tokens_bound)."""
    doc = load_doc(ROOT / "scenarios" / "S4.yaml")
    a = with_option(fleet_capacity.Inputs(**{k: v for k, v in doc.items()
                                             if k in fleet_capacity.Inputs.model_fields}).assumption_set(),
                    "in_memory_hot_spares")
    system = resolve_system("cloudmatrix-384")
    res = {u: capacity(system, u * 384, 90.0, a, family="deepseek-v3", plan_counts=False,
                       framework="mindspeed-2026") for u in (1953, 2604)}
    assert res[2604].training_flops >= res[1953].training_flops * (1 - 1e-9), \
        (res[2604].training_flops, res[1953].training_flops)
    for r in res.values():
        used = r.estimate.run.chips
        assert r.tokens <= tokens_bound(used, system.chip.flops("bf16"), 90.0, r.active_params)


# ---------------------------------------------------------------- 4. rates printed with their unit

def test_scenario_tables_print_bit_rates_and_checkpoint_bandwidth_with_their_unit():
    """S7's numbers printed 'wan gbit (s) 10.0' and 'break even wan gbit (s) 0.002' (a link of 10 Gbit/s read as
    10 seconds: the trailing _s of wan_gbit_s taken for seconds), and every scenario's assumptions table printed
    'checkpoint write bw 2T (500B-7T)' (assumptions.yaml: 2.0e12 bytes/s, Llama 3 sec. 3.3.1 '2 TB/s', range
    0.5e12-7e12) with no unit at all."""
    assert key_label("wan_gbit_s") == "wan (Gbit/s)"
    assert key_label("mopd.break_even_wan_gbit_s") == "mopd / break even wan (Gbit/s)"
    assert key_label("bandwidth_gbit_s") == "bandwidth (Gbit/s)"
    # 2.0e12 B/s = 2,000 GB/s; 0.5e12 = 500 GB/s; 7e12 = 7,000 GB/s
    assert assumption_value({"key": "checkpoint_write_bw", "value": 2.0e12, "low": 0.5e12, "high": 7.0e12}) == \
        "2,000 GB/s (500 GB/s-7,000 GB/s)"
    assert fmt_key("assumptions.checkpoint_write_bw", 1.0e14) == "100,000 GB/s"
    # a seconds key keeps its unit
    assert key_label("restart_s") == "restart (s)"


# ---------------------------------------------------------------- 5. every plan of a list table is named

def test_best_plans_of_factor_rows_are_named_by_their_factor():
    """S8's decode table (one row per HBM-bandwidth factor, no chip / label column) listed its plans as
    ': tp=32 pp=1 dp=16 ep=512 etp=1', ': tp=8 ...': six plans with no name. Each is now named by its factor,
    as the table's first column prints it (x0.25, x1)."""
    rows = [{"factor": 0.25, "plan": {"chips": 512, "tp": 32, "pp": 1, "dp": 16, "ep": 512, "etp": 1}},
            {"factor": 1.0, "plan": {"chips": 512, "tp": 2, "pp": 1, "dp": 256, "ep": 512, "etp": 1}},
            {"plan": {"tp": 1, "pp": 1}}]
    lines = _plans_of(rows)
    assert [ln.split(":")[0].strip() for ln in lines] == ["x0.25", "x1", "row 3"], lines
    assert "tp=32" in lines[0] and "tp=2" in lines[1]


# ---------------------------------------------------------------- 6. a catalog note with no leading separator

def test_catalog_hbm_note_has_no_leading_separator(capsys):
    """`catalog show nvidia-h800-sxm5` printed the HBM note as '; read as GiB (vendors quote HBM capacity in binary
    units)': the research file gives that chip's HBM no note, and the GiB remark was appended after '; '."""
    code, out, err = run_main(capsys, "catalog", "show", "nvidia-h800-sxm5", "--json")
    assert code == 0, err
    note = next(f["note"] for f in json.loads(out)["fields"] if f["field"] == "hbm_bytes")
    assert note == "read as GiB (vendors quote HBM capacity in binary units)", note
    code, out, err = run_main(capsys, "catalog", "show", "nvidia-h100-sxm5", "--json")
    note = next(f["note"] for f in json.loads(out)["fields"] if f["field"] == "hbm_bytes")
    assert note.startswith("HBM3; read as GiB"), note


# ---------------------------------------------------------------- 7. size --unit chip: '1 chip'

def test_size_probe_title_says_1_chip(tmp_path, capsys):
    """`size --unit chip` titled its probe table 'probes (chip = 1 chips)'; with --unit system on 8-GPU servers it
    says 'probes (system = 8 chips)'."""
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 8\n"
                      "training: {tokens: 100B, seq_len: 4096, global_batch_seqs: 64}\n", "s.yaml")
    code, out, err = run_main(capsys, "size", spec, "--days", "30", "--unit", "chip", "-q")
    assert code == 0, err[-400:]
    assert "probes (chip = 1 chip)" in out, out[-800:]
    code, out, err = run_main(capsys, "size", spec, "--days", "30", "-q")
    assert code == 0 and "probes (system = 8 chips)" in out, out[-800:]


# ---------------------------------------------------------------- 8. posttrain --validate errors to 0.1%

def test_posttrain_validate_error_column_keeps_a_decimal_and_no_minus_zero(capsys):
    """`posttrain --validate` printed its error column to whole percent: nemo-rl-v05-grpo-h100-q235-256-async
    (reported 203.0 s, predicted 202.3 s, (202.3 - 203.0) / 203.0 = -0.34%) read '-0%', a sign with no size, while
    `validate` and `infer --validate` print one decimal. Now signed to 0.1% (report.fmt.signed_pct), and a change
    that rounds to zero is '+0.0%'."""
    stages = {"weights": 1.0, "offload": 0.0, "rollout": 1.0, "logprobs": 1.0, "train": 1.0}
    rows = [{"name": "a", "mode": "async", "reported": 203.0, "predicted": 202.3, "error": (202.3 - 203.0) / 203.0,
             "stages_s": stages},
            {"name": "b", "mode": "sync", "reported": 100.0, "predicted": 99.96, "error": -0.0004, "stages_s": stages}]
    render_rl_errors(rows, {})
    out = capsys.readouterr().out
    line_a = next(ln for ln in out.splitlines() if "│ a " in ln)
    line_b = next(ln for ln in out.splitlines() if "│ b " in ln)
    assert "-0.3%" in line_a and "-0%" not in line_a, line_a
    assert "+0.0%" in line_b and "-0.0%" not in line_b, line_b


# ---------------------------------------------------------------- 9. README: size's default unit

def test_readme_size_row_states_the_default_unit(capsys):
    """README's command table read '`trainsim size RUN.yaml --days D [--unit system]` | fewest chips (or
    pods/SuperPoDs)', but --unit defaults to system (trainsim/cli/size_cmd.py): without the option size answers
    in scale-up domains ('100 systems (800 chips)'), and --unit chip gives chips."""
    row = next(ln for ln in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
               if ln.startswith("| `trainsim size RUN.yaml"))
    assert "--unit system\\|chip" in row and "the default" in row and "--unit chip" in row, row
    assert "fewest chips (or pods" not in row, row
    code, out, _ = run_main(capsys, "size", "--help")
    assert code == 0 and "[default: system]" in " ".join(out.split()), out[-1500:]   # the code's default


# ---------------------------------------------------------------- 10. an unknown id says what was expected

@pytest.mark.parametrize("body, field, where", [
    ("model: nope-model\nsystem: dgx-h100\n", "model", "trainsim catalog models"),
    ("model: llama-3.1-8b\nsystem: {chip: nope-chip, scale_up: {size: 8, bandwidth: 450 GB/s}, "
     "scale_out: {bandwidth: 400 Gb/s}}\n", "system.chip", "trainsim catalog chips"),
    ("model: llama-3.1-8b\nsystem: dgx-h100\nframework: nope\n", "framework", "trainsim catalog frameworks"),
])
def test_unknown_id_with_no_close_match_says_where_the_choices_are(tmp_path, capsys, body, field, where):
    """README: bad input gets one line naming the field, the value and what was expected. An unknown model, chip
    or software-stack profile with no close match said only "unknown model 'nope-model'": the catalog has more
    than 20 of each (errors.LISTED_CHOICES), so nothing was listed. Now the line names the command that lists them
    and how many there are (the count read here from that listing's own --json)."""
    spec = write_spec(tmp_path, body + "chips: 8\ntraining: {tokens: 1T, seq_len: 4096, global_batch_seqs: 64}\n",
                      "u.yaml")
    code, out, err = run_main(capsys, "estimate", spec)
    line = one_line(code, err, 2)
    assert f"{field}: unknown" in line and f"({where} lists them)" in line, line
    kind = where.split()[-1]
    code, out, _ = run_main(capsys, "catalog", kind, "--json")
    rows = json.loads(out)
    n = len(rows["rows"] if isinstance(rows, dict) else rows)
    assert f"one of the {n} " in line, (n, line)


# ---------------------------------------------------------------- 11. elasticity beside a 'no fit'

def test_elasticity_is_unbounded_where_a_smaller_value_does_not_fit(capsys):
    """`sensitivity examples/pretrain-deepseek-v3-h800.yaml`: the stated plan needs 70.0 GiB per chip (estimate),
    so at x0.5 HBM capacity (40 GiB) nothing fits, and at x2 (160 GiB) the same plan runs unchanged (+0%). The
    elasticity column printed 0 ('insensitive') beside the 'no fit' cell: the slope of the fitting factors alone.
    Days are unbounded below the fit, so the elasticity is now -unbounded (JSON null, as a no-fit row's change)."""
    spec = str(ROOT / "examples" / "pretrain-deepseek-v3-h800.yaml")
    code, out, err = run_main(capsys, "sensitivity", spec, "--vary", "hbm_capacity", "--factors", "0.5,2", "-q",
                              "--json")
    assert code == 0, err[-400:]
    d = json.loads(out)
    rows = d["params"]["hbm_capacity"]["rows"]
    assert rows[0]["factor"] == 0.5 and rows[0]["days"] is None and rows[1]["change_pct"] == pytest.approx(0.0)
    assert d["elasticity"]["hbm_capacity"] is None, d["elasticity"]
    code, out, err = run_main(capsys, "sensitivity", spec, "--vary", "hbm_capacity", "--factors", "0.5,2", "-q")
    row = next(ln for ln in out.splitlines() if ln.startswith("│ hbm_capacity"))
    assert "no fit" in row and "-unbounded" in row, row


# ---------------------------------------------------------------- 12. a stack's refusal names the option

A70 = ("model: llama-3.1-70b\nsystem: dgx-h100\nchips: 256\n"
       "training: {tokens: 2T, seq_len: 8192, global_batch_seqs: 512}\n")


@pytest.mark.parametrize("args, want", [
    (("--framework", "torchtitan-2024", "--fix", "zero=1"), "--fix: zero: torchtitan-2024 offers zero 0, 2, 3, not 1"),
    (("--framework", "torchtitan-2024", "--against", "tp=8,pp=2,schedule=dualpipe"),
     "--against: schedule: torchtitan-2024 offers schedule 1f1b, interleaved, zero-bubble, not dualpipe"),
])
def test_stack_refusal_of_an_option_value_names_the_option(tmp_path, capsys, args, want):
    """`plan --framework torchtitan-2024 --fix zero=1` said 'plan.zero: torchtitan-2024 offers zero 0, 2, 3, not 1'
    and `--against tp=8,pp=2,schedule=dualpipe` said 'plan.schedule: ...' (after the whole search): the run spec
    has no plan at all, the values came from the options. torchtitan-2024 offers zero 0, 2, 3 (FSDP2, no ZeRO-1)
    and the schedules 1f1b, interleaved, zero-bubble (catalog/data/framework_schedules.yaml)."""
    spec = write_spec(tmp_path, A70, "a.yaml")
    line = one_line(*run_main(capsys, "plan", spec, "-q", *args)[::2], 2)
    assert line == f"error: {want}", line


def test_stack_refusal_of_the_spec_plan_still_names_the_plan_field(tmp_path, capsys):
    """The option's name only where the option stated the field: a run spec's own plan.zero 1 under --framework
    torchtitan-2024 is still refused as plan.zero."""
    spec = write_spec(tmp_path, A70 + "plan: {zero: 1}\n", "a.yaml")
    line = one_line(*run_main(capsys, "plan", spec, "-q", "--framework", "torchtitan-2024", "--fix", "tp=8")[::2], 2)
    assert "plan.zero: torchtitan-2024 offers zero 0, 2, 3, not 1" in line, line


# ---------------------------------------------------------------- 13. shares in percent, as the prose gives them

def test_scenario_shares_print_in_percent():
    """S9's prose says 'tensor-parallel traffic 7% ... of the step' and S3's 'the cluster is 24% of its 2026 AI
    capex', while their numbers tables printed 'TP comm share restricted 0.072' and 'cluster share of claimed
    meituan capex 0.242'. A share (a key with the word share) now prints in percent: 0.0745 -> 7.4%,
    0.2423 -> 24.2%, 0.01274 -> 1.3%; 'shared_experts' is not a share."""
    assert fmt_key("runs.moe.tp_comm_share_restricted", 0.0745) == "7.4%"
    assert fmt_key("cluster_share_of_claimed_meituan_capex", 0.2423) == "24.2%"
    assert fmt_key("share_of_cluster_life", 0.012735630689031078) == "1.3%"
    assert fmt_key("shared_experts", 1) == "1"
