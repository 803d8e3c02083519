"""First-use quality pass, round 4: each test failed before its fix (see the commit that adds it)."""
from __future__ import annotations

import re

import pytest

from conftest import run_main, SMALL_RUN, write_spec  # noqa: F401


# ---------------------------------------------------------------- 1. one quantity format: catalog and numfmt


def test_catalog_show_quantities_in_numfmts_format(capsys):
    """`catalog show nvidia-h100-sxm5` printed '3350 GB/s' and '1979 TFLOP/s' where the sweep axes, `check` and
    the reports print '3,350 GB/s': two formatters. Hand: the H100 SXM5 page's 3.35 TB/s = 3,350 GB/s; 1,979
    TFLOP/s FP8 dense (3,958 with sparsity / 2); both grouped by thousands like every count trainsim prints."""
    from trainsim.numfmt import axis_value, in_unit
    code, out, err = run_main(capsys, "catalog", "show", "nvidia-h100-sxm5")
    assert code == 0, err
    assert re.search(r"│ hbm_bw\s+│ 3,350 GB/s\s+│", out) and re.search(r"│ fp8_flops\s+│ 1,979 TFLOP/s\s+│", out)
    assert "3350 GB/s" not in out and "1979 TFLOP/s" not in out
    # one formatter: the catalog's cell and the sweep axis of the same SI value are the same text
    assert axis_value("system.chip.hbm_bw", 3.35e12) == in_unit(3.35e12, "bytes_per_s") == "3,350 GB/s"
    code, out, err = run_main(capsys, "catalog", "show", "dgx-h100")
    assert code == 0 and re.search(r"│ power_per_chip_w\s+│ 1,275 W\s+│", out)   # 10.2 kW / 8 GPUs


# ---------------------------------------------------------------- 2. a bare number for an HBM capacity


INLINE_CHIP_RUN = """
name: inline
model: llama-3.1-8b
system: {chip: {name: x, bf16_tflops: 989, hbm: HBM, hbm_bandwidth: "3.35 TB/s"},
         scale_up: {size: 8, bandwidth: "450 GB/s"}, scale_out: {bandwidth: "400 Gb/s"}}
chips: 64
training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512, precision: bf16}
"""


@pytest.mark.parametrize("hbm", ["80", "'80'", "8.0e+1"])
@pytest.mark.parametrize("cmd", ["check", "estimate"])
def test_inline_hbm_bare_number_is_refused(tmp_path, capsys, cmd, hbm):
    """`hbm: 80` beside `bf16_tflops: 989` (a number in TFLOPS) was read as 80 bytes: `check` passed it ('HBM
    7.451e-08 GiB') and `estimate` answered 'needs 4.7 GiB per chip vs 0.0 GiB HBM'. A bare number is refused with
    the one error line: file, field, value and the unit expected."""
    spec = write_spec(tmp_path, INLINE_CHIP_RUN.replace("HBM", hbm))
    code, out, err = run_main(capsys, cmd, spec)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "run.yaml: system.chip.hbm:" in lines[0] and "'80 GB'" in lines[0] and "bytes" in lines[0]
    assert "(line 4)" in lines[0]   # the spec starts with a blank line


def test_inline_hbm_with_unit_still_read():
    """'80 GB' is 80 GiB (vendors' binary HBM, catalog.load.hbm_capacity_bytes): 80 x 2^30 = 85,899,345,920 B;
    '80e9 B' is taken as written."""
    from trainsim.catalog.resolve import hbm_capacity
    assert hbm_capacity("80 GB", "hbm", None) == 85_899_345_920
    assert hbm_capacity("80e9 B", "hbm", None) == 80e9


# ---------------------------------------------------------------- 3. a huge chip count, echoed readably


