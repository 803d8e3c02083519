"""QA pass 28: a sceptical user's run over the less-trodden paths (posttrain, infer, report, compare, the
explorer's API): each test fails without its fix and checks numbers derived by hand, not the code's own output."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import one_line, run_main

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
