"""Vocabulary padding (profile key ``vocab_divisible_by``, run field ``training.vocab_divisible_by``): Megatron-LM
pads the vocabulary to a multiple of --make-vocab-size-divisible-by (128) x tp, and every per-chip cost of the
embedding and output layer reads the padded rows (perf/context.py StepContext.vocab_per_tp). Figures by hand."""
from __future__ import annotations

from dataclasses import replace as dreplace
from pathlib import Path

import pytest

from trainsim.estimate import context
from trainsim.frameworks import frameworks, runtime_settings
from trainsim.perf.compute import head_gemm_fwd, loss_time
from trainsim.perf.memory import _extras
from trainsim.spec import load_run
from tests.conftest import one_plan

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"
LLAMA3_VOCAB = 128_256


def _llama3_ctx(d: int):
    """A Llama 3.1 8B run (vocab 128,256, hidden 4,096) with vocab_divisible_by ``d``."""
    run = load_run(RUNS / "mindspeed-ascend-llama31-8b-8.yaml")
    assert run.arch.vocab == LLAMA3_VOCAB and run.arch.hidden == 4096
    return dreplace(context(run), vocab_divisible_by=d)


@pytest.mark.parametrize("d, tp, rows", [
    (128, 8, 16_128),   # 128,256 / (128 x 8) = 125.25 -> 126 x 1,024 = 129,024 in all, / 8
    (128, 4, 32_128),   # 128,256 / 512 = 250.5 -> 251 x 512 = 128,512, / 4
    (128, 2, 64_128),   # 128,256 / 256 = 501 exactly: no padding
    (128, 1, 128_256),  # 128,256 / 128 = 1,002 exactly
    (1, 8, 16_032),     # no padding: 128,256 / 8
    (1, 3, 42_752),     # ceil(128,256 / 3) = 42,752 (42,752 x 3 = 128,256)
])
def test_padded_rows_per_chip_by_hand(d, tp, rows):
    """Megatron-LM megatron/core/tokenizers/utils/build_tokenizer.py vocab_size_with_padding at d98e8a64dd:
    after = ceil(V / (make_vocab_size_divisible_by x tp)) x that multiple; each tp rank holds after / tp rows."""
    assert float(_llama3_ctx(d).vocab_per_tp(one_plan(tp=tp))[0]) == rows


def test_embedding_and_head_parameters_are_the_padded_rows():
    """At tp 8, d 128: the input embedding on one chip is 16,128 x 4,096 = 66,060,288 parameters (not 16,032 x 4,096
    = 65,667,072), the untied head on the last stage the same, plus the final norm."""
    ctx = _llama3_ctx(128)
    emb, last, _ = _extras(ctx, one_plan(tp=8, pp=2))
    assert float(emb[0]) == 16_128 * 4096 == 66_060_288
    assert float(last[0]) == 16_128 * 4096 + ctx.arch.final_params


def test_head_gemm_and_loss_scale_with_padded_rows():
    """The loss is memory-bound over tokens x rows: its time grows by 16,128 / 16,032 = 1.005988 with padding at
    tp 8; the head GEMM's N is the padded rows, so its time cannot shrink."""
    p, tokens = one_plan(tp=8), 8192.0
    padded, plain = _llama3_ctx(128), _llama3_ctx(1)
    f1, b1 = loss_time(padded, p, tokens)
    f0, b0 = loss_time(plain, p, tokens)
    assert float(f1[0]) / float(f0[0]) == pytest.approx(16_128 / 16_032, rel=1e-12)
    assert float(b1[0]) / float(b0[0]) == pytest.approx(16_128 / 16_032, rel=1e-12)
    assert float(head_gemm_fwd(padded, p, tokens)[0]) >= float(head_gemm_fwd(plain, p, tokens)[0])


@pytest.mark.parametrize("fw, d", [
    ("megatron-lm-2021", 128), ("megatron-lm-2023", 128), ("megatron-core-2024", 128), ("nemo-2025", 128),
    ("nemo-2024", 128), ("primus-megatron-2025", 128), ("gpt-neox", 128), ("deepspeed-megatron", 128),
    ("megatron-bridge-2025", 1), ("megatron-bridge-2026", 1), ("torchtitan-2024", 1), ("mindspeed-2024", 1),
    ("nanotron-2025", 1),
])
def test_profile_padding(fw, d):
    """Megatron-LM / NeMo / Primus / GPT-NeoX / Megatron-DeepSpeed pad to 128 x tp (their
    _vocab_size_with_padding, default 128); Megatron-Bridge's GPTModelProvider.should_pad_vocab defaults to False,
    torchtitan builds nn.Embedding(tokenizer.n_words), MindSpeed-LLM's scripts pass
    --make-vocab-size-divisible-by 1, nanotron's make_vocab_size_divisible_by defaults to 1."""
    class _Unstated:
        pass
    assert runtime_settings(_Unstated(), fw)["vocab_divisible_by"] == d


def test_every_profile_states_padding_with_a_source():
    for fw, prof in frameworks().items():
        assert int(prof["vocab_divisible_by"]) >= 1, fw
        assert len(str(prof.get("vocab_divisible_by_source", ""))) > 40, fw


def test_run_statement_wins_over_profile():
    """The Megatron-Bridge Llama performance configs set should_pad_vocab = True (v0.2.0
    scripts/performance/configs/llama31/llama31_llm_pretrain.py line 43): their run specs state 128 over the
    profile's 1."""
    run = load_run(RUNS / "megatron-bridge-2511-llama31-405b-h100-1024-fp8cs-gbs512.yaml")
    assert run.training.vocab_divisible_by == 128
    assert context(run).vocab_divisible_by == 128
    assert float(context(run).vocab_per_tp(one_plan(tp=8))[0]) == 16_128
    other = load_run(RUNS / "megatron-bridge-2511-qwen3-30b-a3b-b200-8-fp8mx-mbs1.yaml")
    assert context(other).vocab_divisible_by == 1