@pytest.mark.parametrize("chips, shown", [
    ("1e30", "got 1e+30"),                   # YAML 1.1 string -> int(1e30) was echoed as 1000000000000000019884624838656
    ("1.0e+30", "got 1e+30"),                # a YAML float: pydantic's 'exceeded maximum size' instead of the bound
    ("100000000000000000000000000000", "got 1e+29"),
    ("2e7", "got 20,000,000"),               # grouped like every count
])
def test_huge_chip_count_one_readable_line(tmp_path, capsys, chips, shown):
    spec = write_spec(tmp_path, SMALL_RUN.replace("chips: 64", f"chips: {chips}"))
    code, out, err = run_main(capsys, "check", spec)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1
    assert "chips: expected at most 10,000,000 chips" in lines[0] and shown in lines[0]
    assert not re.search(r"[0-9]{16}", lines[0])


def test_sweep_chips_axis_huge_count_is_bad_input(tmp_path, capsys):
    """A sweep's `chips: [64, 1e30]` ran both points and crashed writing the Parquet file (OverflowError: Python
    int too large to convert to C long, exit 3); refused with the spec now, nothing written."""
    write_spec(tmp_path, SMALL_RUN, "base.yaml")
    spec = write_spec(tmp_path, "name: s\nbase: base.yaml\naxes:\n  chips: [64, 1e30]\n", "sweep.yaml")
    code, out, err = run_main(capsys, "sweep", spec, "-o", tmp_path / "r.parquet")
    assert code == 2, err
    assert "axes.chips[1]" in err and "at most 10,000,000 chips" in err and "got 1e+30" in err
    assert not (tmp_path / "r.parquet").exists() and not (tmp_path / "r.parquet.parts").exists()


# ---------------------------------------------------------------- 4. plan --against an invalid reference plan


def test_against_without_valid_completion_names_the_plan(tmp_path, capsys):
    """`plan --against tp=3` on 64 chips exited 2 with 'the reference plan has no valid completion: ... 9,720
    plans rejected by chips', never saying which plan: the line now quotes it. Hand: 64 = 2^6 has no factor 9, so
    no pp=9 plan divides the chips, and no smaller count with idle chips does either (whole 8-GPU servers: the least
    multiple of 8 and 9 is 72 > 64; s32: pp=5, the reference here before, runs on 40 now; pp=3 completes on 48,
    qa22b). pp 9 on Llama 3.1 8B's 32 layers is a valid uneven split; tp 3 is refused before any search, as 32
    heads rule it out: tests/test_first_use.py."""
    spec = write_spec(tmp_path)
    code, out, err = run_main(capsys, "plan", spec, "--against", "pp=9")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("error: --against: the reference plan 'pp=9' has no valid completion")
    assert "multiple of tp x pp x cp" in lines[0]


@pytest.mark.parametrize("against, text", [("tp=abc", "tp:"), ("foo=2", "unknown plan field 'foo'"),
                                           ("zero=5", "zero: must be 0, 1, 2 or 3, got 5")])
def test_against_bad_field_is_bad_input_even_without_a_plan(tmp_path, capsys, against, text):
    """With no plan for the run (Llama 3.1 70B on one 80 GB H100: 70.6B x 2 bytes of BF16 weights alone = 141 GB),
    `plan --against tp=abc` exited 1 with the no-plan answer and never read the reference: now exit 2, one line."""
    spec = write_spec(tmp_path, SMALL_RUN.replace("chips: 64", "chips: 1").replace("llama-3.1-8b", "llama-3.1-70b"))
    code, out, err = run_main(capsys, "plan", spec, "--against", against)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, (code, out, err)
    assert lines[0].startswith("error: --against: ") and text in lines[0]


# ---------------------------------------------------------------- 5. catalog show a framework profile


