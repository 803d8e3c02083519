"""First-use quality pass, round 5 (qa16): each test failed before its fix (see the commit that adds it).
Expected values come from the inputs, the catalog's sources or hand derivations, never from the engine."""
from __future__ import annotations

import re

import pytest

from conftest import run_main, SMALL_RUN, write_spec  # noqa: F401


# ---------------------------------------------------------------- 1. the report's inputs in the catalog's units


def test_report_inputs_print_catalog_values_in_the_catalogs_units():
    """The HTML report's 'Every input with its source' table printed the H100's HBM as '85.9 GB' (80 GiB in
    decimal units: the H100 is sold and listed everywhere else in trainsim as 80 GB = 80 GiB), its FP8 peak as
    '1.98 PFLOP/s' and the DGX H100 scale-out link as bytes per second, while `catalog show` prints 80 GiB,
    1,979 TFLOP/s and 400 Gb/s. Hand: the H100 page's 80 GB HBM3 (read as GiB), 3.35 TB/s = 3,350 GB/s, 1,979
    TFLOP/s FP8 dense; 400 Gb/s ConnectX-7 per GPU."""
    from trainsim.catalog.load import get_system
    from trainsim.report.sources import chip_inputs, system_inputs
    system = get_system("dgx-h100")
    chip = {r["input"].split(".", 1)[1]: r["value"] for r in chip_inputs(system.chip)}
    assert chip["hbm_bytes"] == "80 GiB"
    assert chip["hbm_bw"] == "3,350 GB/s"
    assert chip["fp8_flops"] == "1,979 TFLOP/s" and chip["bf16_flops"] == "989 TFLOP/s"
    sysv = {r["input"].split(".", 1)[1]: r["value"] for r in system_inputs(system)}
    assert sysv["scale_out_bw"] == "400 Gb/s" and sysv["scale_up_bw"] == "450 GB/s"
    assert sysv["scale_up_size"] == "8" and sysv["power_per_chip_w"] == "1,275 W"   # 10.2 kW / 8 GPUs


# ---------------------------------------------------------------- 2. a stated plan value the model's shape refuses


def test_stated_tp_that_divides_no_head_count_is_an_input_error(tmp_path, capsys):
    """`plan: {tp: 3}` for Llama 3.1 8B (32 attention heads, 8 key/value heads: config.json) on 24 chips: `check`
    said 'valid run spec' and `estimate` exited 1 ('no valid plan ...; nearest alternatives: plan.tp: 1 instead of
    3'), as if the cluster were too small; a complete plan with the same tp (and a serving spec's plan.tp) is
    already refused as bad input. No chip count or batch makes 3 divide 32: one line naming plan.tp, exit 2."""
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 24\n"
                                "training: {seq_len: 4096, global_batch_seqs: 48}\nplan: {tp: 3}\n")
    for cmd in ("check", "estimate", "plan"):
        code, out, err = run_main(capsys, cmd, spec)
        assert code == 2 and out == "", (cmd, code, out)
        assert err.startswith(f"error: {spec}: plan.tp: ") and len(err.strip().splitlines()) == 1, err
        assert "32 attention heads" in err and "8 key/value heads" in err and "got 3" in err


def test_stated_ep_and_cp_the_shape_refuses_are_input_errors(tmp_path, capsys):
    """Mixtral 8x7B has 8 routed experts (config.json num_local_experts): ep 3 divides none of them; cp 3 cannot
    cut a 4,096-token sequence into 2 x 3 equal load-balanced chunks (4,096 / 6 is not whole)."""
    for field, value, words in (("ep", 3, "8 routed experts"), ("cp", 3, "seq_len 4,096")):
        spec = write_spec(tmp_path, "model: mixtral-8x7b\nsystem: dgx-h100\nchips: 48\n"
                                    "training: {seq_len: 4096, global_batch_seqs: 48}\n"
                                    f"plan: {{{field}: {value}}}\n")
        code, out, err = run_main(capsys, "check", spec)
        assert code == 2 and err.startswith(f"error: {spec}: plan.{field}: "), err
        assert words in err and f"got {value}" in err


