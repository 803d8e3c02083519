"""Which features of a validation run predict its leave-one-out error? (issue 14, a look across all runs)

The calibration fits a GEMM efficiency per (chip, precision, framework) group (:mod:`trainsim.validate.calibrate`),
which absorbs each group's mean error; a mechanism the engine misses shows up as a pattern WITHIN groups. This
module joins each run's leave-one-out error, e = log(predicted / reported) tokens/s per chip (positive: predicted
too fast), read from a ``scripts/calibrate.py --dry-run`` table, with features of the run and of the plan its
prediction takes (:meth:`CalRun.chosen`), evaluated under the stored calibration:

* ``share_<cause>``: the share of the step the engine gives each cause of its breakdown (perf/step.py ``evaluate``);
* ``log2_<x>``: log2 of the plan's tp, pp, vpp, cp, ep, dp and micro-batch, of the tokens a tp group holds per
  micro-batch (seq x micro_batch / cp), the micro-batches per step, the tokens per chip per step
  (global batch x seq / chips), the chips, hidden size, sequence length and total parameters;
* ``tp_cp_cross``: 1 where tp x cp exceeds the scale-up domain; ``moe``, ``fp8``: 1 for MoE / FP8 runs.

Association: Spearman's rank correlation of feature and error after subtracting each group's mean of both
(:func:`within_rho`; groups of at least MIN_GROUP runs in which the feature varies), with the count of groups in
which it is positive or negative on its own, and error by bins of a feature (:func:`bin_table`).
``scripts/residuals.py`` prints both.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from ..estimate import context
from ..model.counts import count
from ..perf.step import evaluate
from .calibrate import CalRun

#: a group is used when it holds at least this many runs (the calibration's MIN_RUNS)
MIN_GROUP = 3

#: one row of the calibrate.py --dry-run table: name, reported, predicted, signed error in %, note
ROW_RE = re.compile(r"^\s+(\S+)\s+([0-9.]+)\s+([0-9.]+)\s+([+-]?[0-9.]+)%")


def parse_loo_table(text: str) -> dict[str, tuple[float, float]]:
    """{run name: (reported, predicted)} from the per-run lines of a ``scripts/calibrate.py --dry-run`` output;
    other lines are skipped."""
    out = {}
    for line in text.splitlines():
        m = ROW_RE.match(line)
        if m:
            out[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return out


@dataclass
class Row:
    """One run: its calibration group, leave-one-out error and features."""

    name: str
    group: tuple[str, str, str]   # (chip family, precision, framework)
    error: float                  # log(predicted / reported)
    features: dict[str, float]


def run_features(r: CalRun) -> dict[str, float]:
    """The features of the module docstring for one calibration run."""
    run = r.run
    res = evaluate(context(run), r.plans, detail=True)
    i = r.chosen(res)
    step = float(res.step_time_s[i])
    p = r.plans.row(i)
    tr, a = run.training, run.arch
    f: dict[str, float] = {f"share_{k}": float(np.asarray(v).reshape(-1)[i] if np.ndim(v) else v) / step
                           for k, v in res.breakdown.items()}
    deg = {k: p[k] for k in ("tp", "pp", "vpp", "cp", "ep", "dp", "micro_batch")}
    f.update({f"log2_{k}": math.log2(max(v, 1)) for k, v in deg.items()})
    f["log2_tokens_microbatch"] = math.log2(tr.seq_len * p["micro_batch"] / p["cp"])
    f["log2_microbatches"] = math.log2(float(res.microbatches[i]))
    f["log2_tokens_chip_step"] = math.log2(tr.batch_seqs * tr.seq_len / run.chips)
    f["log2_chips"] = math.log2(run.chips)
    f["log2_hidden"] = math.log2(a.hidden)
    f["log2_seq"] = math.log2(tr.seq_len)
    f["log2_params"] = math.log2(count(a, tr.seq_len).total_params)
    f["tp_cp_cross"] = float(p["tp"] * p["cp"] > run.system.levels[0].size)
    f["moe"] = float(r.moe)
    f["fp8"] = float(r.precision == "fp8")
    return f


def build_rows(runs: Iterable[CalRun], table: dict[str, tuple[float, float]]) -> list[Row]:
    """One :class:`Row` per run of ``runs`` that ``table`` holds."""
    return [Row(r.name, (r.family, r.precision, r.framework), math.log(table[r.name][1] / table[r.name][0]),
                run_features(r)) for r in runs if r.name in table]


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Spearman's rank correlation (ties take their mean rank); nan where either side is constant."""
    rx, ry = _ranks(np.asarray(list(x), float)), _ranks(np.asarray(list(y), float))
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(a: np.ndarray) -> np.ndarray:
    order = a.argsort(kind="stable")
    rk = np.empty(len(a))
    rk[order] = np.arange(len(a), dtype=float)
    for v in np.unique(a):
        rk[a == v] = rk[a == v].mean()
    return rk


