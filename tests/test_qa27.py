"""qa27: defects a demanding user hits. Each regression test failed before its fix (the defect named in its
docstring); expected values are hand derivations written here, never the engine's own output."""
from __future__ import annotations

import pathlib

import pytest

from trainsim.errors import TrainsimError
from trainsim.model.load import resolve_model
from trainsim.parallel.enumerate import enumerate_parents
from trainsim.report.scenario_render import fmt_key, key_label
from trainsim.spec import PlanSpec

PKG = pathlib.Path(__file__).resolve().parents[1] / "trainsim"


def _one_line(code: int, err: str, want: int) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == want and len(lines) == 1, (code, err[-600:])
    return lines[0]


# ---------------------------------------------------------------- 1. one rule for zero 0 beside a sharding group

def test_zero_0_beside_a_sharding_group_is_refused_in_one_place():
    """The rule 'training.zero_shard_group beside zero 0 only is refused' was written twice (review finding):
    spec.check_shard_group and parallel/enumerate.enumerate_parents, each with its own message. It now lives in
    parallel/validity.sharding_zeros: its message text is in one source file only, and the search path refuses a
    plan fixed at zero 0 with that same one-line error, naming the field."""
    owners = sorted(str(f.relative_to(PKG)) for f in PKG.rglob("*.py")
                    if "or leave zero_shard_group out" in f.read_text(encoding="utf-8"))
    assert owners == ["parallel/validity.py"], owners
    arch = resolve_model("llama-3.1-8b")
    with pytest.raises(TrainsimError) as e:
        enumerate_parents(arch, 16, 4096, 64, PlanSpec(zero=0), zero_shard_group=8)
    msg = str(e.value)
    assert "training.zero_shard_group" in msg and "nothing sharded" in msg and "\n" not in msg, msg
    assert "zero 0 only" in msg, msg


# ---------------------------------------------------------------- 2. a number's decimal point inside a result key

def test_scenario_labels_keep_a_decimal_point_inside_a_key():
    """S4's numbers table printed 'ratio to reference / LongCat-2 / 0 class (S2)', 'Llama 3 / 1 405B', 'Gemini 1 /
    0 Ultra' and 'tokens vs scale out bandwidth / x0 / 5': the flattened key (parts joined by '.') was split at
    every dot, the decimal points of the reference names and of the factor 0.5 included."""
    assert key_label("ratio_to_reference.LongCat-2.0 class (S2)") == "ratio to reference / LongCat-2.0 class (S2)"
    assert key_label("ratio_to_reference.Llama 3.1 405B") == "ratio to reference / Llama 3.1 405B"
    assert key_label("tokens_vs_scale_out_bandwidth.x0.5") == "tokens vs scale out bandwidth / x0.5"
    assert key_label("reference.Gemini 1.0 Ultra") == "reference / Gemini 1.0 Ultra"
    # the ordinary joins still split: cost.rental_usd -> cost / rental (USD)
    assert key_label("cost.rental_usd") == "cost / rental (USD)"
    assert key_label("by_failure_handling.whole_job_restart.goodput") == \
        "by failure handling / whole job restart / goodput"
    # and the value is formatted by its own last part: a goodput as a percentage, 0.562 -> 56.2%
    assert fmt_key("by_failure_handling.x0.5.goodput", 0.562) == "56.2%"
