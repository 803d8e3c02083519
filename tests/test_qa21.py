"""qa21: a sceptical user's defect hunt over what users run besides estimate / plan: serving specs (`infer`), RL
specs (`posttrain`), scenarios, the explorer and its memoised search. Each regression test failed before its fix
(the defect named in its docstring); expected values are hand derivations or published figures written here, never
the engine's own output."""
from __future__ import annotations

import pytest

from conftest import run_main, write_spec


def _one_line(code, err, want):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == want and len(lines) == 1 and "Traceback" not in err, (code, err[-400:])
    return lines[0]


# ---------------------------------------------------------------- 1. the memoised search answered with another system


def _priced(price: float, power: float | None = None) -> dict:
    system: dict = {"base": "dgx-h100", "price_per_chip_usd": price}
    if power is not None:
        system["power_per_chip_w"] = power
    return {"name": "t", "model": "llama-3.1-8b", "system": system, "chips": 64,
            "training": {"tokens": 1e12, "seq_len": 4096, "global_batch_seqs": 512}}


def test_a_memoised_plan_costs_the_system_it_was_asked_about():
    """`trainsim.api.scenarios.plan` (the explorer's plan view, the scenarios) memoises the plan search on what the
    search depends on -- not a system's price or power -- and returned the cached result, whose run carried the
    FIRST caller's system: the same run at $60,000 per chip was costed at the $30,000 of the question before it
    (cluster capex $1.92M both times), and in the explorer a request without edits got the previous request's
    `$1e+308 per chip` error. Cluster capex = chips x price per chip: 64 x 30,000 = 1.92M, 64 x 60,000 = 3.84M."""
    from trainsim.api import scenarios
    from trainsim.scenario.common import clear_cache
    clear_cache()
    a = scenarios.plan(_priced(30_000.0), top=1).to_dict()["economics"]
    b = scenarios.plan(_priced(60_000.0), top=1).to_dict()["economics"]
    assert a["cluster_capex_usd"]["nominal"] == pytest.approx(64 * 30_000.0)
    assert b["cluster_capex_usd"]["nominal"] == pytest.approx(64 * 60_000.0)
    # energy = power x PUE x chip-hours: 2,000 W instead of 1,275 W scales it by 2000 / 1275 at the same plan
    c = scenarios.plan(_priced(60_000.0, power=2000.0), top=1).to_dict()["economics"]
    assert c["power_per_chip_w"]["nominal"] == 2000.0
    assert c["energy_mwh"]["nominal"] == pytest.approx(b["energy_mwh"]["nominal"] * 2000.0 / 1275.0, rel=1e-9)


def test_the_explorer_answers_each_request_with_its_own_edits():
    pytest.importorskip("starlette")
    from trainsim.errors import TrainsimError
    from trainsim.scenario.common import clear_cache
    from trainsim.serve import app as serve_app
    clear_cache()
    spec = {"model": "llama-3.1-8b", "system": "dgx-h100", "chips": 64,
            "training": {"tokens": 1e12, "seq_len": 4096, "global_batch_seqs": 512, "precision": "bf16"}}
    plain = serve_app.do_plan({"spec": spec})["answer"]["economics"]["cluster_capex_usd"]["nominal"]
    with pytest.raises(TrainsimError, match="price_per_chip_usd"):
        serve_app.do_plan({"spec": spec, "edits": {"price_per_chip_usd": 1e308}})
    again = serve_app.do_plan({"spec": spec, "failure_rate": 1e-4})["answer"]["economics"]
    assert again["cluster_capex_usd"]["nominal"] == plain
    edited = serve_app.do_plan({"spec": spec, "edits": {"price_per_chip_usd": 50_000.0}})["answer"]["economics"]
    assert edited["cluster_capex_usd"]["nominal"] == pytest.approx(64 * 50_000.0)


# ---------------------------------------------------------------- 2. a prompt longer than a prefill round

#: Llama 3.1 8B's KV cache per token in BF16: 32 layers x 8 KV heads x 128 dims x 2 (K and V) x 2 bytes
#: (meta-llama/Llama-3.1-8B config.json: num_hidden_layers 32, num_key_value_heads 8, head_dim 4096 / 32)
LLAMA8B_KV_BYTES_PER_TOKEN = 32 * 8 * 128 * 2 * 2