def test_a_list_with_a_value_the_shape_rules_out_is_refused(tmp_path, capsys):
    """`tp: [3, 4]`: the search once dropped 3 without a word and tried 4 (32 / 4 = 8 heads per rank); since qa29
    the list is refused naming 3, as `tp: 3` alone is (and as `ep: [1, 8]` on a dense model already was)."""
    spec = write_spec(tmp_path, SMALL_RUN.rstrip() + "\nplan: {tp: [3, 4]}\n")
    code, out, err = run_main(capsys, "check", spec)
    assert code == 2 and err.startswith(f"error: {spec}: plan.tp: ") and "got 3 (in 3|4)" in err, err


# ---------------------------------------------------------------- 3. the Pareto front's rows can be checked


MIXTRAL_8X22B = """
name: mixtral-8x22b-256-h100
model: {name: mixtral-8x22b, layers: 56, hidden: 6144, heads: 48, kv_heads: 8, ffn_act: swiglu, vocab: 32768,
        moe: {experts: 8, top_k: 2, expert_ffn: 16384}}
system: dgx-h100
chips: 256
training: {tokens: 1T, seq_len: 4096, global_batch_tokens: 4M, precision: bf16}
"""


def test_pareto_front_table_shows_the_batch_its_step_times_are_for(tmp_path, capsys):
    """Mixtral 8x22B (config.json shapes) on 256 H100 with a 4M-token batch (5% tolerance: plans use 976, 992 or
    1,024 sequences). `plan` printed a 'Pareto front: step time vs memory' whose second row (11.177 s, 70.7 GiB)
    looked beaten by the third (11.134 s, 60.7 GiB): the front is built on step time per sequence, and the rows
    ran different batches the table did not show. Fix: a batch column, and the title names the axis. Check by
    hand from the printed cells: no row is beaten by another on both step time / batch and memory."""
    spec = write_spec(tmp_path, MIXTRAL_8X22B)
    code, out, err = run_main(capsys, "plan", spec)
    assert code == 0, err
    front = out.split("Pareto front")[1].split("rejected by reason")[0]
    assert "per sequence" in front.splitlines()[0]
    rows = [tuple(float(x.replace(",", "")) for x in m) for m in
            re.findall(r"│ (\d+\.\d{3}) │\s+([\d,]+) │\s+([\d.]+)\s+│", front)]
    assert len(rows) >= 3
    per_seq = [(s / b, m) for s, b, m in rows]
    for i, (t, m) in enumerate(per_seq):
        assert not any(t2 < t and m2 < m for j, (t2, m2) in enumerate(per_seq) if j != i), rows


# ---------------------------------------------------------------- 4. an HBM capacity in bits


