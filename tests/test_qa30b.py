"""QA pass 30b: an ML-infrastructure engineer's edge inputs (each test fails on the code before its fix)."""
from __future__ import annotations

from conftest import one_line, run_main, write_spec


# ---------------------------------------------------------------- 1. RL packing budget vs the student's context

#: Llama 3.1 8B GRPO on 16 H100 (validation/rl/nemo-rl-v05-h100-llama8b-16-sync.yaml, trimmed) with a mean rollout
#: of 40,000 tokens and the published tail factor 3.894: the longest sample would be 128 + ceil(40,000 x 3.894) =
#: 155,888 tokens, above Llama 3.1 8B's context of 131,072 (config.json max_position_embeddings), so vLLM stops it at
#: 131,072 (max_model_len; posttrain/spec.py check_context / context_capped_tail price it so). NeMo RL sets the
#: packing budget to max_total_sequence_length x micro-batch = 131,072 here: that holds every sample the stack runs.
RL_LONG = """name: rl-long
kind: rl
clusters:
  main: {system: dgx-h100, chips: 16}
student:
  model: llama-3.1-8b
  cluster: main
  train_plan: {tp: 2, cp: 1, pp: 2, micro_batch: 1, zero: 1, recompute: full}
step: {prompts: 4, samples_per_prompt: 8, prompt_len: 128, rollout_len: 40000, tail_factor: %s,
       pack_tokens: %d, logprob_pack_tokens: %d}
"""


def test_a_packing_budget_of_the_context_holds_every_sample_the_rollout_runs(tmp_path, capsys):
    """`pack_tokens: 131072` (the context) was refused: 'less than the step's longest sample ... = 155,888 tokens',
    the uncapped tail, which the rollout itself prices cut at the context (131,072)."""
    code, out, err = run_main(capsys, "check", write_spec(tmp_path, RL_LONG % ("3.894", 131072, 131072)))
    assert code == 0, err


def test_a_packing_budget_below_the_capped_longest_sample_is_still_refused(tmp_path, capsys):
    """The refusal stays, against the longest sample the stack runs: 131,071 < 131,072."""
    code, out, err = run_main(capsys, "check", write_spec(tmp_path, RL_LONG % ("3.894", 131071, 131072)))
    line = one_line(code, err, 2)
    assert "step.pack_tokens:" in line and "131,072" in line and "155,888" not in line, line


def test_the_trainer_pads_pipeline_micro_batches_to_the_capped_longest_sample(tmp_path):
    """With pp 2 NeMo RL pads each packed micro-batch to the longest sample (phases.pipeline_packed_len); that
    sample stops at the context, so a tail of 3.894 trains as the tail that reaches the context exactly,
    (131,072 - 128) / 40,000 = 3.2736 (longest 128 + ceil(40,000 x 3.2736) = 131,072): the same trainer time."""
    from trainsim.posttrain.spec import load_posttrain
    from trainsim.posttrain.timeline import trainer_time

    over = trainer_time(load_posttrain(write_spec(tmp_path, RL_LONG % ("3.894", 131072, 131072), "a.yaml")))
    at = trainer_time(load_posttrain(write_spec(tmp_path, RL_LONG % ("3.2736", 131072, 131072), "b.yaml")))
    assert over.step_s == at.step_s and over.forward_s == at.forward_s


# ---------------------------------------------------------------- 2. infer: the reason no decode plan runs

#: Qwen3-30B-A3B served on 8-GPU H100 nodes, vLLM (the GPU default), 2,048-token prompts, 512 outputs, a step
#: budget of one token per scheduler. vLLM V1 schedules the running decodes against the budget first, and in
#: steady state each running sequence also brings its share of the prompts that replace the finished ones:
#: 1 + 2,048 / 512 = 5 tokens a step (inference/search.py token_budget_cap), so a budget of 1 keeps 1 / 5 = 0.2
#: sequences per data-parallel replica and pipeline stage: no plan has work for each replica, at any latency.
BUDGET_1 = """name: budget-1
model: qwen3-30b-a3b
system: dgx-h100
serving: {input_len: 2048, output_len: 512, precision: fp8, max_batched_tokens: 1}
"""


def test_a_token_budget_no_replica_can_run_under_is_named_not_a_missed_latency_bound(tmp_path, capsys):
    """With `latency: {tpot_ms: 30}` this said 'no decode plan meets the latency bound of 30 ms (fastest fitting:
    4.009 ms)': a fastest plan under the bound, and the wrong reason (the plans that fit have no work for their
    replicas, bound or not)."""
    code, out, err = run_main(capsys, "infer", write_spec(tmp_path, BUDGET_1 + "latency: {tpot_ms: 30}\n"))
    line = one_line(code, err, 1)
    assert "latency bound" not in line, line
    assert "has work for each data-parallel replica and pipeline stage" in line, line
    assert "at most 0.2 sequences per replica and stage" in line, line


