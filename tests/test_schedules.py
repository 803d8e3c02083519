"""The pipeline-schedule registry (trainsim/parallel/schedules.py): hand-derived bubbles and rules, and that no
other module spells a schedule name in code or compares a schedule code to a bare integer."""
from __future__ import annotations

import ast
import pathlib
import re

import numpy as np
import pytest

from trainsim import frameworks
from trainsim.parallel import schedules as S
from trainsim.parallel.plan import Plans
from trainsim.parallel.validity import check

PKG = pathlib.Path(__file__).resolve().parents[1] / "trainsim"


def _codes(*names):
    return np.array([S.code(n) for n in names])


def test_bubbles_by_hand():
    # p = 8 stages, v = 2, t = 3 s per micro-batch (forward + backward)
    # 1F1B (p-1) t = 21; interleaved (p-1) t / v = 10.5; ZB-H1 (p-1) t / 3 = 7; DualPipe (p/2-1) 2t/3 = 3 x 2 = 6
    sched = _codes("1f1b", "interleaved", "zero-bubble", "dualpipe")
    pp, vpp = np.full(4, 8), np.array([1, 2, 1, 1])
    b = S.bubble_time(sched, pp, vpp, np.full(4, 3.0))
    assert b.tolist() == pytest.approx([21.0, 10.5, 7.0, 6.0])
    assert S.bubble_time(sched, np.ones(4, dtype=np.int64), vpp, np.full(4, 3.0)).tolist() == [0.0] * 4


def test_in_flight_and_copies_by_hand():
    sched = _codes("1f1b", "zero-bubble", "dualpipe")
    pp, vpp = np.full(3, 4), np.ones(3, dtype=np.int64)
    # 1F1B and ZB-H1: rank 0 holds min(m, p) = 4; DualPipe: p + 1 = 5 (DeepSeek-V3 Table 2) with m >= p
    assert S.microbatches_in_flight(sched, pp, vpp, 16.0, 0).tolist() == pytest.approx([4.0, 4.0, 5.0])
    assert S.param_copies(_codes("1f1b", "interleaved", "zero-bubble", "dualpipe")).tolist() == [1, 1, 1, 2]


def test_rule_masks():
    assert S.even_pp_min_m(_codes("dualpipe")).tolist() == [True]
    assert S.needs_pp(_codes("1f1b", "interleaved", "zero-bubble", "dualpipe")).tolist() == [False, False, True,
                                                                                             True]
    assert S.virtual_stages(_codes("1f1b", "interleaved")).tolist() == [False, True]
    assert S.default_name(1) == "1f1b" and S.default_name(4) == "interleaved"


def test_check_uses_registry(gpt3):
    p = Plans.from_columns(tp=1, pp=np.array([3, 1, 2, 4]), vpp=np.array([1, 1, 1, 1]), ep=1, etp=1, cp=1,
                           dp=np.array([1, 4, 1, 1]), zero=0, recompute=0, mb=1,
                           schedule=_codes("dualpipe", "zero-bubble", "interleaved", "dualpipe"), node_limit=0)
    codes = check(p, gpt3, chips=4, seq_len=1024, batch_seqs=16)
    # odd pp for DualPipe (11); pp = 1 for zero-bubble (14); interleaved with vpp = 1 (9); pp = 4 and m = 16 valid
    assert codes.tolist() == [11, 14, 9, 0]


def test_frameworks_offering_reads_yaml():
    fws = frameworks.frameworks()
    for name in S.SCHEDULES:
        assert frameworks.offering(name) == [f for f, p in fws.items() if name in p["schedules"]]
    assert "megatron-bridge-2026" not in frameworks.offering("dualpipe")


_NAME = re.compile(r"^(%s)$" % "|".join(re.escape(n) for n in S.SCHEDULES))


def test_no_other_module_spells_a_schedule():
    """Outside the registry no string constant in code is a schedule name, and no ``.schedule`` (or
    ``schedule``) is compared with an integer literal."""
    bad = []
    for f in PKG.rglob("*.py"):
        if f.name == "schedules.py" and f.parent.name == "parallel":
            continue
        tree = ast.parse(f.read_text(encoding="utf-8"))
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for n in ast.walk(tree):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs and _NAME.match(n.value):
                bad.append(f"{f.relative_to(PKG)}:{n.lineno} spells {n.value!r}")
            if isinstance(n, ast.Compare):
                sides = [n.left, *n.comparators]
                named = any((isinstance(s, ast.Attribute) and s.attr == "schedule")
                            or (isinstance(s, ast.Name) and s.id == "schedule") for s in sides)
                literal = any(isinstance(s, ast.Constant) and isinstance(s.value, int) for s in sides)
                if named and literal:
                    bad.append(f"{f.relative_to(PKG)}:{n.lineno} compares a schedule code to an integer")
    assert not bad, bad


def test_dp_sync_window_interleaved_chunks_sync_early():
    # Megatron-Core's interleaved schedule syncs each model chunk's gradients after its last micro-batch's backward;
    # the chunks finish min(pp, m) chunk-backwards (each 1/v of the stage's backward) apart. pp 4, v 12, m 8: the
    # first chunk's sync starts 11 x 4 chunk-backwards before the end: span (1 + 44) / 12 = 3.75 backwards.
    import numpy as np
    from trainsim.parallel.schedules import code, dp_sync_window
    il, f1 = code("interleaved"), code("1f1b")
    got = dp_sync_window(np.array([il, il, f1, il]), np.array([4, 4, 4, 1]), np.array([12, 12, 1, 12]),
                         np.array([8.0, 2.0, 8.0, 8.0]))
    assert got.tolist() == pytest.approx([45 / 12, (1 + 11 * 2) / 12, 1.0, 1.0])