@pytest.mark.parametrize("hbm", ["80 Gb", "80Gb", "640 Gbit", "0.08 Tb"])
def test_inline_hbm_in_bits_is_refused(tmp_path, capsys, hbm):
    """`hbm: "80 Gb"` (a lower-case b: gigabits) was read as 80e9 / 8 bytes and `check` printed 'HBM 9.313 GiB':
    the run then failed to fit for a typo. Vendors quote a chip's HBM capacity in bytes (H100: 80 GB, MI300X:
    192 GB); bits are a DRAM die's unit (a 24 Gb die), never a chip's memory. Fix: one line naming the field."""
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: {chip: {name: x, bf16_tflops: 989, "
                                f"hbm: '{hbm}', hbm_bandwidth: '3.35 TB/s'}}, scale_up: {{size: 8, bandwidth: "
                                "'450 GB/s'}, scale_out: {bandwidth: '400 Gb/s'}}\nchips: 8\n"
                                "training: {seq_len: 4096, global_batch_seqs: 64}\n")
    code, out, err = run_main(capsys, "check", spec)
    assert code == 2 and out == "", out
    assert err.startswith(f"error: {spec}: system.chip.hbm: ") and "bits" in err and f"'{hbm}'" in err
    assert len(err.strip().splitlines()) == 1


def test_inline_hbm_in_bytes_still_read():
    """'80 GB' is 80 GiB (vendors' binary HBM); '96 GiB' and '1 TB' (10^12 bytes, a unit taken as written) too."""
    from trainsim.catalog.resolve import hbm_capacity
    assert hbm_capacity("80 GB", "hbm", None) == 80 * 2**30
    assert hbm_capacity("96 GiB", "hbm", None) == 96 * 2**30
    assert hbm_capacity("1 TB", "hbm", None) == 1e12


# ---------------------------------------------------------------- 5. a chip id where a system goes


def test_a_chip_id_as_the_system_says_how_to_write_a_system_of_it(tmp_path, capsys):
    """`system: amd-mi300x` (Llama 3 8B on MI300X: the catalog has the chip, no MI300X system) said 'unknown system
    'amd-mi300x'; expected one of dgx-a100, ...': a first-time user could not tell that the id is right but of the
    wrong kind. Fix: the line says it is a chip and gives the inline system that uses it."""
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: amd-mi300x\nchips: 64\n"
                                "training: {seq_len: 8192, global_batch_tokens: 1M}\n")
    code, out, err = run_main(capsys, "check", spec)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {spec}: system: 'amd-mi300x' is a chip, not a system") and len(err.splitlines()) == 1
    assert "{chip: amd-mi300x, scale_up: {size:" in err


def test_a_chip_id_with_catalog_systems_names_them(tmp_path, capsys):
    """nvidia-h100-sxm5 is the chip of dgx-h100 (systems.yaml): the line names that system."""
    spec = write_spec(tmp_path, SMALL_RUN.replace("system: dgx-h100", "system: nvidia-h100-sxm5"))
    code, out, err = run_main(capsys, "check", spec)
    assert code == 2 and "'nvidia-h100-sxm5' is a chip, not a system" in err and "dgx-h100" in err


# ---------------------------------------------------------------- 6. `trainsim model` of a run spec


def test_model_of_a_run_spec_counts_its_model(tmp_path, capsys):
    """`trainsim model run.yaml` (the README: ID_OR_PATH) on the Mixtral 8x22B run spec said 'model.layers: Field
    required': it read the whole run spec as a model file. Fix: a run or serving spec's path counts its `model:`.
    Hand (config.json shapes): per layer, attention 6,144 x (6,144 + 2 x 1,024) + 6,144 x 6,144 = 88.08M, router
    6,144 x 8, 8 experts x 3 x 6,144 x 16,384 = 2,415.9M, two RMSNorms 2 x 6,144; 56 layers + embedding and head
    2 x 32,768 x 6,144 + final norm = 140.63B total (Mistral's 141B)."""
    spec = write_spec(tmp_path, MIXTRAL_8X22B)
    code, out, err = run_main(capsys, "model", spec, "--json")
    assert code == 0, err
    import json
    d = json.loads(out)
    per_layer = 6144 * (6144 + 2 * 1024) + 6144 * 6144 + 6144 * 8 + 8 * 3 * 6144 * 16384 + 2 * 6144
    total = 56 * per_layer + 2 * 32768 * 6144 + 6144
    assert d["total_params"] == total
    # the same counts as the inline mapping given by itself
    code2, out2, _ = run_main(capsys, "model", write_spec(tmp_path, "model:" + MIXTRAL_8X22B.split("model:")[1]
                                                           .split("system:")[0], "m.yaml"), "--json")
    assert code2 == 0 and json.loads(out2)["total_params"] == total