def test_without_a_bound_the_message_does_not_call_a_searched_batch_stated(tmp_path, capsys):
    """No batch is stated here (the batch is searched, capped by the token budget): the message said 'at the
    stated batch (at most 102.4 sequences per instance)', the most over instances of up to 512 chips."""
    code, out, err = run_main(capsys, "infer", write_spec(tmp_path, BUDGET_1))
    line = one_line(code, err, 1)
    assert "stated batch" not in line and "at most 0.2 sequences per replica and stage" in line, line
    assert "serving.max_batched_tokens" in line, line


# ---------------------------------------------------------------- 3. infer: a KV length past the model's context

def test_a_decode_context_past_the_models_context_is_bad_input(tmp_path, capsys):
    """`context_len: 1000000` on DeepSeek-V3 (config.json max_position_embeddings 163,840) was priced: 33,508 MiB of
    KV per sequence, 0.5 sequences per chip. No server holds a KV cache longer than max_model_len, which is at most
    the model's context (the same limit input_len + output_len is checked against)."""
    spec = ("name: d\nmodel: deepseek-v3\nsystem: dgx-h100\nchips: 16\n"
            "serving: {phase: decode, input_len: 4096, output_len: 1024, context_len: 1000000, precision: fp8}\n")
    code, out, err = run_main(capsys, "infer", write_spec(tmp_path, spec))
    line = one_line(code, err, 2)
    assert "serving.context_len:" in line and "163,840" in line and "(line 5)" in line, line


def test_a_decode_context_at_the_models_context_is_answered(tmp_path, capsys):
    """The limit itself is a length a server runs (a prompt of 100,000 tokens, KV of 163,840 at the step)."""
    spec = ("name: d\nmodel: deepseek-v3\nsystem: dgx-h100\nchips: 16\n"
            "serving: {phase: decode, input_len: 100000, output_len: 1024, context_len: 163840, precision: fp8}\n")
    code, out, err = run_main(capsys, "infer", write_spec(tmp_path, spec))
    assert code == 0, err


# ---------------------------------------------------------------- 4. OPD: top-k above the vocabulary

OPD = """name: opd
kind: opd
clusters:
  main: {system: cloudmatrix-384, chips: 384}
  math: {system: hgx-h800, chips: 256}
links:
  - {between: [main, math], bandwidth: "10 Gb/s", latency: "30 ms"}
student: {model: qwen3-30b-a3b, cluster: main}
teachers:
  - {name: math, model: qwen3-30b-a3b, cluster: math, share: 0.5}
  - {name: general, model: qwen3-30b-a3b, cluster: main, share: 0.5}
step: {prompts: 512, samples_per_prompt: 16, prompt_len: 1024, rollout_len: 16384, mode: async, logprobs: topk,
       topk: %d}
"""


def test_a_top_k_above_the_vocabulary_is_bad_input(tmp_path, capsys):
    """`topk: 100000000` with Qwen3-30B-A3B teachers (vocab_size 151,936, config.json) was priced at 6 bytes x 1e8 = 600 MB
    per generated token over the WAN (a 372-day step), ~2,000x the 2 x 151,936 bytes `logprobs: full` sends: a
    teacher returns at most its whole vocabulary (torch.topk refuses k above the dimension)."""
    code, out, err = run_main(capsys, "posttrain", write_spec(tmp_path, OPD % 100_000_000))
    line = one_line(code, err, 2)
    assert "step.topk:" in line and "151,936" in line and "(line 13)" in line, line


def test_a_top_k_of_the_whole_vocabulary_is_answered(tmp_path, capsys):
    code, out, err = run_main(capsys, "check", write_spec(tmp_path, OPD % 151_936))
    assert code == 0, err


# ---------------------------------------------------------------- 5. plan: a chip no plan can ever fit

TINY_HBM = """name: tiny
model: llama-3.1-8b
system:
  chip: {name: tinychip, bf16_tflops: 989, hbm: 1 GiB, hbm_bandwidth: 3.35 TB/s, scale_up_bandwidth: 450 GB/s,
         scale_out_bandwidth: 400 Gb/s}
  scale_up: {size: 8}
  scale_out: {bandwidth: 400 Gb/s}
chips: 64
training: {seq_len: 4096, global_batch_seqs: 512, precision: bf16}
"""


def test_a_chip_smaller_than_the_fixed_buffers_says_no_chip_count_fits(tmp_path, capsys):
    """Every plan holds the fixed context and communication buffers, buffer_bytes = 2.0e9 B = 1.86 GiB
    (perf/data/constants.yaml), besides its weights, gradients, optimizer state and activations; a 1 GiB chip fits
    none at any chip count. `plan` said only 'no plan fits in memory: ... needs 4.7 GiB per chip vs 1.0 GiB HBM',
    exit 1 with no alternative and no word that more chips cannot help."""
    code, out, err = run_main(capsys, "plan", "-q", write_spec(tmp_path, TINY_HBM))
    assert code == 1, err
    text = " ".join((out + err).split())
    assert "1.9 GiB" in text and "at any chip count" in text, text


# ---------------------------------------------------------------- 6. an inline MoE with no MoE layer