@dataclass
class Association:
    """A feature's association with the error: pooled within-group Spearman, runs used, groups with a per-group
    rho above +0.2 / below -0.2, and the raw Spearman over all the rows."""

    feature: str
    within: float
    runs: int
    groups_pos: int
    groups_neg: int
    raw: float


def _groups(rows: list[Row]) -> dict[tuple[str, str, str], list[Row]]:
    g: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        g.setdefault(r.group, []).append(r)
    return g


def within_rho(rows: list[Row], feature: str) -> Association:
    """Spearman of ``feature`` and the error over the runs of groups of at least MIN_GROUP runs in which the
    feature varies, both taken relative to their group's mean."""
    xs: list[float] = []
    ys: list[float] = []
    pos = neg = 0
    for rs in _groups(rows).values():
        x = np.array([r.features[feature] for r in rs])
        y = np.array([r.error for r in rs])
        if len(rs) < MIN_GROUP or x.std() == 0:
            continue
        xs += list(x - x.mean())
        ys += list(y - y.mean())
        c = spearman(x, y)
        pos, neg = pos + (c > 0.2), neg + (c < -0.2)
    raw = spearman([r.features[feature] for r in rows], [r.error for r in rows])
    return Association(feature, spearman(xs, ys) if len(xs) >= 2 else float("nan"), len(xs), pos, neg, raw)


def rank_features(rows: list[Row]) -> list[Association]:
    """:func:`within_rho` of every feature, strongest |within| first (nan last)."""
    feats = sorted(rows[0].features) if rows else []
    out = [within_rho(rows, f) for f in feats]
    return sorted(out, key=lambda a: -abs(a.within) if not math.isnan(a.within) else 1.0)


@dataclass
class Bin:
    """Runs with ``lo <= feature < hi``: count, mean error, mean error relative to the group mean (groups of at
    least MIN_GROUP runs only; nan if none), median |error|."""

    lo: float
    hi: float
    runs: int
    mean_error: float
    mean_in_group: float
    median_abs: float


def bin_table(rows: list[Row], feature: str, edges: list[float]) -> list[Bin]:
    """Error by bins of ``feature`` cut at ``edges`` (ascending), empty bins left out."""
    dev: dict[str, float] = {}
    for rs in _groups(rows).values():
        if len(rs) >= MIN_GROUP:
            mu = float(np.mean([r.error for r in rs]))
            dev.update({r.name: r.error - mu for r in rs})
    cuts = [-math.inf, *edges, math.inf]
    out = []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        b = [r for r in rows if lo <= r.features[feature] < hi]
        if not b:
            continue
        d = [dev[r.name] for r in b if r.name in dev]
        out.append(Bin(lo, hi, len(b), float(np.mean([r.error for r in b])),
                       float(np.mean(d)) if d else float("nan"), float(np.median([abs(r.error) for r in b]))))
    return out


def selector(which: str) -> Callable[[Row], bool]:
    """Rows to keep: 'all', 'dense' or 'moe'."""
    return {"all": lambda r: True, "dense": lambda r: not r.features["moe"],
            "moe": lambda r: bool(r.features["moe"])}[which]


def format_rank(assocs: list[Association]) -> str:
    """The ranking as text, one feature per line."""
    lines = [f"{'feature':34s} {'within rho':>10s} {'runs':>5s} {'groups +/-':>10s} {'raw rho':>8s}"]
    lines += [f"{a.feature:34s} {a.within:+10.2f} {a.runs:5d} {a.groups_pos:>5d}/{a.groups_neg:<4d} {a.raw:+8.2f}"
              for a in assocs]
    return "\n".join(lines)


def format_bins(feature: str, bins: list[Bin]) -> str:
    """A bin table as text."""
    lines = [f"{feature}: bin, runs, mean error, mean error - group mean, median |error| (errors as log ratios)"]
    lines += [f"  [{b.lo:g}, {b.hi:g})  {b.runs:4d}  {b.mean_error:+.3f}  {b.mean_in_group:+.3f}  {b.median_abs:.3f}"
              for b in bins]
    return "\n".join(lines)


def features_of(rows: list[Row]) -> set[str]:
    """The feature names the rows carry."""
    return set(rows[0].features) if rows else set()


__all__ = ["Association", "Bin", "Row", "bin_table", "build_rows", "format_bins", "format_rank", "parse_loo_table",
           "rank_features", "run_features", "selector", "spearman", "within_rho"]