def test_model_of_a_run_spec_whose_model_is_another_spec_is_refused(tmp_path, capsys):
    """One level only: a spec whose model: names a spec file is one line, not a recursion."""
    a = write_spec(tmp_path, SMALL_RUN.replace("model: llama-3.1-8b", "model: b.yaml"), "a.yaml")
    write_spec(tmp_path, SMALL_RUN.replace("model: llama-3.1-8b", "model: a.yaml"), "b.yaml")
    code, out, err = run_main(capsys, "model", a)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "run spec" in err


# ---------------------------------------------------------------- 7. one plan is one plan


LLAMA70_STATED = """
name: llama70b-stated
model: llama-3.1-70b
system: dgx-h100
chips: 64
training: {tokens: 2T, seq_len: 8192, global_batch_tokens: 4M}
plan: {tp: 2, pp: 1, cp: 1, zero: 1, recompute: none, micro_batch: 1}
"""


def test_a_stated_plan_that_does_not_fit_is_one_plan(tmp_path, capsys):
    """Llama 3.1 70B with tp 2, pp 1, ZeRO-1, no recompute on 64 H100 (70.6B x 2 bytes / 2 = 70.6 GB of BF16
    weights alone per chip, plus fp32 gradients: far over 80 GiB). `estimate` said 'no plan fits in memory: the
    smallest of 1 plans (...)' and the report '1 plans evaluated'. Fix: 'the one plan evaluated', '1 plan'."""
    spec = write_spec(tmp_path, LLAMA70_STATED)
    code, out, err = run_main(capsys, "estimate", spec)
    assert code == 1
    assert "1 plans" not in err and "no plan fits in memory: the one plan evaluated (tp=2 pp=1" in err
    html = tmp_path / "r.html"
    code, out, err = run_main(capsys, "report", spec, "-o", html)
    assert code == 1 and html.exists()
    text = html.read_text()
    # the candidates the rules rejected are counted before it (report.fmt.search_counts, qa31)
    assert "1 plans" not in text and " candidate plans: 1 valid and evaluated, 0 fit in memory" in text


# ---------------------------------------------------------------- 8. check's counts with separators


def test_check_prints_the_domain_and_length_with_separators(tmp_path, capsys):
    """`check` of DeepSeek-V3 on '2 SuperPoDs' of the Atlas 950 (8,192 NPUs per supernode, Huawei Connect 2025)
    printed 'scale-up domain 8192, 16,384 chips' and 'seq_len 4096' on lines where every other count has
    separators (the serving lines print 'input 4,096 tokens')."""
    spec = write_spec(tmp_path, "model: deepseek-v3\nsystem: atlas-950-superpod\nchips: 2 SuperPoDs\n"
                                "training: {seq_len: 4K, global_batch_tokens: 64M, tokens: 15T}\n")
    code, out, err = run_main(capsys, "check", spec)
    assert code == 0, err
    assert "scale-up domain 8,192, 16,384 chips" in out and "seq_len 4,096 tokens" in out
    assert "8192" not in out and "4096" not in out


# ---------------------------------------------------------------- 9. a key written in the wrong section


def test_a_key_of_another_section_says_where_it_goes(tmp_path, capsys):
    """A serving spec with `tpot_ms: 50` under `serving:` said 'serving.tpot_ms: unknown key (typo?)': the key is
    right, its place is not (docs: `latency: {tpot_ms, ttft_ms}`). Likewise `chips` inside `training:` of a run
    spec. Fix: the line names the section that takes the key."""
    spec = write_spec(tmp_path, "model: mixtral-8x7b\nsystem: dgx-h100\nchips: 8\n"
                                "serving: {precision: fp8, input_len: 2K, output_len: 512, tpot_ms: 50}\n", "s.yaml")
    code, out, err = run_main(capsys, "infer", spec)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {spec}: serving.tpot_ms: unknown key") and "latency.tpot_ms" in err
    run = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\n"
                               "training: {chips: 8, seq_len: 4096, global_batch_seqs: 64}\n")
    code, out, err = run_main(capsys, "check", run)
    assert code == 2 and err.startswith(f"error: {run}: training.chips: unknown key") and "top level" in err