def test_catalog_show_framework_profile(capsys):
    """`catalog show megatron-core-2024` said 'unknown catalog id ...; did you mean megatron-1t?' (a model): the
    framework profiles of framework_schedules.yaml are catalog entries too. The profile's statements, read from
    the file here: Megatron-Core r0.9 offers 1F1B and interleaved, ZeRO 0 and 1 (distributed optimizer)."""
    import json
    code, out, err = run_main(capsys, "catalog", "show", "megatron-core-2024")
    assert code == 0, err
    assert out.startswith("megatron-core-2024 (framework profile)") and "--emit megatron" in out.splitlines()[0]
    assert re.search(r"│ schedules\s+│ 1f1b, interleaved\s+│", out) and re.search(r"│ zero\s+│ 0, 1\s+│", out)
    code, out, err = run_main(capsys, "catalog", "show", "torchtitan-2024", "--json")
    info = json.loads(out)
    assert code == 0 and info["kind"] == "framework" and info["emitter"] == "torchtitan"
    assert all(f["source"] for f in info["fields"])          # every statement carries a source


def test_catalog_show_unknown_id_suggests_frameworks(capsys):
    """`catalog show megatron-core` suggested only chips, systems and models."""
    code, out, err = run_main(capsys, "catalog", "show", "megatron-core")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "did you mean megatron-core-2024" in lines[0]


# ---------------------------------------------------------------- 6. the explorer's GiB is trainsim's


def test_explorer_page_uses_the_served_gib():
    """app.js divided by its own `2 ** 30` for every GiB it printed; it now divides by the catalog's
    `units.gib_bytes`, which the server sends from trainsim.units.GIB. Hand: 1 GiB = 2^30 = 1,073,741,824 bytes."""
    import json
    import urllib.request
    from importlib import resources

    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    from trainsim.serve import app as serve_app

    js = resources.files("trainsim.serve").joinpath("static/app.js").read_text()
    assert "2 ** 30" not in js and "1073741824" not in js and "CAT.units.gib_bytes" in js
    with serve_app.background() as url:
        cat = json.loads(urllib.request.urlopen(f"{url}/api/catalog", timeout=120).read())
    assert cat["units"]["gib_bytes"] == 1_073_741_824
    h100 = next(s for s in cat["systems"] if s["id"] == "dgx-h100")
    assert h100["values"]["hbm_bytes"] / cat["units"]["gib_bytes"] == 80   # the '80 GB' H100 is 80 GiB


# ---------------------------------------------------------------- README commands as a first-time user


DSV3_H800 = """
model: deepseek-v3
system: hgx-h800
chips: 2048
training: {tokens: 14.8T, seq_len: 4096, global_batch_seqs: 15360, precision: fp8}
"""


def test_no_plan_alternatives_stay_within_the_framework(tmp_path, capsys):
    """`plan --framework torchtitan-2024` for DeepSeek-V3 (torchtitan of Dec 2024 has no expert parallelism:
    framework_schedules.yaml expert_parallel false) found no plan and offered 'plan.ep: 256 instead of 1' and
    'plan.etp: 2 instead of 1': plans that stack cannot run. Fields the stack fixes are never freed."""
    import json
    spec = write_spec(tmp_path, DSV3_H800)
    code, out, err = run_main(capsys, "plan", spec, "--framework", "torchtitan-2024", "--json")
    d = json.loads(out)
    assert code == 1 and d["best"] is None
    assert all(a["change"] not in ("plan.ep", "plan.etp") for a in d["alternatives"]), d["alternatives"]
    assert all((a.get("plan") or {}).get("ep", 1) == 1 for a in d["alternatives"])


def test_size_says_when_the_batch_moved(tmp_path, capsys):
    """`size` moves an exact batch (< 8%) to one the probed chips split (scenario/sizing.run_at) but printed the
    answer as if the stated batch ran: DeepSeek-V3's 15,360 sequences on 448 HGX H800 ran 14,336 (dp 3,584 x
    micro-batch 4), which is why 448 systems take 44 days where 432 take 62. The line and each probe's batch say so."""
    import json
    spec = write_spec(tmp_path, DSV3_H800)
    code, out, err = run_main(capsys, "size", spec, "--days", "60", "--json")
    d = json.loads(out)
    assert code == 0 and d["global_batch_requested_seqs"] == 15360
    used = d["best_plan"]["global_batch_seqs"]
    p = d["best_plan"]["plan"]
    assert used % (p["dp"] * p["micro_batch"]) == 0 and abs(used / 15360 - 1) < 0.08
    code, out, err = run_main(capsys, "size", spec, "--days", "60")
    assert code == 0 and "batch (seqs)" in out
    if used != 15360:
        assert f"global batch: {used:,} sequences (stated 15,360, {used / 15360 - 1:+.1%}" in out
    else:
        assert "global batch:" not in out


