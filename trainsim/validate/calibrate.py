"""Honest calibration: fit the engine's few constants on the calibration runs, report leave-one-out errors.

Fitted parameters (everything else keeps its documented default in :class:`~trainsim.perf.calibration.Calib`):

* per chip family with at least MIN_RUNS runs: ``gemm_eff``, the fraction of the dense peak a large GEMM
  reaches; the ``default`` entry holds one ``gemm_eff`` pooled over all runs, which families with fewer runs use
  (a constant is never fitted to one or two runs);
* shared by all families: ``gemm_d0``, the GEMM half-saturation length (tile/wave quantisation).

Loss: the sum over runs of |log(predicted / reported)| tokens/s per chip (L1 on log errors: a median fit, so a
run the physics cannot explain does not drag the constants; it stays in the table with its error). Each run's
prediction is the fastest plan that fits within the fields its source states (the same search as ``estimate``).

Leave-one-out: for every run, refit with that run removed and predict it; those are the errors the README shows.
A family with a single run cannot be fitted without it: its held-out prediction uses the default constants.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TrainsimError
from ..parallel.enumerate import enumerate_plans
from ..perf.calibration import Calib
from ..perf.step import evaluate
from ..spec import Run, load_run
from .reference import steady_reference
from .runner import expand_paths

D0_GRID = (0.0, 32.0, 64.0, 128.0, 256.0)
MIN_RUNS = 3
EFF_BOUNDS = (0.35, 0.98)


@dataclass
class CalRun:
    """A calibration run prepared for fast repeated evaluation (plans enumerated once)."""

    name: str
    run: Run
    family: str
    reported: float
    plans: object

    def predict(self, calib: Calib) -> float:
        from ..estimate import context

        res = evaluate(context(self.run, calib), self.plans, detail=False)
        mem = res.memory["total"]
        fits = mem <= self.run.system.chip.hbm_bytes
        if not fits.any():
            # the rule of runner._estimate: the fastest plan among those needing the least memory
            fits = mem <= mem.min() * (1.0 + 1e-9)
        return float(res.tokens_per_s_per_chip[fits].max())


def prepare(paths=None) -> list[CalRun]:
    out = []
    for f in expand_paths(paths):
        try:
            run = load_run(f)
            ref = steady_reference(run)
        except TrainsimError:
            continue
        if ref is None:
            continue
        plans, _ = enumerate_plans(run.arch, run.chips, run.training.seq_len, run.training.batch_seqs, run.plan)
        if len(plans) == 0:
            continue
        out.append(CalRun(f.stem, run, run.system.chip.family, ref.value, plans))
    return out


def _loss(runs: list[CalRun], calib: Calib) -> float:
    return sum(abs(math.log(r.predict(calib) / r.reported)) for r in runs)


def _golden(fn, lo: float, hi: float, tol: float = 0.004) -> float:
    """Minimise a unimodal function of one variable on [lo, hi] (golden-section search)."""
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = fn(c), fn(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = fn(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = fn(d)
    return (a + b) / 2.0


@dataclass
class Fit:
    d0: float
    eff: dict[str, float]
    pooled_eff: float
    loss: float

    def calib(self, family: str, base: Calib | None = None) -> Calib:
        base = base or Calib()
        return base.with_(gemm_d0=self.d0, gemm_eff=self.eff.get(family, self.pooled_eff))


def fit(runs: list[CalRun], d0_grid=D0_GRID, base: Calib | None = None) -> Fit:
    """For each d0 of the grid: a pooled gemm_eff over all runs, and per-family gemm_eff (golden section) for
    families with MIN_RUNS runs or more; keep the d0 with the least total loss."""
    base = base or Calib()
    fams = sorted({r.family for r in runs})
    best: Fit | None = None
    for d0 in d0_grid:
        pooled = _golden(lambda x: _loss(runs, base.with_(gemm_d0=d0, gemm_eff=x)), *EFF_BOUNDS)
        eff, total = {}, 0.0
        for fam in fams:
            fr = [r for r in runs if r.family == fam]
            if len(fr) >= MIN_RUNS:
                eff[fam] = _golden(lambda x: _loss(fr, base.with_(gemm_d0=d0, gemm_eff=x)), *EFF_BOUNDS)
            total += _loss(fr, base.with_(gemm_d0=d0, gemm_eff=eff.get(fam, pooled)))
        if best is None or total < best.loss:
            best = Fit(d0, eff, pooled, total)
    return best


@dataclass
class LooRow:
    name: str
    family: str
    reported: float
    predicted: float
    note: str = ""

    @property
    def error(self) -> float:
        return self.predicted / self.reported - 1.0


@dataclass
class LooResult:
    rows: list[LooRow] = field(default_factory=list)

    def summary(self, family: str | None = None) -> dict:
        errs = np.array([abs(r.error) for r in self.rows if family is None or r.family == family])
        sgn = np.array([r.error for r in self.rows if family is None or r.family == family])
        if not len(errs):
            return {}
        return {"runs": int(len(errs)), "median_abs_error": float(np.median(errs)),
                "max_abs_error": float(errs.max()), "bias": float(np.median(sgn))}


def leave_one_out(runs: list[CalRun], d0_grid=D0_GRID, base: Calib | None = None) -> LooResult:
    """Refit without each run, predict it (families below MIN_RUNS runs use the pooled fit)."""
    base = base or Calib()
    out = LooResult()
    for i, held in enumerate(runs):
        rest = runs[:i] + runs[i + 1:]
        f = fit(rest, d0_grid, base)
        note = ""
        if held.family not in f.eff:
            note = f"fewer than {MIN_RUNS} runs of its chip family: pooled gemm_eff of the other families' runs"
        out.rows.append(LooRow(held.name, held.family, held.reported, held.predict(f.calib(held.family, base)), note))
    return out


def calibration_yaml(full: Fit, loo: LooResult, runs: list[CalRun]) -> str:
    """The one calibration data file, with provenance and the held-out accuracy."""
    import yaml

    fams = sorted({r.family for r in runs})
    doc = {
        "default": {"gemm_d0": round(full.d0, 1), "gemm_eff": round(full.pooled_eff, 4),
                    "fitted_on": len(runs),
                    "note": "gemm_d0 and the pooled gemm_eff fitted on all calibration runs (scripts/calibrate.py); "
                            "families with fewer than 3 runs use this gemm_eff; other constants: Calib defaults"},
        "families": {fam: {"gemm_eff": round(full.eff[fam], 4),
                           "fitted_on": sum(1 for r in runs if r.family == fam)} for fam in fams if fam in full.eff},
        "accuracy": {"overall": loo.summary(),
                     "by_family": {fam: loo.summary(fam) for fam in fams},
                     "note": "leave-one-out |predicted/reported - 1| of tokens/s per chip (scripts/calibrate.py)"},
    }
    return ("# trainsim calibration constants: WRITTEN BY scripts/calibrate.py from validation/runs; do not edit.\n"
            + yaml.safe_dump(doc, sort_keys=False))


def write(path: Path, text: str) -> None:
    path.write_text(text)


def loo_markdown(loo: LooResult, full: Fit) -> str:
    """The README's accuracy table: every calibration run with its held-out error, then the summaries."""
    lines = ["| run | chip family | reported tok/s/chip | predicted (held out) | error | note |",
             "|---|---|---:|---:|---:|---|"]
    for r in sorted(loo.rows, key=lambda r: r.name):
        lines.append(f"| {r.name} | {r.family} | {r.reported:,.1f} | {r.predicted:,.1f} | {r.error:+.1%} | {r.note} |")
    lines += ["", "| chip family | runs | median \\|error\\| | max \\|error\\| | bias (median signed) |",
              "|---|---:|---:|---:|---:|"]
    fams = sorted({r.family for r in loo.rows})
    for fam in fams + [None]:
        s = loo.summary(fam)
        lines.append(f"| {fam or '**all**'} | {s['runs']} | {s['median_abs_error']:.1%} | {s['max_abs_error']:.1%} | "
                     f"{s['bias']:+.1%} |")
    lines += ["", "Fitted constants: gemm_d0 = " + f"{full.d0:g}" + ", pooled gemm_eff = " + f"{full.pooled_eff:.3f}"
              + "; " + ", ".join(f"{k} gemm_eff = {v:.3f}" for k, v in full.eff.items()) + "."]
    return "\n".join(lines)


def replace_section(text: str, body: str, tag: str = "accuracy") -> str:
    """Replace the text between <!-- tag:begin --> and <!-- tag:end --> markers."""
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    if begin not in text or end not in text:
        raise TrainsimError(f"README has no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + body + "\n" + end + tail
