"""qa21: a sceptical user's defect hunt over what users run besides estimate / plan: serving specs (`infer`), RL
specs (`posttrain`), scenarios, the explorer and its memoised search. Each regression test failed before its fix
(the defect named in its docstring); expected values are hand derivations or published figures written here, never
the engine's own output."""
from __future__ import annotations

import pytest

from conftest import one_line, run_main, write_spec


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
    chip, TTFT 29 s = one round of 65,536 tokens); now nothing fits: exit 1. (The catalog's Llama 3.1 8B refuses a
    prompt past its 131,072-token context (phys28), so its shape is given inline, a context-extended variant.)"""
    spec = write_spec(tmp_path, "model: {name: llama8b-shape, layers: 32, hidden: 4096, heads: 32, kv_heads: 8, "
                                "ffn: 14336, ffn_act: swiglu, vocab: 128256, norm: rmsnorm}\nsystem: dgx-h100\n"
                                "chips: 1\nserving: {phase: prefill, input_len: 1M}\n")
    code, out, err = run_main(capsys, "infer", spec)
    line = one_line(code, err, 1)
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
    line = one_line(code, err, 2)
    assert f"{field}:" in line and needle in line, line


# ---------------------------------------------------------------- 4. post-training step inputs that were dropped

RL = """name: rl
kind: rl
clusters:
  main: {system: dgx-h100, chips: 16}
student: {model: llama-3.1-8b, cluster: main}
step: {prompts: 64, samples_per_prompt: 32, prompt_len: 128, rollout_len: 1024, tail_factor: 2.0%s}
"""


@pytest.mark.parametrize("extra, field, needle", [
    # the longest sample: 128 + ceil(1,024 x 2.0) = 2,176 tokens; NeMo RL's packer raises 'Sequence length L
    # exceeds bin capacity C' (nemo_rl/data/packing/algorithms.py); a budget below it was one sample per micro-batch
    (", pack_tokens: 2175", "step.pack_tokens", "2,176"),
    (", pack_tokens: 4096, logprob_pack_tokens: 1024", "step.logprob_pack_tokens", "2,176"),
    # 64 x 32 = 2,048 sequences; NeMo RL asserts 'Total batch size (N) is not a multiple of batch_size (gbs)'
    # (BatchedDataDict.shard_by_batch_size, tag v0.6.0): 600 was 3 optimizer steps, 5,000 one, without a word
    (", train_global_batch: 600", "step.train_global_batch", "2,048"),
    (", train_global_batch: 5000", "step.train_global_batch", "2,048"),
    # a top-k count with one sampled log-prob per token (or the full vocabulary) was dropped
    (", topk: 50", "step.topk", "logprobs"),
    (", logprobs: full, topk: 50", "step.topk", "logprobs"),
    # a synchronous (on-policy) step generates with the weights it trains: a broadcast every 4th step was timed
    # as a quarter of a refit per step
    (", weight_sync_every: 4", "step", "async"),
])
def test_a_step_input_no_stack_could_run_is_bad_input(tmp_path, capsys, extra, field, needle):
    code, out, err = run_main(capsys, "check", write_spec(tmp_path, RL % extra))
    line = one_line(code, err, 2)
    assert f"{field}:" in line and needle in line and "(line 6)" in line, line


@pytest.mark.parametrize("extra", [", pack_tokens: 2176, logprob_pack_tokens: 2176", ", train_global_batch: 512",
                                   ", train_global_batch: 2048", ", logprobs: topk, topk: 50"])
def test_a_step_input_at_its_limit_is_answered(tmp_path, capsys, extra):
    code, out, err = run_main(capsys, "check", write_spec(tmp_path, RL % extra))
    assert code == 0, err


OPD = """name: opd
kind: opd
clusters:
  main: {system: dgx-h100, chips: 16}
  far: {system: dgx-h100, chips: 16}