def test_a_plain_typo_keeps_its_did_you_mean(tmp_path, capsys):
    run = write_spec(tmp_path, SMALL_RUN.replace("seq_len", "seq_lenn"))
    code, out, err = run_main(capsys, "check", run)
    assert code == 2 and "did you mean seq_len?" in err


# ---------------------------------------------------------------- 10. size's probe days as every days figure


def test_size_probe_days_have_one_decimal_like_the_answer(tmp_path, capsys):
    """`size RUN --days 10` (Mixtral 8x22B on H100 servers) answered '112 systems (896 chips) finish in 8.6 days
    (ideal 8.5 ...)' above a probes table of '8.51 | 8.56' and '8.04 | 8.1' (three significant digits: two
    decimals in one row, one in the next). Every other days figure (estimate, plan, report, the answer) has one
    decimal. Fix: the probes' days too, and they agree with --json rounded to one decimal."""
    import json
    spec = write_spec(tmp_path, SMALL_RUN)
    code, out, err = run_main(capsys, "size", spec, "--days", "5")
    assert code == 0, err
    table = out.split("probes")[1]
    rows = re.findall(r"│\s+([\d,]+) │\s+([\d,]+) │\s+([\d,]+) │\s+([\d,.]+) │\s+([\d,.]+) │", table)
    assert len(rows) >= 2
    code, js, _ = run_main(capsys, "size", spec, "--days", "5", "--json")
    probes = {p["units"]: p for p in json.loads(js)["probes"] if p["fits"]}
    for units, _chips, _b, d, eff in rows:
        p = probes[int(units.replace(",", ""))]
        assert re.fullmatch(r"[\d,]+\.\d", d) and re.fullmatch(r"[\d,]+\.\d", eff), (d, eff)
        assert float(d.replace(",", "")) == round(p["days"], 1)
        assert float(eff.replace(",", "")) == round(p["effective_days"], 1)


# ---------------------------------------------------------------- 11. compare's differing inputs as resolved


def test_compare_does_not_list_inputs_that_resolve_the_same(tmp_path, capsys):
    """`compare a.yaml b.yaml` where b writes `seq_len: 4K` (4 x 1,024 = 4,096, docs/run-spec.md), `chips: "8
    systems"` (8 DGX H100 x 8 GPUs = 64) and leaves `precision` out (default bf16) listed all three under 'inputs
    that differ' ('4096 | 4K', '64 | 8 systems', 'bf16 | -') beside identical estimates. Fix: a key differs when
    the values the run reads differ; the table still shows them as written."""
    import json
    a = write_spec(tmp_path, SMALL_RUN, "a.yaml")
    b = write_spec(tmp_path, SMALL_RUN.replace("chips: 64", 'chips: "8 systems"')
                   .replace("seq_len: 4096", "seq_len: 4K").replace(", precision: bf16", ""), "b.yaml")
    code, out, err = run_main(capsys, "compare", a, b, "--json")
    assert code == 0, err
    assert json.loads(out)["differing_inputs"] == {}
    code, out, err = run_main(capsys, "compare", a, b)
    assert code == 0 and "inputs that differ: none" in out
    # a real difference is still listed, as written
    c = write_spec(tmp_path, SMALL_RUN.replace("seq_len: 4096", "seq_len: 8K"), "c.yaml")
    code, out, err = run_main(capsys, "compare", b, c, "--json")
    assert json.loads(out)["differing_inputs"] == {"training.seq_len": ["4K", "8K"]}


# ---------------------------------------------------------------- 12. bytes are not billions


