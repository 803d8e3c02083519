"""Two measured runs of SageMaker model parallelism v1's sharded data parallelism (DeepSpeed ZeRO-3 in MiCS groups)
on AWS p4d.24xlarge (A100 40GB, first-generation EFA): BloombergGPT 50B on 512 GPUs (validation/runs/
bloomberggpt-50b-512.yaml) and the AWS blog's GPT-2 30B on 256 GPUs (validation/runs/smp-sdp-gpt2-30b-256.yaml),
against hand derivations written here and the published throughputs (issue 14: BloombergGPT, the outlier)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from trainsim.api import parse_run
from trainsim.model.counts import count
from trainsim.plan_estimate import context, estimate_complete

ROOT = Path(__file__).resolve().parents[1]
GPT2 = ROOT / "validation" / "runs" / "smp-sdp-gpt2-30b-256.yaml"
BB = ROOT / "validation" / "runs" / "bloomberggpt-50b-512.yaml"

# GPT-2 30B as the notebook builds it (aws/amazon-sagemaker-examples 713fff33d, train_gpt_simple.py GPT2Config:
# hidden 7168, 48 layers, n_inner None = 4h, vocab_size default 50264, n_positions 2048, tied lm_head), counted as
# its compute_num_params does (every parameter once): wte + wpe + 48 x (12 h^2 weights + 9 h linear biases + 4 h
# layer norms) + 2 h final norm
H = 7168
N_GPT2 = 50264 * H + 2048 * H + 48 * (12 * H * H + 13 * H) + 2 * H
# BloombergGPT's parameter table (arXiv 2303.17564 Appendix A.5): 50,558,868,480
N_BB = 50_558_868_480


def _load(path: Path, fixed: bool = False):
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    if fixed:   # BloombergGPT's file leaves tp / pp to the profile and lists two schedules: the plan it resolves to
        spec["plan"].update(tp=1, pp=1, cp=1, zero=3, recompute="full", micro_batch=4, schedule="1f1b")
    return parse_run(spec)


def _tokens_per_s(run, **calib) -> float:
    c = context(run).calib
    return float(estimate_complete(run, run.plan, calib=c.with_(**calib) if calib else c).tokens_per_s_per_chip)


def test_both_report_the_library_8n_tflops():
    """SMP's example script prints TFLOPS/GPU = 8 x num_params x tokens_per_gpu / step_time (train_gpt_simple.py
    line 361 at 713fff33d). The blog's 141 TFLOP/s for GPT-2 30B is then 141e12 / (8 x 29,974,468,608) = 588.0
    tokens/s per GPU, the run file's figure; BloombergGPT's 102 TFLOP/s is the same formula at 2,048 x 2,048 tokens
    per 32.5 s step on 512 GPUs: 8 x 50,558,868,480 x 252.06 = 101.95e12."""
    assert N_GPT2 == 29_974_468_608
    assert 141e12 / (8 * N_GPT2) == pytest.approx(588.0, abs=0.05)
    assert _load(GPT2).reported.tokens_per_s_per_chip == 588
    bb_tokens = 2048 * 2048 / 32.5 / 512
    assert 8 * N_BB * bb_tokens == pytest.approx(102e12, rel=0.005)
    # trainsim counts the GPT-2's weights and norms, not its 9 h linear biases a layer: 3.1M of 30B
    total = count(_load(GPT2).arch).total_params
    assert total == pytest.approx(N_GPT2, rel=2e-4)
    assert N_GPT2 - total == 48 * 9 * H


def test_the_runs_share_the_traffic_to_compute_ratio():
    """Per GPU and micro-batch ZeRO-3 moves 2 gathers + 1 reduce-scatter of the BF16 model (6 N bytes over the
    sharding group), and the compute is ~8 N x tokens with full recompute: the ratio depends only on the tokens a
    GPU holds per micro-batch, 4 x 2,048 = 8,192 in both runs (BloombergGPT: 2,048 sequences / 512 GPUs in one
    micro-batch; GPT-2 30B: the notebook's train_batch_size 4). So an overlap (or its lack) that BloombergGPT needs
    acts alike on the GPT-2 30B."""
    g, b = _load(GPT2), _load(BB, fixed=True)
    for run in (g, b):
        assert run.plan.micro_batch * run.training.seq_len == 8192
        assert run.training.batch_seqs == run.plan.micro_batch * run.chips     # one micro-batch a step
    # bytes per FLOP: 6 N / (8 N x 8192), the same for both whatever N
    ratio = [6 * n / (8 * n * 8192) for n in (N_GPT2, N_BB)]
    assert ratio[0] == pytest.approx(ratio[1], rel=1e-12)


def test_one_overlap_cannot_fit_both_smp_runs():
    """The competing explanation of BloombergGPT's gap (issue 14: predicted 25.4 s, with its FP32 output head,
    against the measured 32.5 s a step): ZeRO-3 gathers serialised with the compute. With the profile's overlap
    (constants.yaml dp_overlap 0.8) the GPT-2 30B is predicted 564 tokens/s against 588 measured (-4%) and
    BloombergGPT 322 against 252 (+28%); with none hidden (dp_overlap 0) BloombergGPT gives 241 (-5%) but the GPT-2
    30B 417 (-29%). Scanning the overlap from 0 to 0.8, no value brings both within 10% (0.6: -12% / +18%): the same
    library, chip, fabric and traffic-to-compute ratio (test above) rule serialisation out as the stack's physics;
    the GPT-2 30B run measures the overlap the profile prices."""
    g, b = _load(GPT2), _load(BB, fixed=True)
    rg, rb = g.reported.tokens_per_s_per_chip, b.reported.tokens_per_s_per_chip
    err = {ov: (_tokens_per_s(g, dp_overlap=ov) / rg - 1.0, _tokens_per_s(b, dp_overlap=ov) / rb - 1.0)
           for ov in np.round(np.arange(0.0, 0.81, 0.1), 1)}
    eg, eb = err[0.8]
    assert abs(eg) < 0.10 and eb > 0.20            # the profile's overlap: GPT-2 fits, BloombergGPT does not
    eg0, eb0 = err[0.0]
    assert abs(eb0) < 0.05 and eg0 < -0.20         # serialised: BloombergGPT fits, GPT-2 does not
    assert not any(abs(a) < 0.10 and abs(c) < 0.10 for a, c in err.values())


@pytest.mark.xfail(strict=True, reason="issue 14, partly unexplained: BloombergGPT is predicted 322 tokens/s in-sample "
                   "(25.4 s a step: 23.2 s of compute, 2.3 s of it the FP32 output head the paper states (App. "
                   "C.2; tests/test_fp32_head.py), + 2.2 s of exposed ZeRO-3 traffic) against 252 (32.5 s). "
                   "Ruled out as SMP-on-p4d physics by smp-sdp-gpt2-30b-256 (same library, chip, EFA and "
                   "traffic-to-compute ratio, predicted -4%): gathers serialised with compute (BloombergGPT 31.8 s "
                   "but GPT-2 30B -29%), an EFA rate near 0.2 of line rate (34.2 s; GPT-2 30B -33%), a third "
                   "gather per micro-batch (23.9 s overlapped, 35.3 s serialised; GPT-2 30B -7% / -36%), "
                   "each before the FP32 head was priced. Also checked, too small: the FP32 cross entropy over the "
                   "131k logits (~0.03 s), ALiBi's bias and the unfused softmax bytes (priced). What differs is "
                   "BloombergGPT's own model code (BLOOM-style, ALiBi, 131k vocabulary), not stated")
def test_bloomberggpt_within_20_percent():
    b = _load(BB, fixed=True)
    assert _tokens_per_s(b) == pytest.approx(b.reported.tokens_per_s_per_chip, rel=0.20)
