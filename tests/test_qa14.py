"""First-use quality pass, round 3: each test failed before its fix (see the commit that adds it)."""
from __future__ import annotations

import json

import pytest

from conftest import run_main, SMALL_RUN


def _write(tmp_path, text, name="run.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_report_scaling_batch_is_the_plans_batch():
    """The report's scaling table printed the stated batch (2M tokens / 4,096 = 488 sequences) beside a plan that
    runs another one. Hand derivation: 64 H100 at dp=64, micro-batch 1, need a multiple of 64 within 5% of 488:
    448 is -8.2%, 512 is +4.9% -> 512; 96 chips at dp=96: 480 (-1.6%)."""
    from trainsim.api import as_run
    from trainsim.report.collect import scaling
    run = as_run({"name": "s", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 64,
                  "training": {"tokens": "1T", "seq_len": 4096, "global_batch_tokens": "2M", "precision": "bf16"}})
    assert run.training.batch_seqs == 488
    rows = {r["chips"]: r for r in scaling(run, counts=[64, 96])}
    for n, want in ((64, 512), (96, 480)):
        assert rows[n]["plan"]["dp"] * rows[n]["plan"]["micro_batch"] in (64, 96)
        assert rows[n]["global_batch_seqs"] == want
        assert rows[n]["batch_adjusted"] is True