links:
%s
student: {model: llama-3.1-8b, cluster: main}
teachers: [{name: t, model: llama-3.1-8b, cluster: far}]
step: {prompts: 64, samples_per_prompt: 8, prompt_len: 128, rollout_len: 1024}
"""


@pytest.mark.parametrize("links, needle", [
    # two links for one pair: the second was kept over the first without a word
    ("  - {between: [main, far], bandwidth: '1 Gb/s'}\n  - {between: [far, main], bandwidth: '100 Gb/s'}", "links.0"),
    # a link from a cluster to itself was never used (inside a cluster traffic runs on its own network)
    ("  - {between: [main, far], bandwidth: '1 Gb/s'}\n  - {between: [main, main], bandwidth: '1 Gb/s'}", "itself"),
])
def test_a_link_stated_twice_or_to_its_own_cluster_is_bad_input(tmp_path, capsys, links, needle):
    code, out, err = run_main(capsys, "check", write_spec(tmp_path, OPD % links))
    line = one_line(code, err, 2)
    assert "links.1.between:" in line and needle in line, line


def test_a_trainer_plan_its_share_of_the_cluster_cannot_take_names_the_spec_field(tmp_path, capsys):
    """A disaggregated RL job (8 of 16 chips for rollouts, so the trainer has 16 - 8 = 8) with a stated trainer plan
    of ep 16 (needs ep x etp = 16 to divide tp x cp x dp = 8): the error named `plan.ep`, a key no post-training spec
    has, and not the trainer's 8 chips. Now it names `student.train_plan.ep` and the trainer's chips, exit 2."""
    spec = write_spec(tmp_path, "name: rl\nkind: rl\nclusters:\n  main: {system: dgx-h100, chips: 16}\n"
                                "student:\n  model: qwen3-30b-a3b\n  cluster: main\n  rollout_chips: 8\n"
                                "  train_plan: {tp: 1, pp: 1, cp: 1, ep: 16, etp: 1, zero: 1, recompute: none, "
                                "micro_batch: 1}\n"
                                "step: {prompts: 64, samples_per_prompt: 8, prompt_len: 128, rollout_len: 1024}\n")
    code, out, err = run_main(capsys, "posttrain", spec)
    line = one_line(code, err, 2)
    assert "student.train_plan.ep:" in line and "8 chips" in line and " plan.ep:" not in line, line


def test_rollouts_on_teacher_clusters_of_a_job_without_teachers_is_bad_input(tmp_path, capsys):
    """`student.rollouts: teacher_clusters` with kind rl (no teachers) was ignored: every rollout ran on the
    student's cluster, as if unstated."""
    spec = write_spec(tmp_path, RL.replace("cluster: main}", "cluster: main, rollouts: teacher_clusters}") % "")
    code, out, err = run_main(capsys, "check", spec)
    line = one_line(code, err, 2)
    assert "student.rollouts" in line and "no teachers" in line, line


# ---------------------------------------------------------------- 5. properties: a longer output never shortens a step

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAST = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
ROLLOUT_CASES = (("llama-3.1-8b", "dgx-h100", 16), ("qwen3-30b-a3b", "dgx-h100", 16),
                 ("qwen3-30b-a3b", "gb200-nvl72", 32), ("llama-3.1-8b", "dgx-a100", 32))


@settings(max_examples=20, **FAST)
@given(case=st.sampled_from(ROLLOUT_CASES), seqs=st.sampled_from((8, 64, 512)),
       rollout_len=st.sampled_from((512, 2000, 8192)), more=st.sampled_from((1.01, 1.5, 4.0)),
       tail=st.sampled_from((1.0, 2.0)), continuous=st.booleans(), frac=st.sampled_from((0.6, 1.0)))