def test_posttrain_wan_bytes_per_token_names_bytes(capsys):
    """`posttrain examples/posttrain-opd-two-clusters.yaml` printed '4.1 B per generated token' where every count
    trainsim prints reads B as billions ('8.03B parameters', '14.8T tokens'). The quantity is bytes (token ids
    and log-probs of 4 bytes each: posttrain/timeline.py). Fix: 'bytes per generated token'."""
    from pathlib import Path
    ex = Path(__file__).resolve().parents[1] / "examples" / "posttrain-opd-two-clusters.yaml"
    code, out, err = run_main(capsys, "posttrain", ex)
    assert code == 0, err
    flat = " ".join(out.split())          # the line wraps at the terminal width
    assert re.search(r"\d bytes per generated token", flat) and not re.search(r"\d B per generated token", flat)


# ---------------------------------------------------------------- 13. the explorer's errors name its own fields


def test_sensitivity_parameter_error_names_the_callers_field(tmp_path, capsys):
    """POST /api/sensitivity with params ['hbm'] answered "--vary: 'hbm' is ambiguous ...": a command-line option
    the page does not have (its request field is `params`; the API's other errors say `factors`, `days`). Fix: the
    API says params, the CLI (api.CLI_NAMES) still --vary."""
    from trainsim.api import scenarios
    from trainsim.errors import TrainsimError
    from trainsim.serve.app import do_sensitivity
    spec = {"model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8,
            "training": {"seq_len": 4096, "global_batch_seqs": 64}}
    with pytest.raises(TrainsimError) as e:
        do_sensitivity({"spec": spec, "params": ["hbm"], "factors": [0.5]})
    assert str(e.value).startswith("params: 'hbm' is ambiguous")
    with pytest.raises(TrainsimError) as e:
        scenarios.sensitivity(spec, ["hbm_bandwith"], [0.5])
    assert str(e.value).startswith("params: unknown sensitivity parameter 'hbm_bandwith'; did you mean hbm_bandwidth")
    code, out, err = run_main(capsys, "sensitivity", write_spec(tmp_path), "--vary", "hbm")
    assert code == 2 and err.startswith("error: --vary: 'hbm' is ambiguous")


# ---------------------------------------------------------------- 14. inline model errors as the spec's


INLINE = ("model: {name: x, layers: 32, hidden: 4096, heads: 32, KV, ffn: 11008, vocab: 32000}\n"
          "system: dgx-h100\nchips: 8\ntraining: {seq_len: 4096, global_batch_seqs: 64}\n")


def test_inline_model_misspelt_key_gets_did_you_mean(tmp_path, capsys):
    """`model: {..., kv_head: 8}` said 'model.kv_head: unknown key (typo?)' while a misspelt spec key gets 'did you
    mean ...?' (qa13): the inline model had its own copy of the pydantic error conversion. Fix: the one converter
    (errors.from_validation) with the inline model's keys."""
    spec = write_spec(tmp_path, INLINE.replace("KV", "kv_head: 8"))
    code, out, err = run_main(capsys, "check", spec)
    assert code == 2 and err.startswith(f"error: {spec}: model.kv_head: unknown key (typo? did you mean kv_heads?)")


def test_inline_model_shape_error_does_not_echo_the_whole_mapping(tmp_path, capsys):
    """kv_heads 5 does not divide 32 heads: the line ended '; got {'name': 'x', 'layers': 32, ... 'vocab': 32000}'
    (103 characters of Python dict, the README's cap on an echoed value being 80). The rule names the two values."""
    spec = write_spec(tmp_path, INLINE.replace("KV", "kv_heads: 5"))
    code, out, err = run_main(capsys, "check", spec)
    assert code == 2 and "heads (32) must be a multiple of kv_heads (5)" in err
    assert "{'name'" not in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- 15. bare link numbers far outside any link


