"""QA pass 28: a sceptical user's run over the less-trodden paths (posttrain, infer, report, compare, the
explorer's API): each test fails without its fix and checks numbers derived by hand, not the code's own output."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import RUN_A100, one_line, run_main

ROOT = Path(__file__).resolve().parents[1]
OPD = ROOT / "examples" / "posttrain-opd-two-clusters.yaml"


def _opd(tmp_path, old: str, new: str) -> Path:
    """The example OPD job with ``old`` replaced by ``new`` (exactly once)."""
    text = OPD.read_text()
    assert text.count(old) == 1, old
    p = tmp_path / "opd.yaml"
    p.write_text(text.replace(old, new))
    return p


# ---------------------------------------------------------------- 1. a post-training link read as bytes/s


@pytest.mark.parametrize("old, new, field, value", [
    # 10 meant as 10 Gb/s is 10 B/s: the 285,212,672 token-id bytes of a step took 28.5 million s, exit 0
    ('bandwidth: "10 Gb/s"', "bandwidth: 10", "links.0.bandwidth", "got 10 "),
    # 30 meant as 30 ms is 30 s per transfer
    ('latency: "30 ms"', "latency: 30", "links.0.latency", "got 30 "),
    ('bandwidth: "10 Gb/s"', 'bandwidth: "0 Gb/s"', "links.0.bandwidth", "> 0"),
    ('latency: "30 ms"', 'latency: "-30 ms"', "links.0.latency", ">= 0"),
])
def test_a_posttrain_link_far_outside_any_link_is_refused_like_a_system_level(tmp_path, capsys, old, new, field,
                                                                               value):
    """A post-training spec's `links:` took any positive number: `bandwidth: 10` answered a step of 28,521,267 s
    ('bound by link main->math', 1,195,843 hours for 150 steps) with exit 0, `latency: 30` 30 s a transfer. A
    system level's bandwidth and latency (catalog/resolve.py, qa16) refuse those; the links now read through the
    same rule: one line naming the field and the value as written, exit 2."""
    code, out, err = run_main(capsys, "posttrain", _opd(tmp_path, old, new))
    line = one_line(code, err, 2)
    assert f"{field}: " in line and value in line + " " and out == "", line


def test_a_posttrain_link_with_its_unit_is_still_read_at_that_rate(tmp_path, capsys):
    """The fix leaves written units alone: 10 Gb/s is 1.25e9 B/s, so the token ids of the 4,096 sequences sent to
    the remote teacher (512 prompts x 16 samples x share 0.5; 1,024 + 16,384 tokens each, 4-byte ids) take
    4,096 x 17,408 x 4 / 1.25e9 + 0.030 s = 0.2582 s; a bare 1.25e9 (bytes/s) is the same link."""
    sent_bytes = 512 * 16 * 0.5 * (1024 + 16384) * 4
    want_s = sent_bytes / 1.25e9 + 0.030
    for text in ('bandwidth: "10 Gb/s"', "bandwidth: 1.25e9"):
        code, out, err = run_main(capsys, "posttrain", _opd(tmp_path, 'bandwidth: "10 Gb/s"', text), "--json")
        assert code == 0, err
        ph = next(p for p in json.loads(out)["phases"] if p["stage"] == "to_teachers")
        assert ph["bytes"] == pytest.approx(sent_bytes) and ph["seconds"] == pytest.approx(want_s, rel=1e-9)


# ---------------------------------------------------------------- 2. infer's table hid the MTP it assumed


def test_infer_table_states_the_multi_token_prediction_its_rates_rest_on(capsys):
    """The SGLang H100 decode point (`mtp: {draft_tokens: 1, acceptance: 0.7}`, batch 128 per chip) printed
    2,188 tokens/s per chip and a 58.5 ms TPOT with no word of MTP: the table read as 128 / 58.5 ms of plain
    decode, while each 99.4 ms step was credited 1 + 1 x 0.7 = 1.70 tokens per sequence (--json said so, the
    table did not). Now a row states it; the printed numbers then check by hand: 128 x 1.70 / step = tokens/s
    per chip and step / 1.70 = TPOT."""
    code, out, err = run_main(capsys, "infer", ROOT / "validation/inference/sglang-h100-decode-sim-mtp.yaml")
    assert code == 0, err
    flat = " ".join(ln.strip(" │┃") for ln in out.splitlines())
    flat = re.sub(r"\s*│\s*", " ", re.sub(r"\s+", " ", flat))
    m = re.search(r"1 draft token at 70% acceptance: 1\.70 tokens per sequence per decode step of ([0-9.]+) ms", flat)
    assert m, flat
    step_s = float(m.group(1)) / 1e3
    rate = float(re.search(r"decode tokens/s per chip ([0-9,]+)", flat).group(1).replace(",", ""))
    tpot_ms = float(re.search(r"time per output token ([0-9.]+) ms", flat).group(1))
    assert rate == pytest.approx(128 * (1 + 1 * 0.7) / step_s, rel=2e-3)
    assert tpot_ms == pytest.approx(step_s * 1e3 / 1.7, abs=0.06)


def test_infer_table_of_a_run_without_mtp_has_no_mtp_row(capsys):
    code, out, err = run_main(capsys, "infer", ROOT / "examples/serving-llama-3.1-8b-h800.yaml")
    assert code == 0 and "multi-token" not in out, err


# ---------------------------------------------------------------- 3. the report said no catalog input had a range


#: conftest's Llama 3.1 8B run on 64 chips, on an HGX H800 (whose power carries a range in the catalog)
H800_RUN = RUN_A100.replace("name: a100-8b", "name: h800-8b").replace("system: dgx-a100", "system: hgx-h800")


def test_report_ranges_name_the_power_range_and_the_energy_at_its_ends(tmp_path, capsys):
    """`trainsim report` of a run on hgx-h800 said 'No input of this chip or system carries a range in the
    catalog ... the sources agree', while `catalog show hgx-h800` lists power_per_chip_w 980 / 980 / 1,275 W
    (H800 TDP 700 W x 1.4 against a DGX H100-class chassis, 10.2 kW / 8 GPUs). The range moves no day, only the
    energy: now the section says so and gives the energy at both ends, by hand chip-hours x W x PUE 1.2."""
    import html as html_mod

    spec = tmp_path / "run.yaml"
    spec.write_text(H800_RUN)
    code, out, err = run_main(capsys, "report", spec, "--json")
    assert code == 0, err
    chip_hours = json.loads(out)["estimate"]["days"] * 24 * 64
    code, out, err = run_main(capsys, "report", spec, "-o", tmp_path / "r.html")
    assert code == 0, err
    page = html_mod.unescape(re.sub(r"<[^>]+>", " ", (tmp_path / "r.html").read_text()))
    page = re.sub(r"\s+", " ", page)
    assert "No input of this chip or system carries a range" not in page
    m = re.search(r"hgx-h800\.power_per_chip_w 980 W 980 W 1,275 W energy ([0-9,.]+) MWh - ([0-9,.]+) MWh", page)
    assert m, page[page.find("Ranges"):][:1500]
    lo, hi = (float(x.replace(",", "")) for x in m.groups())
    assert lo == pytest.approx(chip_hours * 700 * 1.4 * 1.2 / 1e6, rel=5e-3)
    assert hi == pytest.approx(chip_hours * 10_200 / 8 * 1.2 / 1e6, rel=5e-3)


# ---------------------------------------------------------------- 4. `trainsim model` of a spec that names no one model


@pytest.mark.parametrize("path, kind, hint", [
    ("examples/posttrain-opd-two-clusters.yaml", "post-training spec (trainsim posttrain)", "student.model"),
    ("examples/sweep-hbm-bandwidth.yaml", "sweep spec (trainsim sweep)", "base:"),
    ("scenarios/S3.yaml", "scenario spec (trainsim scenario)", "run specs"),
])
def test_model_of_a_spec_without_one_model_says_what_it_is(capsys, path, kind, hint):
    """`trainsim model examples/posttrain-opd-two-clusters.yaml` said 'model.kind: unknown key (typo?)': the job
    was read as an inline model mapping and the error named a field no file has. A post-training job, a sweep
    or a scenario names no one model (run and serving specs still give theirs): one line says which spec it is
    and where its models are, exit 2."""
    code, out, err = run_main(capsys, "model", ROOT / path)
    line = one_line(code, err, 2)
    assert kind in line and hint in line and "unknown key" not in line and out == "", line


def test_model_of_a_serving_spec_still_counts_its_model(capsys):
    """Llama 3.1 8B (the serving example's model): 32 layers of hidden 4,096, 8 KV heads of 128, SwiGLU 14,336,
    vocab 128,256, untied -> 8,030,261,248 parameters by hand: embeddings 2 x 128,256 x 4,096, per layer
    attention 4,096 x (4,096 + 2 x 1,024) x 2 halves (q,o and k,v) + MLP 3 x 4,096 x 14,336 + two norms, + the
    final norm."""
    per_layer = 4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336 + 2 * 4096
    want = 2 * 128256 * 4096 + 32 * per_layer + 4096
    code, out, err = run_main(capsys, "model", ROOT / "examples/serving-llama-3.1-8b-h800.yaml", "--json")
    assert code == 0 and json.loads(out)["total_params"] == want == 8_030_261_248, err


# ---------------------------------------------------------------- 5. the explorer's cost basis


def test_explorer_energy_and_cost_say_they_count_failures_and_are_plans_over_the_goodput(tmp_path, capsys):
    """The explorer printed 'energy 28.6k MWh' and 'cost (rental) $28.7M' for the spec whose `trainsim plan`
    says 'cost basis: without failures', 24.9k MWh and $25M (README: plan --json 'prints the same numbers'): the
    page's figures count failures (chip-hours / goodput), unlabelled. Now the display says the basis; by hand
    the page's energy and rental cost are plan's over the goodput (energy and rent are linear in chip-hours)."""
    pytest.importorskip("starlette")
    from conftest import SMALL_RUN
    import yaml
    from trainsim.serve.app import do_plan

    spec = yaml.safe_load(SMALL_RUN)
    d = do_plan({"spec": spec})
    eco, disp = d["answer"]["economics"], d["display"]
    (tmp_path / "r.yaml").write_text(SMALL_RUN)
    code, out, err = run_main(capsys, "plan", tmp_path / "r.yaml", "--json")
    cli = json.loads(out)["best"]["cost"]
    assert code == 0 and cli["basis"] == "without failures", err
    g = eco["goodput"]
    assert 0 < g < 1
    assert eco["energy_mwh"]["nominal"] == pytest.approx(cli["energy_mwh"] / g, rel=1e-9)
    assert eco["cost_rental_usd"]["nominal"] == pytest.approx(cli["cost_rental_usd"] / g, rel=1e-9)
    from trainsim.numfmt import fraction      # a goodput below 1 never reads 100.0% (qa32a): 99.96% here
    assert disp["cost_basis"] == f"with failures (goodput {fraction(g)})" and "100.0%" not in disp["cost_basis"]
    js = (ROOT / "trainsim/serve/static/app.js").read_text()
    for key in ("energy_mwh", "cost_capex_usd", "cost_rental_usd"):
        assert re.search(rf'card\("{key}", `[^`]*\$\{{d\.cost_basis', js), key


# ---------------------------------------------------------------- 6. infer's title hid the experts' precision


def test_infer_title_names_the_routed_experts_precision_where_it_differs(capsys):
    """SGLang's GB200 NVFP4-MoE decode point states `precision: fp8, expert_precision: fp4`; the table's title
    said 'fp8 weights' alone, though the routed experts (58 layers x 256 experts x 3 x 7,168 x 2,048 = 654B of
    DeepSeek-V3's 671B parameters) are stored in FP4. The title now names both; a spec whose experts share the weights'
    precision keeps the one word."""
    code, out, err = run_main(capsys, "infer", ROOT / "validation/inference/sglang-gb200-decode-fp8attn-nvfp4moe.yaml")
    head = " ".join(out.split("┌")[0].split())
    assert code == 0 and head.endswith("fp8 weights, fp4 routed experts"), (err, head)
    code, out, err = run_main(capsys, "infer", ROOT / "validation/inference/sglang-gb200-decode-bf16attn-fp8moe.yaml")
    head = " ".join(out.split("┌")[0].split())
    assert code == 0 and head.endswith("fp8 weights") and "experts" not in head, (err, head)