def test_a_longer_rollout_never_takes_less_time(case, seqs, rollout_len, more, tail, continuous, frac):
    """Every sample generating more tokens adds decode steps and KV cache and takes nothing away, so the step's
    generation (prefill + decode on the best server for the step) never gets shorter."""
    from trainsim.model.load import resolve_model
    from trainsim.catalog import get_system
    from trainsim.posttrain.phases import rollout_time

    model, system, chips = case
    arch, sysm = resolve_model(model), get_system(system)
    r = [rollout_time(arch, sysm, chips, seqs, max(seqs // 8, 1), 512, n, "bf16", 1.0 if continuous else tail,
                      continuous=continuous, hbm_fraction=frac)
         for n in (rollout_len, int(rollout_len * more))]
    assert r[1].prefill_s + r[1].decode_s >= (r[0].prefill_s + r[0].decode_s) * (1 - 1e-9), r


@settings(max_examples=6, **FAST)
@given(model=st.sampled_from(("llama-3.1-8b", "qwen3-30b-a3b")), mode=st.sampled_from(("sync", "async")),
       rollout_len=st.sampled_from((1024, 4096)), more=st.sampled_from((1.25, 2.0)))
def test_a_longer_output_never_shortens_an_rl_step(model, mode, rollout_len, more):
    """The whole RL step (refit, generation, log-probs, training: `trainsim posttrain`) with every sample longer
    never takes less time: generation, log-prob passes and training all grow with the tokens."""
    from trainsim.api.posttraining import posttrain

    def step_s(n: int) -> float:
        spec = {"name": "p", "kind": "rl", "clusters": {"main": {"system": "dgx-h100", "chips": 16}},
                "student": {"model": model, "cluster": "main"},
                "step": {"prompts": 32, "samples_per_prompt": 8, "prompt_len": 256, "rollout_len": n, "mode": mode}}
        return posttrain(spec).to_dict()["step_time_s"]

    a, b = step_s(rollout_len), step_s(int(rollout_len * more))
    assert b >= a * (1 - 1e-9), (a, b)


# ---------------------------------------------------------------- 6. serving lengths a request cannot have


@pytest.mark.parametrize("serving, field, needle", [
    # a decode step's KV cache holds the whole prompt (vLLM's PagedAttention keeps every prompt token's K and V):
    # context_len 10 with a 4,096-token prompt was timed against 10 tokens of KV
    ("{phase: decode, input_len: 4K, output_len: 1K, context_len: 10}", "serving.context_len", "4,096"),
    # the stack reserves KV for max_output_len per request: 10 with a mean output of 1,024 tokens was taken as given
    ("{input_len: 4K, output_len: 1K, max_output_len: 10}", "serving.max_output_len", "1,024"),
])
def test_a_serving_length_shorter_than_the_request_is_bad_input(tmp_path, capsys, serving, field, needle):
    spec = write_spec(tmp_path, f"model: qwen3-30b-a3b\nsystem: dgx-h100\nchips: 8\nserving: {serving}\n")
    code, out, err = run_main(capsys, "check", spec)
    line = one_line(code, err, 2)
    assert f"{field}:" in line and needle in line and "(line 4)" in line, line


@pytest.mark.parametrize("serving", ["{phase: decode, input_len: 4K, output_len: 1K, context_len: 4K}",
                                     "{input_len: 222, output_len: 291, max_output_len: 291}"])
def test_a_serving_length_equal_to_the_request_is_answered(tmp_path, capsys, serving):
    """The limits themselves: CloudMatrix's decode profile states KV 4,096 with a 4,096-token input
    (validation/inference/cloudmatrix-decode-b96-kv4k.yaml); a maximum output equal to the mean (fixed lengths)."""
    spec = write_spec(tmp_path, f"model: qwen3-30b-a3b\nsystem: dgx-h100\nchips: 8\nserving: {serving}\n")
    code, out, err = run_main(capsys, "check", spec)
    assert code == 0, err


# ---------------------------------------------------------------- 7. a local Dask cluster without the sweep extra


def test_sweep_workers_without_dask_says_which_extra_to_install(tmp_path, capsys, monkeypatch):
    """`trainsim sweep S.yaml -o r.parquet --workers 2` on an install without the `sweep` extra (no dask at all)
    imported dask before the check that names the extra: exit 3 'unexpected ModuleNotFoundError' (`--scheduler`
    already said what to install). Now one line naming the extra, exit 2."""
    import sys
    base = write_spec(tmp_path, name="base.yaml")
    spec = write_spec(tmp_path, f"base: {base}\naxes:\n  chips: [8, 16]\n", name="sweep.yaml")
    for mod in ("dask", "distributed"):
        monkeypatch.setitem(sys.modules, mod, None)      # `import dask` raises ModuleNotFoundError, as uninstalled
    code, out, err = run_main(capsys, "sweep", spec, "-o", tmp_path / "r.parquet", "--workers", "2")
    line = one_line(code, err, 2)
    assert "pip install 'trainsim[sweep]'" in line, line


# ---------------------------------------------------------------- 8. a serving dp without the chips it implies


def test_a_serving_dp_without_chips_is_bad_input(tmp_path, capsys):
    """`plan: {tp: 2, dp: 3}` with no `chips`: the serving search sizes instances by chips (powers of two and
    scale-up multiples) and never read dp, so the answer was chips=2 tp=2 dp=1 -- the stated dp dropped without a
    word. With `chips: 6` (= 3 x 2 x 1) the plan is honoured; without, one line, exit 2."""
    body = "model: llama-3.1-8b\nsystem: dgx-h100\n{chips}plan: {{tp: 2, dp: 3}}\n" \
           "serving: {{phase: decode, input_len: 4K, output_len: 1K}}\n"
    code, out, err = run_main(capsys, "check", write_spec(tmp_path, body.format(chips="")))
    line = one_line(code, err, 2)
    assert "plan.dp:" in line and "chips" in line, line
    import json
    code, out, err = run_main(capsys, "infer", write_spec(tmp_path, body.format(chips="chips: 6\n")), "--json")
    assert code == 0 and json.loads(out)["decode"]["plan"]["dp"] == 3, err


# ---------------------------------------------------------------- 9. serving inputs the spec's phase never reads


@pytest.mark.parametrize("phase, extra, field", [
    ("decode", "latency: {ttft_ms: 100}", "latency.ttft_ms"),                  # was answered with no bound at all
    ("decode", "serving_extra: {prefill_tokens_per_chip: 4096}", "serving.prefill_tokens_per_chip"),
    ("prefill", "latency: {tpot_ms: 50}", "latency.tpot_ms"),
    ("prefill", "serving_extra: {batch_per_chip: 8}", "serving.batch_per_chip"),
    ("prefill", "serving_extra: {mtp: {draft_tokens: 1, acceptance: 0.7}}", "serving.mtp"),
    ("prefill", "uncertain: {batch_per_chip: [1, 8]}", "uncertain.batch_per_chip"),   # max_batch: read by prefill too
    ("both", "latency: {tpot_stat: p99}", "latency.tpot_stat"),               # a statistic of no bound
])
def test_a_serving_input_the_phase_never_reads_is_bad_input(tmp_path, capsys, phase, extra, field):
    """A prefill-only evaluation reads no decode batch, TPOT bound or MTP, a decode-only one no prefill round or TTFT
    bound: each such input was dropped without a word (a decode deployment 'under a 100 ms TTFT' was answered as if
    unbounded). Now one line naming the field, exit 2."""
    serving = {"phase": phase, "input_len": 4096, "output_len": 1024}
    if extra.startswith("serving_extra: "):
        import yaml
        serving.update(yaml.safe_load(extra.removeprefix("serving_extra: ")))
        extra = ""
    import json
    spec = write_spec(tmp_path, "model: llama-3.1-8b\nsystem: dgx-h100\nchips: 8\n"
                                f"serving: {json.dumps(serving)}\n{extra}\n")
    code, out, err = run_main(capsys, "check", spec)
    line = one_line(code, err, 2)
    assert f"{field}:" in line, line


# ---------------------------------------------------------------- 10. property: a slower chip never serves faster


@settings(max_examples=20, **FAST)
@given(model=st.sampled_from(("llama-3.1-8b", "qwen3-30b-a3b")), system=st.sampled_from(("dgx-h100", "gb200-nvl72")),
       input_len=st.sampled_from((2048, 65536, 262144, 1048576)), tokens_per_chip=st.sampled_from((None, 4096)),
       what=st.sampled_from(("hbm_bw", "flops", "scale_up")), factor=st.sampled_from((1.25, 4.0)))
def test_a_slower_chip_never_serves_a_long_prompt_faster(model, system, input_len, tokens_per_chip, what, factor):
    """The chip made slower (HBM bandwidth, FLOP/s or scale-up bandwidth divided by ``factor``) never raises the best
    prefill rate, and at a fixed plan never shortens the time to first token -- also for prompts longer than a
    prefill round (chunked: several rounds to the first token, section 2)."""
    from trainsim.catalog import get_system
    from trainsim.inference.serve import best_prefill, setup_for
    from trainsim.model.load import resolve_model
    from test_qa19 import scaled_system

    arch = resolve_model(model)
    evs = [best_prefill(setup_for(arch, sysm, "bf16"), input_len, max_chips=16, tokens_per_chip=tokens_per_chip)
           for sysm in (get_system(system), scaled_system(system, what, 1.0 / factor))]
    fast, slow = evs
    if fast.best is None:
        assert slow.best is None
        return
    rate = [float(ev.tokens_per_s_per_chip[ev.best]) if ev.best is not None else 0.0 for ev in evs]
    assert rate[1] <= rate[0] * (1 + 1e-9), rate
    # the same candidates in the same order on both systems: TTFT candidate by candidate
    import numpy as np
    assert np.all(slow.latency_s >= fast.latency_s * (1 - 1e-9))


# ---------------------------------------------------------------- 11. a sweep over a spec of another kind


@pytest.mark.parametrize("base, kind", [("serving-llama-3.1-8b-h800.yaml", "serving"),
                                        ("posttrain-opd-two-clusters.yaml", "post-training")])
def test_a_sweep_whose_base_is_not_a_run_spec_says_what_it_is(tmp_path, capsys, base, kind):
    """A sweep whose `base:` is the serving example was refused as 'base: serving: unknown key (typo?)' -- the run-spec
    reader's view of a serving file, as if a key were misspelt. Now the line says which kind the base is."""
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "examples" / base
    spec = write_spec(tmp_path, f"base: {path}\naxes:\n  chips: [8, 16]\n", name="sweep.yaml")
    code, out, err = run_main(capsys, "check", spec)
    line = one_line(code, err, 2)
    assert "base:" in line and f"is a {kind} spec" in line and "typo" not in line, line