@pytest.mark.parametrize("level, value, words", [
    ("scale_out: {bandwidth: 400}", "400", "bytes per second"),        # 400 B/s: meant 400 Gb/s
    ("scale_up: {bandwidth: 450}", "450", "bytes per second"),
    ("scale_out: {latency: 5}", "5", "seconds"),                      # 5 s per hop: meant 5 us
])
def test_a_bare_link_number_far_outside_any_link_is_refused(tmp_path, capsys, level, value, words):
    """`system: {base: dgx-h100, scale_out: {bandwidth: 400}}` was read as 400 bytes/s and `check` printed
    'scale-out 3.2e-06 Gb/s per chip' as valid; `latency: 5` was 5 seconds per message (the catalog's RoCE
    assumption is 5 us) and `check` did not even show it. docs/run-spec.md: bandwidths in bytes/s, latencies in
    seconds, so a bare number is read in those units; a value a million times off any link (the slowest level
    in the catalog is TPU v4's 25 Gb/s DCN, 3.1e9 B/s; the slowest hop 10 us) is refused, naming the unit it was
    read in."""
    spec = write_spec(tmp_path, f"model: llama-3.1-8b\nsystem: {{base: dgx-h100, {level}}}\nchips: 16\n"
                                "training: {seq_len: 4096, global_batch_seqs: 64}\n")
    code, out, err = run_main(capsys, "check", spec)
    assert code == 2 and out == "", out
    assert err.startswith(f"error: {spec}: system.{level.split(':')[0]}.") and words in err and f"got {value}" in err


@pytest.mark.parametrize("level", ["scale_out: {bandwidth: 5e10}", "scale_out: {bandwidth: '400 Gb/s'}",
                                   "scale_out: {latency: '5 us'}", "scale_out: {latency: 5e-6}",
                                   "inter_site: {size: 8, bandwidth: '100 Gb/s', latency: '30 ms'}"])
def test_link_values_in_range_still_read(tmp_path, capsys, level):
    spec = write_spec(tmp_path, f"model: llama-3.1-8b\nsystem: {{base: dgx-h100, {level}}}\nchips: 16\n"
                                "training: {seq_len: 4096, global_batch_seqs: 64}\n")
    code, out, err = run_main(capsys, "check", spec)
    assert code == 0, err


# ---------------------------------------------------------------- 16. fewer tokens than one step


def test_tokens_below_one_global_batch_is_refused(tmp_path, capsys):
    """`tokens: 100` (meant 100B) with a batch of 64 x 4,096 = 262,144 tokens answered 'whole run 0.0 days' and
    '2.95e-06 chip-hours': a run that ends before its first step. Fix: one line naming training.tokens, the
    batch's tokens and the 'B' it probably missed; a batch of exactly the run's tokens (one step) still answers.
    The seq_len in the batch-below-one-sequence line gets its separator too."""
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 8\n"
                                "training: {seq_len: 4096, global_batch_seqs: 64, tokens: 100}\n")
    code, out, err = run_main(capsys, "estimate", spec)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {spec}: training.tokens: ") and "262,144" in err and "got 100" in err
    one = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 8\n"
                               "training: {seq_len: 4096, global_batch_seqs: 64, tokens: 262144}\n", "one.yaml")
    code, out, err = run_main(capsys, "estimate", one)
    assert code == 0, err
    short = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 8\n"
                                 "training: {seq_len: 4096, global_batch_tokens: 1000}\n", "short.yaml")
    code, out, err = run_main(capsys, "check", short)
    assert code == 2 and "one 4,096-token sequence" in err


# ---------------------------------------------------------------- 17. a fractional count names its value


def test_a_fractional_count_echoes_the_value(tmp_path, capsys):
    """`chips: 8.5` said 'chips: Input should be a valid integer, got a number with a fractional part': the one
    line names the field but not the value (README: file, field, value, what was expected)."""
    spec = write_spec(tmp_path, SMALL_RUN.replace("chips: 64", "chips: 8.5"))
    code, out, err = run_main(capsys, "check", spec)
    assert code == 2 and err.startswith(f"error: {spec}: chips: ") and "8.5" in err
    spec = write_spec(tmp_path, SMALL_RUN.rstrip() + "\nplan: {tp: 2.5}\n", "p.yaml")
    code, out, err = run_main(capsys, "check", spec)
    assert code == 2 and "plan.tp" in err and "2.5" in err
