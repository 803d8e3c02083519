"""Honest calibration: fit the engine's few constants on the calibration runs, report leave-one-out errors.

Fitted parameters (everything else keeps its documented default in :class:`~trainsim.perf.calibration.Calib`):

* per chip family and GEMM precision with at least MIN_RUNS runs: ``gemm_eff`` (BF16 runs) or ``gemm_eff_fp8``
  (FP8 runs), the fraction of the dense peak of that precision a large GEMM reaches; the ``default`` entry holds
  one value per precision pooled over all runs of that precision, which smaller groups use (a constant is never
  fitted to one or two runs). GEMM shape effects are not fitted: tile, wave and K-loop quantisation use hardware
  facts (perf/data/constants.yaml).

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

MIN_RUNS = 3
PARAM = {"bf16": "gemm_eff", "fp8": "gemm_eff_fp8"}
EFF_BOUNDS = (0.35, 0.98)


@dataclass
class CalRun:
    """A calibration run prepared for fast repeated evaluation (plans enumerated once)."""

    name: str
    run: Run
    family: str
    reported: float
    plans: object

    @property
    def precision(self) -> str:
        fp8 = self.run.training.precision == "fp8" and self.run.system.chip.peak_flops.get("fp8")
        return "fp8" if fp8 else "bf16"

    @property
    def key(self) -> tuple[str, str]:
        return (self.family, self.precision)

    @property
    def framework(self) -> str:
        from ..frameworks import framework_of

        return framework_of(self.run)

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
    eff: dict[tuple[str, str], float]         # (family, precision) -> efficiency, groups of MIN_RUNS runs or more
    pooled: dict[str, float]                  # precision -> efficiency pooled over every run of that precision
    loss: float
    fw_eff: dict[tuple[str, str, str], float] = field(default_factory=dict)   # (family, precision, framework)

    def value(self, family: str, precision: str, framework: str | None, default: float) -> float:
        """The most specific fitted efficiency: (family, precision, framework), (family, precision), pooled."""
        return self.fw_eff.get((family, precision, framework),
                               self.eff.get((family, precision), self.pooled.get(precision, default)))

    def calib(self, family: str, base: Calib | None = None, framework: str | None = None) -> Calib:
        base = base or Calib()
        return base.with_(**{PARAM[pr]: self.value(family, pr, framework, getattr(base, PARAM[pr])) for pr in PARAM})


def _fit_group(runs: list[CalRun], precision: str, family: str, base: Calib) -> float:
    from ..perf.calibration import calib_for

    def loss(x):
        return sum(abs(math.log(r.predict(calib_for(r.family).with_(**{PARAM[precision]: x})) / r.reported))
                   for r in runs)
    return _golden(loss, *EFF_BOUNDS)


def _groups(runs: list[CalRun]):
    """(precision, family, framework) groups of runs; framework None = the whole family."""
    out: dict[tuple, list[CalRun]] = {}
    for r in runs:
        out.setdefault((r.precision, r.family, None), []).append(r)
        out.setdefault((r.precision, r.family, r.framework), []).append(r)
    return out


def fit(runs: list[CalRun], base: Calib | None = None) -> Fit:
    """Per precision: a pooled efficiency over all its runs; per chip family, and per chip family and software
    stack (framework profile), one efficiency wherever the group has MIN_RUNS runs or more (golden section on the
    L1 log loss). Each run depends only on its own group's constant. Non-fitted constants
    (perf/data/constants.yaml, family entries included) stay as they are."""
    from ..perf.calibration import calib_for

    base = base or Calib()
    pooled, eff, fw_eff = {}, {}, {}
    for pr in PARAM:
        pr_runs = [r for r in runs if r.precision == pr]
        if pr_runs:
            pooled[pr] = _fit_group(pr_runs, pr, "*", base)
    for (pr, fam, fw), grp in _groups(runs).items():
        if len(grp) >= MIN_RUNS:
            if fw is None:
                eff[(fam, pr)] = _fit_group(grp, pr, fam, base)
            else:
                fw_eff[(fam, pr, fw)] = _fit_group(grp, pr, fam, base)
    f = Fit(eff, pooled, 0.0, fw_eff)
    f.loss = sum(abs(math.log(r.predict(f.calib(r.family, calib_for(r.family), r.framework)) / r.reported))
                 for r in runs)
    return f


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


def leave_one_out(runs: list[CalRun], base: Calib | None = None) -> LooResult:
    """Refit without each run and predict it from the most specific group that still has MIN_RUNS runs:
    (chip family, precision, framework), then (chip family, precision), then the pooled precision. Only that
    group depends on the held-out run, so only it is refitted."""
    from ..perf.calibration import calib_for

    out = LooResult()
    for i, held in enumerate(runs):
        rest = runs[:i] + runs[i + 1:]
        pr = held.precision
        same_pr = [r for r in rest if r.precision == pr]
        fam = [r for r in same_pr if r.family == held.family]
        fw = [r for r in fam if r.framework == held.framework]
        if len(fw) >= MIN_RUNS:
            x, note = _fit_group(fw, pr, held.family, Calib()), ""
        elif len(fam) >= MIN_RUNS:
            x, note = _fit_group(fam, pr, held.family, Calib()), f"family {PARAM[pr]} (fewer than {MIN_RUNS} " \
                                                                 f"other {held.framework} runs)"
        elif same_pr:
            x = _fit_group(same_pr, pr, "*", Calib())
            note = f"fewer than {MIN_RUNS} {pr} runs of its chip family: pooled {PARAM[pr]} of the other runs"
        else:
            x, note = getattr(calib_for(held.family), PARAM[pr]), f"no other {pr} run: default {PARAM[pr]}"
        cal = calib_for(held.family).with_(**{PARAM[pr]: x})
        out.rows.append(LooRow(held.name, held.family, held.reported, held.predict(cal), note))
    return out


def calibration_yaml(full: Fit, loo: LooResult, runs: list[CalRun]) -> str:
    """The one calibration data file, with provenance and the held-out accuracy."""
    import yaml

    fams = sorted({r.family for r in runs})
    default = {PARAM[pr]: round(v, 4) for pr, v in full.pooled.items()}
    default.update(fitted_on=len(runs),
                   note="pooled gemm_eff (BF16 runs) and gemm_eff_fp8 (FP8 runs) fitted on all calibration runs "
                        "(scripts/calibrate.py); chip families with fewer than 3 runs of a precision use these; "
                        "other constants: perf/data/constants.yaml, each with its source")
    families: dict = {}
    for (fam, pr), v in sorted(full.eff.items()):
        families.setdefault(fam, {})[PARAM[pr]] = round(v, 4)
        families[fam][f"fitted_on_{pr}"] = sum(1 for r in runs if r.key == (fam, pr))
    fws: dict = {}
    for (fam, pr, fw), v in sorted(full.fw_eff.items()):
        fws.setdefault(fw, {}).setdefault(fam, {})[PARAM[pr]] = round(v, 4)
    doc = {
        "default": default,
        "families": families,
        "frameworks": fws,
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
    lines += ["", "Fitted constants: pooled " + ", ".join(f"{PARAM[pr]} = {v:.3f}" for pr, v in full.pooled.items())
              + "; " + ", ".join(f"{fam} {PARAM[pr]} = {v:.3f}" for (fam, pr), v in sorted(full.eff.items()))
              + "; per software stack: " + ", ".join(f"{fw} on {fam} {PARAM[pr]} = {v:.3f}"
                                                   for (fam, pr, fw), v in sorted(full.fw_eff.items())) + "."]
    return "\n".join(lines)


def replace_section(text: str, body: str, tag: str = "accuracy") -> str:
    """Replace the text between <!-- tag:begin --> and <!-- tag:end --> markers."""
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    if begin not in text or end not in text:
        raise TrainsimError(f"README has no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + body + "\n" + end + tail
