"""The vocabulary-parallel embedding's all-reduce and the logits' all-gather of a tensor-parallel serving step.

vLLM (v0.17.1, NeMo RL v0.6.0's pin) splits the embedding and the output head over the tensor-parallel ranks:
``VocabParallelEmbedding.forward`` sums the ranks' slices with one all-reduce of ``tokens x hidden``, and
``LogitsProcessor._gather_logits`` all-gathers the ``sequences x vocab`` logits (``use_all_gather`` under the V1
engine). Both run once per forward pass, beside the two all-reduces of every layer
(:func:`trainsim.inference.step.vocab_comm_time`).

Hand derivation for a NeMo RL DeepSeek-V3 rollout server (vLLM TP32 over 4 DGX H100: 8 ranks per node, NVLink 450
GB/s at 0.80, 8 x 400 Gb/s InfiniBand per node at 0.85, NCCL's tuner tables of perf/collectives.py), 64 running
sequences:

* logits all-gather, 64 x 129,280 x 2 B = 16,547,840 B: NCCL's ring, 31 steps of which 3 cross nodes. The bytes of
  one pass leave each node through its 8 NICs: 31/32 x 16,547,840 / (8 x 50e9 x 0.85) = 47.149 us (NVLink:
  16,030,720 / 360e9 = 44.53 us, not the bound). LL128: 14 + 28 x 1.9 + 3 x 4.0 = 79.2 us + 47.149 / 0.92 = 51.249
  -> 130.45 us; Simple: 8.4 + 28 x 3.4 + 3 x 14 = 145.6 + 47.15 = 192.7 us; LL: its 20.4 GB/s ceiling across
  more than 2 nodes alone takes 16,030,720 / 20.4e9 = 786 us. NCCL runs LL128: 130.45 us.
* embedding all-reduce, 64 x 7,168 x 2 B = 917,504 B: NCCL's tree under LL128, 2 x (7 NVLink steps x 1.25 + log2(4)
  = 2 network steps x 8.5) = 51.5 us + base 14 = 65.5 us, bytes 2 x (31/32 x 917,504 / 340e9) x 32 / (0.92 x 31)
  = 5.867 us / (120 / 128) = 6.258 us: 71.76 us (ring LL128 144.4 us + bytes, tree LL 35.2 + 2 S / 20.4 GB/s = 125.2
  us, tree Simple 126.3 us) -- the same call as each layer's two all-reduces.

So 202.2 us per decode step at 64 running: 0.6% of the model's 32.9 ms step, ~0.2 s of a ~34 s rollout of pull
request 2779's colocated run (tests/test_rl_dsv3_split.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainsim.catalog import get_system
from trainsim.inference.serve import setup_for
from trainsim.inference.step import ServePlans, step_time, tp_all_reduce_time, vocab_comm_time
from trainsim.model.load import resolve_model

ROOT = Path(__file__).resolve().parents[1]
SEQS = 64.0
HIDDEN, VOCAB = 7168, 129_280


def _setup():
    return setup_for(resolve_model("deepseek-v3", ROOT, field="model"), get_system("dgx-h100"), "bf16")


def test_sizes_by_hand():
    assert SEQS * VOCAB * 2 == 16_547_840
    assert SEQS * HIDDEN * 2 == 917_504
    arch = resolve_model("deepseek-v3", ROOT, field="model")
    assert (arch.hidden, arch.vocab) == (HIDDEN, VOCAB)


def test_tp32_decode_step_by_hand():
    s = _setup()
    p = ServePlans(32, 32, 1, 1)
    got = float(np.ravel(vocab_comm_time(s, p, SEQS, SEQS))[0])
    assert got == pytest.approx(71.76e-6 + 130.45e-6, rel=2e-3)
    # the embedding's all-reduce is one call of the layers' size; the rest is the logits' all-gather
    one_ar = float(np.ravel(tp_all_reduce_time(s, SEQS * HIDDEN * 2.0, np.array([32.0])))[0])
    assert one_ar == pytest.approx(71.76e-6, rel=2e-3)
    assert got - one_ar == pytest.approx(130.45e-6, rel=2e-3)


def test_decode_step_carries_it_once():
    s = _setup()
    p = ServePlans(32, 32, 1, 1)
    _, br = step_time(s, p, SEQS, 500.0, "decode")
    assert float(np.ravel(br["vocab_comm"])[0]) == pytest.approx(202.2e-6, rel=2e-3)


def test_one_rank_makes_no_call():
    s = _setup()
    p = ServePlans(8, 1, 1, 8)      # tp 1 (experts over ep 8): every rank holds the whole vocabulary
    assert float(np.ravel(vocab_comm_time(s, p, SEQS, SEQS))[0]) == 0.0