INLINE_MOE = """name: inline
model:
  layers: 8
  hidden: 1024
  heads: 16
  ffn: 4096
  ffn_act: swiglu
  vocab: 32000
  moe: {experts: 8, top_k: 2, expert_ffn: 1024, %s}
system: dgx-h100
chips: 8
training: {seq_len: 2048, global_batch_seqs: 64, precision: bf16}
"""


def test_an_inline_moe_that_leaves_no_moe_layer_is_bad_input(tmp_path, capsys):
    """8 layers with `dense_layers: 8` (or `every: 9`) leave (8 - dense_layers) // every = 0 MoE layers: the stated
    experts were dropped and the model priced dense (0.200 B parameters, no expert in them), exit 0."""
    for moe in ("dense_layers: 8", "every: 9"):
        code, out, err = run_main(capsys, "check", write_spec(tmp_path, INLINE_MOE % moe))
        line = one_line(code, err, 2)
        assert "model" in line and "no MoE layer" in line, line


def test_an_inline_moe_with_one_moe_layer_is_answered(tmp_path, capsys):
    """(8 - 7) // 1 = 1 MoE layer: a model with experts."""
    code, out, err = run_main(capsys, "check", write_spec(tmp_path, INLINE_MOE % "dense_layers: 7"))
    assert code == 0, err


# ---------------------------------------------------------------- 7. infer: an uncertain KV length past the context

def test_the_high_end_of_an_uncertain_context_len_past_the_models_context_is_bad_input(tmp_path, capsys):
    """The validation table prices each end of an uncertain range as a stated input (inference/spec.py), and
    input_len / output_len ends are checked against the context; a context_len end of 1,000,000 on DeepSeek-V3
    (163,840) was not."""
    spec = ("name: d\nmodel: deepseek-v3\nsystem: dgx-h100\nchips: 16\n"
            "serving: {phase: decode, input_len: 4096, output_len: 1024, context_len: 4096, precision: fp8}\n"
            "uncertain: {context_len: [4096, 1000000]}\n")
    code, out, err = run_main(capsys, "check", write_spec(tmp_path, spec))
    line = one_line(code, err, 2)
    assert "uncertain.context_len:" in line and "163,840" in line, line


# ---------------------------------------------------------------- 8. infer: runners-up listed once each

def test_decode_runners_up_are_distinct_plans_and_not_the_best(tmp_path):
    """Qwen3-30B-A3B on H100 nodes, 1-token prompts, 2 outputs: vLLM's running cap (1,024 per data-parallel
    replica) clips several per-chip batches of the search grid to the same batch, so `infer --json` listed
    {chips 16, tp 1, pp 2, dp 8, ep 8, batch 512 per chip} three times among four runners-up, same numbers each."""
    from conftest import infer_json

    d = infer_json(tmp_path, {"name": "q", "model": "qwen3-30b-a3b", "system": "dgx-h100",
                              "serving": {"input_len": 1, "output_len": 2, "precision": "fp8", "kv_precision": "fp8"},
                              "latency": {"tpot_ms": 30}})
    dec = d["decode"]
    key = lambda r: (r["chips"], r["tp"], r["pp"], r["ep"], r["batch_per_chip"])   # noqa: E731
    rows = [key(r) for r in dec["runners_up"]]
    assert len(rows) == len(set(rows)), dec["runners_up"]
    best = {**dec["plan"], "batch_per_chip": dec["batch_per_chip"]}
    assert key(best) not in rows


# ---------------------------------------------------------------- 9. infer: speculative decoding without MTP modules

def _decode_spec(model: str) -> dict:
    return {"name": "s", "model": model, "system": "dgx-b200", "chips": 8,
            "serving": {"phase": "decode", "input_len": 2048, "output_len": 512, "batch": 256, "precision": "fp8",
                        "mtp": {"draft_tokens": 3, "acceptance": 0.8}}}


def test_drafts_of_a_model_without_mtp_modules_are_said_to_be_priced_free(tmp_path):
    """Llama 3.1 8B has no MTP modules (config.json: no num_nextn_predict_layers), so the engine prices the
    verification of 1 + 3 tokens a sequence and no drafting: Llama 3.1 8B on one H100 at batch 32 went from 18.7
    to 6.6 ms per output token (1 + 0.8 + 0.8^2 + 0.8^3 = 2.952 tokens a step of 19.4 ms) with no draft weights
    and no word that an EAGLE head or a draft model would cost its own passes. The answer now says so."""
    from conftest import infer_json

    d = infer_json(tmp_path, _decode_spec("llama-3.1-8b"))
    assert "no MTP modules" in d.get("draft_note", ""), d.get("draft_note")


def test_drafts_of_a_model_with_mtp_modules_carry_no_such_note(tmp_path):
    """DeepSeek-V3's MTP module (num_nextn_predict_layers 1) is priced per draft token (inference/step.py)."""
    from conftest import infer_json

    assert "draft_note" not in infer_json(tmp_path, _decode_spec("deepseek-v3"))