def test_sweep_summary_plans_in_the_one_plan_format():
    """`sweep --summary` printed its frontier plans as 'tp1 pp1 ep1 cp1 dp128 z1 mb1 1f1b', a second plan format
    beside every other command's 'tp=1 pp=1 ... schedule=1f1b' (numfmt.plan, 'the one plan formatter')."""
    from trainsim.numfmt import plan
    from trainsim.report.fmt import plan_columns
    row = {"plan.tp": 1, "plan.pp": 1, "plan.vpp": 1, "plan.schedule": "1f1b", "plan.ep": 1, "plan.etp": 1,
           "plan.cp": 1, "plan.dp": 128, "plan.zero": 1, "plan.recompute": "none", "plan.micro_batch": 1,
           "plan.node_limit": 0}
    assert plan_columns(row) == plan({k[5:]: v for k, v in row.items()}) == (
        "tp=1 pp=1 vpp=1 dp=128 ep=1 etp=1 cp=1 zero=1 recompute=none micro_batch=1 schedule=1f1b")


def test_check_serving_spec_shows_lengths_and_bounds(tmp_path, capsys):
    """`check` on a serving spec printed only the model and system: 'input_len: 4K' could not be seen to be read
    as 4,096 tokens (the binary K of a length, units.parse_length), nor the latency bound as 50 ms."""
    spec = write_spec(tmp_path, "name: s\nmodel: qwen3-30b-a3b\nsystem: dgx-h100\nchips: 8\nserving: {input_len: 4K, "
                                "output_len: 1K, precision: bf16}\nlatency: {tpot_ms: 50}\n", "serve.yaml")
    code, out, err = run_main(capsys, "check", spec)
    assert code == 0, err
    assert "serving: prefill and decode: input 4,096 tokens, output 1,024 tokens, bf16 weights, bf16 KV cache" in out
    assert "latency: TPOT <= 50 ms" in out and "8 chips" in out


def test_catalog_frameworks_lists_the_profiles(capsys):
    """A first-time user had no listing of the ids `--framework` takes (`catalog chips|systems|models` only). Read
    here from the file: torchtitan-2024 has no expert parallelism and offers zero 0, 2, 3 (FSDP2, no ZeRO-1)."""
    import json
    from trainsim.frameworks import frameworks
    code, out, err = run_main(capsys, "catalog", "frameworks", "--json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert code == 0 and set(rows) == set(frameworks())
    assert rows["torchtitan-2024"]["expert_parallel"] is False and rows["torchtitan-2024"]["zero"] == [0, 2, 3]
    assert sum(r["default"] for r in rows.values()) == 1
    code, out, err = run_main(capsys, "catalog", "frameworks")
    assert code == 0 and re.search(r"│ torchtitan-2024\s+│ bf16, fp8\s+│ 1f1b, interleaved, zero-bubble\s+│ 0, 2, 3\s+│", out)


@pytest.mark.parametrize("field, value, shown", [
    ("global_batch_seqs", "1e30", "got 1e+30"),          # was 'got 1000000000000000019884624838656'
    ("global_batch_seqs", "100000000000000000000", "got 1e+20"),
])
def test_huge_integer_field_echoed_readably(tmp_path, capsys, field, value, shown):
    """Any integer field, not only chips: pydantic's bound error echoed int(1e30) digit by digit."""
    spec = write_spec(tmp_path, SMALL_RUN.replace("global_batch_seqs: 512", f"{field}: {value}"))
    code, out, err = run_main(capsys, "check", spec)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and f"training.{field}:" in lines[0] and shown in lines[0]
    assert not re.search(r"[0-9]{16}", lines[0])