def test_a_prompt_longer_than_a_round_waits_for_all_its_chunks(tmp_path, capsys):
    """A 128K-token prompt (131,072 tokens) on one H100 in prefill rounds of 16,384 tokens was shown a 'time to first
    token' of ONE round -- an eighth of the prompt -- and the KV cache of that eighth (2 GiB). The first token
    needs every chunk: TTFT x prefill tokens/s per chip x chips = the prompt's tokens (one replica), and the chip
    holds the whole prompt's KV cache, 131,072 x 131,072 B = 16 GiB."""
    import json
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 1\n"
                                "serving: {phase: prefill, input_len: 128K, prefill_tokens_per_chip: 16384}\n")
    code, out, err = run_main(capsys, "infer", spec, "--json")
    assert code == 0, err
    pre = json.loads(out)["prefill"]
    assert pre["ttft_s"] * pre["tokens_per_s_per_chip"] * 1 == pytest.approx(131072, rel=1e-9)
    assert pre["memory_per_chip_bytes"]["kv_cache"] == pytest.approx(131072 * LLAMA8B_KV_BYTES_PER_TOKEN, rel=1e-9)
    code, out, err = run_main(capsys, "infer", spec)
    assert code == 0 and "8 rounds" in out, out


def test_a_prompt_whose_kv_cache_exceeds_the_chip_does_not_fit_in_rounds(tmp_path, capsys):
    """A 1M-token prompt (1,048,576 tokens) of Llama 3.1 8B needs 1,048,576 x 131,072 B = 128 GiB of KV cache, more
    than an H100's 80 GB: one chip cannot prefill it whatever the round size. It was answered (exit 0, 36.7 GB per
    chip, TTFT 29 s = one round of 65,536 tokens); now nothing fits: exit 1."""
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 1\n"
                                "serving: {phase: prefill, input_len: 1M}\n")
    code, out, err = run_main(capsys, "infer", spec)
    line = _one_line(code, err, 1)
    assert "prefill" in line and "HBM" in line, line


# ---------------------------------------------------------------- 3. S7's WAN link and range inputs


def _s7(tmp_path, mutate):
    import yaml
    from pathlib import Path
    doc = yaml.safe_load((Path(__file__).resolve().parents[1] / "scenarios" / "S7.yaml").read_text())
    mutate(doc["inputs"])
    p = tmp_path / "s7.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


@pytest.mark.parametrize("mutate, field, needle", [
    (lambda i: i["wan"].update(bandwidth="0 Gb/s"), "inputs.wan.bandwidth", "> 0"),          # was exit 3
    (lambda i: i["wan"].update(bandwidth=-1), "inputs.wan.bandwidth", "> 0"),                # was evaluated
    (lambda i: i["wan"].update(latency="-5 ms"), "inputs.wan.latency", ">= 0"),              # was evaluated
    (lambda i: i["wan"].pop("bandwidth"), "inputs.wan.bandwidth", "missing"),                # was exit 3
    (lambda i: i["wan"].update(latncy="5 ms"), "inputs.wan.latncy", "latency"),              # was ignored
    (lambda i: i["wan_range"].update(value="50 Gb/s"), "inputs.wan_range", "[low, high]"),   # read as '5' .. 's'
    (lambda i: i["wan_range"].update(value=[0, 5]), "inputs.wan_range[0]", "> 0"),          # was exit 3
    (lambda i: i["wan_range"].update(value=[float("nan"), 5e9]), "inputs.wan_range[0]", "finite"),
    (lambda i: i["wan_range"].update(value=["1 Gb/s", "5 Gb/s", "100 Gb/s"]), "inputs.wan_range", "two"),
    (lambda i: i["wan_range"].update(value=["100 Gb/s", "1 Gb/s"]), "inputs.wan_range", "low <= high"),
    (lambda i: i["cluster"].pop("system"), "inputs.cluster.system", "missing"),              # was exit 3
    (lambda i: i["cluster"].update(chip=5), "inputs.cluster.chip", "chips"),                 # was ignored
])
def test_a_wan_input_of_the_multicluster_scenario_is_checked_like_a_link(tmp_path, capsys, mutate, field, needle):
    """S7 (posttrain_multicluster) read `inputs.wan` and `inputs.wan_range` with bare dictionary lookups: a WAN of
    0 Gb/s divided by zero (exit 3), a negative bandwidth or latency was evaluated, a missing bandwidth raised a
    KeyError (exit 3), a misspelt key was ignored, and `wan_range: '50 Gb/s'` was indexed character by character.
    Now each is the post-training spec's link rule (bandwidth > 0, latency >= 0, units parsed): one line, exit 2."""
    code, out, err = run_main(capsys, "scenario", _s7(tmp_path, mutate))
    line = _one_line(code, err, 2)
    assert f"{field}:" in line and needle in line, line
