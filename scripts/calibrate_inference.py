"""Calibrate the serving model's constants on validation/inference/ and print the leave-one-out table.

    python scripts/calibrate_inference.py            # fit, write trainsim/inference/data/inference.yaml, README table
    python scripts/calibrate_inference.py --dry-run  # fit and print only

One data file (trainsim/inference/data/inference.yaml), one script (this one). Fitted constants, all physical:

* ``mem_eff`` and ``gemm_eff`` per chip vendor (nvidia, ascend, amd: each has >= 7 points), in (0, 1], grid
  0.30-1.00 in steps of 0.05; ``gemm_eff`` no higher than the vendor's best measured GEMM (:data:`GEMM_MAX`);
* ``a2a_eff`` (achieved fraction of collective line rate in expert-parallel dispatch/combine), in (0, 1], shared,
  grid 0.5-1.0 (0.05 steps above 0.7; DeepEP's published low-latency rates put it at 0.85-1.0,
  tests/test_deepep_ll_decode.py);
* ``seq_overhead_s`` (host time per running sequence per forward step that an overlapping engine leaves exposed),
  shared, grid 0-50 us; the fixed per-step part ``step_overhead_s`` is not fitted: it is the measured gap between
  overlapped CUDA-graph decode steps (:data:`STEP_MIN`, inference.yaml).

A fitted value at one of these measured limits, or at an end of its grid, is printed and written to the README
line as such: the points ask for more than the component measurements allow (missing physics), so it is not a
better constant. ``--unbounded`` fits without the limits, to show where the points pull.

Method: every point is predicted at every grid combination of the four values (the error matrix; the constants go
through the serving model as arrays over the grid, one evaluation per point and ``a2a_eff`` value, each
combination's plan and batch searched as for one combination: ~15 s on two cores where one model call per
combination took ~12 min, tests/test_calibrate_inference_grid.py); a fit is then
the shared (a2a_eff, seq_overhead_s) and, per vendor, the (mem_eff, gemm_eff) minimising the summed |log(pred /
reported)| (L1 on log errors: a point the physics cannot explain stays in the table instead of skewing the fit).
Leave-one-out: each point's error comes from a fit without it. No constant is fitted to a single point.
Points marked ``reported.measurement: production_average`` (a fleet's time average under varying load, not a
saturated measurement) are listed with the full fit's error but neither fitted nor counted in the summary.
"""
from __future__ import annotations

import argparse
import itertools
import math
import re
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainsim.inference.calib import InferCalib, default_calib, vendor_key  # noqa: E402
from trainsim.inference.serve import predicted_grid  # noqa: E402
from trainsim.inference.spec import load_serving  # noqa: E402
from trainsim.inference.validate import default_dir, error_table  # noqa: E402
from trainsim.validate.calibrate import replace_section  # noqa: E402

#: Measured limits the fit may not cross (a fitted value AT one of them, or at an end of its grid, is reported as
#: such: it means missing physics, not a better fit). Each is a component measurement, not a tuned number.
#: ``gemm_eff`` is a GEMM's share of the chip's dense peak at the serving precision, so no vendor's value may exceed
#: the best measured GEMM of that vendor's chips at that precision. ``STEP_MIN``, the gap measured between
#: CUDA-graph decode steps in an engine that overlaps scheduling with the GPU, is the fixed host time per step
#: (``step_overhead_s``, not fitted); what grows with the batch is the fitted ``seq_overhead_s``.
GEMM_MAX: dict[str, tuple[float, str]] = {
    "nvidia": (round(1550 / 1979, 3), "DeepGEMM FP8 GEMM 'up to 1550 TFLOPS' on H800 (deepseek-ai/DeepGEMM README, "
               "news 2025-04-18) of the 1,979 TFLOPS dense FP8 peak: 0.783, the highest of the NVIDIA serving-GEMM "
               "references (DeepGEMM dense table 55ab91f: 1,009-1,426 TFLOPS at M = 4,096, 0.51-0.72, "
               "tests/test_gemm_shape.py; Blackwell NVFP4 CUTLASS on B200 at M = 16,384: 3,039 / 3,904 TFLOPS with / "
               "without activation quantisation, 0.34 / 0.43 of 9 PFLOPS, vllm-project/vllm pull request 20646)"),
    "ascend": (0.827, "CloudMatrix384 serving paper (arXiv 2506.12708 v3) Table 10: INT8 GEMM 77.4-82.7% of one "
               "Ascend 910C die's peak at the serving shapes of DeepSeek-R1"),
    # amd: no MI300X GEMM rate at serving shapes found; the fit sits at the grid's floor (0.30), far below any ceiling
}
STEP_MIN = (1.5e-4, "vllm-project/vllm pull request 11133 (V1 asynchronous scheduling prototype, 2024-12-12, "
            "closed; merged later as pull request 19970): with scheduling overlapped and CUDA graphs on, the gap "
            "between two decode steps at batch 256 is 150-170 us, down from the 5-6 ms issue 10634 measured on "
            "Llama 2 7B; the smallest published per-step host gap of an overlapped CUDA-graph decode loop")
#: the grid of every fitted constant: efficiencies in steps of 0.05 over (0, 1] where the points can tell them apart,
#: plus the measured limits above as grid points so the fit can reach them
MEM = tuple(round(0.30 + 0.05 * i, 2) for i in range(15))      # 0.30 .. 1.00
GEMM = tuple(sorted({round(0.30 + 0.05 * i, 2) for i in range(15)} | {b for b, _ in GEMM_MAX.values()}))
A2A = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
#: host seconds per running sequence per step (vLLM V1 without overlap: ~21 us, issue 10634; V0: 100 us, issue 6801)
SEQ = (0.0, 1e-6, 2e-6, 3e-6, 4e-6, 5e-6, 6e-6, 8e-6, 10e-6, 15e-6, 20e-6, 30e-6, 50e-6)
DATA = ROOT / "trainsim" / "inference" / "data" / "inference.yaml"
README = ROOT / "README.md"


def error_matrix(paths, a2a=A2A, seq=SEQ, mem=MEM, gemm=GEMM):
    """E[a2a, seq, mem, gemm, point] = log(predicted / reported) over the grid of the four constants, and the row
    metadata (:func:`trainsim.inference.validate.error_table`'s rows, in its order).

    Each spec is loaded once and evaluated once per ``a2a_eff`` value with the other three constants as arrays
    over their grid (:func:`trainsim.inference.serve.predicted_grid`: the plan and batch each point searches are
    searched per grid point, as one :func:`~trainsim.inference.serve.infer` call per combination would; equal to it
    to rounding, tests/test_calibrate_inference_grid.py). ``a2a_eff`` only enters MoE layers' expert-parallel
    all-to-all, so dense models' points are evaluated at the first ``a2a_eff`` and copied along that axis (exactly
    what evaluating them would give)."""
    base = default_calib().with_(step_overhead_s=STEP_MIN[0])
    loaded = {p: load_serving(p) for p in paths}
    rows0 = error_table(paths, calib=InferCalib(**{**base.__dict__, "vendor_eff": (), "a2a_eff": a2a[0],
                                                   "seq_overhead_s": seq[0], "mem_eff": mem[0],
                                                   "gemm_eff": gemm[0]}), loaded=loaded)
    col = {name: g.reshape(-1, 1) for name, g in zip(("seq_overhead_s", "mem_eff", "gemm_eff"),
                                                       np.meshgrid(seq, mem, gemm, indexing="ij"))}
    shape = (len(seq), len(mem), len(gemm))
    out = np.zeros((len(a2a), *shape, len(rows0)))
    by_file: dict[str, list[tuple[int, dict]]] = {}
    for j, r in enumerate(rows0):
        by_file.setdefault(r["file"], []).append((j, r))
    for path in paths:
        sv, mine = loaded[path], by_file.get(Path(path).name, [])
        for ia in (range(len(a2a)) if sv.arch.is_moe else range(1 if mine else 0)):
            pred = predicted_grid(sv, InferCalib(**{**base.__dict__, "vendor_eff": (), "a2a_eff": a2a[ia], **col}))
            for j, r in mine:   # a dense point fills every a2a_eff slab with its one evaluation
                # a grid row where the point has no feasible plan (NaN) is an infinite error: constants that cannot
                # serve the published deployment within its bounds are never the fit
                e = np.nan_to_num(np.log1p(pred[r["phase"]] / r["reported"] - 1.0), nan=np.inf)
                # a synchronous engine (host_overlap: false) takes its own per-sequence host time, not the grid's:
                # its numbers are the same along the seq_overhead_s axis
                e = e.reshape(shape) if e.size == math.prod(shape) else np.broadcast_to(e.reshape(1, *shape[1:]), shape)
                out[ia if sv.arch.is_moe else slice(None), ..., j] = e
    return out, rows0


def limits_ok(vendors: np.ndarray, seq: tuple[float, ...] = SEQ, gemm: tuple[float, ...] = GEMM,
              bounded: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Which grid values the fit may use: every ``seq_overhead_s`` (no measured floor per sequence) and, per vendor,
    ``gemm_eff`` <= its :data:`GEMM_MAX` (a vendor without a measured ceiling keeps its whole grid); everything with
    ``bounded=False`` (the unconstrained fit, for comparison)."""
    seq_ok = np.ones(len(seq), dtype=bool)
    gemm_ok = {v: np.array(gemm) <= (GEMM_MAX[v][0] if bounded and v in GEMM_MAX else np.inf) + 1e-12
               for v in sorted(set(vendors))}
    return seq_ok, gemm_ok


def fit(E: np.ndarray, vendors: np.ndarray, mask: np.ndarray,
        ok: tuple[np.ndarray, dict[str, np.ndarray]] | None = None) -> tuple[float, int, int, dict[str, tuple[int, int]]]:
    """Best (a2a, seq) shared and (mem, gemm) per vendor over the points in ``mask`` and the grid values ``ok``
    allows (:func:`limits_ok`; default: the measured limits on the module's grid): indices and loss."""
    seq_ok, gemm_ok = ok if ok is not None else limits_ok(vendors)
    best = None
    groups = sorted(set(vendors))
    for ia, ist in itertools.product(range(E.shape[0]), range(E.shape[1])):
        if not seq_ok[ist]:
            continue
        loss, per = 0.0, {}
        for v in groups:
            sel = mask & (vendors == v)
            if not sel.any():
                continue
            l = np.abs(E[ia, ist][:, :, sel]).sum(axis=-1)   # (mem, gemm)
            l[:, ~gemm_ok[v]] = np.inf
            im, ig = np.unravel_index(np.argmin(l), l.shape)
            loss += float(l[im, ig])
            per[v] = (int(im), int(ig))
        if best is None or loss < best[0]:
            best = (loss, ia, ist, per)
    assert best is not None, "no grid value within the measured limits"
    return best


def at_limits(a2a: float, seq: float, per: dict[str, tuple[float, float]], bounded: bool = True) -> list[str]:
    """The fitted values that sit at a measured limit or at an end of their grid: each is missing physics (what the
    points ask for lies beyond what the component measurements allow), named with the limit it sits at."""
    out = []
    if seq <= SEQ[0]:
        out.append(f"seq_overhead_s {seq * 1e6:g} us at the grid's floor")
    elif seq >= SEQ[-1]:
        out.append(f"seq_overhead_s {seq * 1e6:g} us at the grid's top")
    if a2a in (A2A[0], A2A[-1]):
        out.append(f"a2a_eff {a2a:g} at the grid's {'floor' if a2a == A2A[0] else 'top'}")
    for v, (m, g) in sorted(per.items()):
        if m in (MEM[0], MEM[-1]):
            out.append(f"{v} mem_eff {m:g} at the grid's {'floor' if m == MEM[0] else 'top'}")
        if bounded and v in GEMM_MAX and abs(g - GEMM_MAX[v][0]) < 1e-9:
            out.append(f"{v} gemm_eff {g:g} at its measured ceiling")
        elif v in GEMM_MAX and g > GEMM_MAX[v][0] + 1e-9:
            out.append(f"{v} gemm_eff {g:g} above its measured ceiling {GEMM_MAX[v][0]:g}")
        elif g in (GEMM[0], GEMM[-1]):
            out.append(f"{v} gemm_eff {g:g} at the grid's {'floor' if g == GEMM[0] else 'top'}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--rl-table", action="store_true",
                    help="only rewrite the README's RL whole-step table from the current constants (no serving fit)")
    ap.add_argument("--matrix", help="save the error matrix to (or, if it exists, load it from) this .pkl file")
    ap.add_argument("--unbounded", action="store_true",
                    help="fit without the measured limits (GEMM_MAX), to see where the points pull; "
                         "implies --dry-run")
    args = ap.parse_args(argv)
    if args.rl_table:   # the whole-step check only: nothing is fitted to it, so no serving fit is needed
        write_readme(rl_table(), "rl-table")
        return
    r = refit(args.matrix, bounded=not args.unbounded)
    print(f"a2a_eff {r['a2a_eff']}, seq_overhead_s {r['seq_overhead_s']}; per vendor (mem_eff, gemm_eff): "
          + ", ".join(f"{v} ({m}, {g})" for v, (m, g) in r["vendor_eff"].items()))
    print("at a limit (missing physics): " + ("; ".join(r["at_limits"]) or "none"))
    print(r["summary"])
    print(r["table"])
    if args.dry_run or args.unbounded:
        return
    write_data(r["a2a_eff"], r["seq_overhead_s"], r["vendor_eff"], r["summary"])
    write_readme(r["table"], "inference-table")
    rl = rl_table()
    print(rl)
    write_readme(rl, "rl-table")


def refit(matrix: str | None = None, bounded: bool = True) -> dict:
    """The full fit on every point of validation/inference/ and each point's leave-one-out error: the fitted
    ``a2a_eff``, ``seq_overhead_s`` and per-vendor (``mem_eff``, ``gemm_eff``), the summary written to
    inference.yaml's ``accuracy`` and the README table (``matrix``: a .pkl to save the error matrix to, or load it
    from where it exists; ``bounded``: within the measured limits :data:`GEMM_MAX` and :data:`STEP_MIN`)."""
    paths = sorted(default_dir().glob("*.yaml"))
    if matrix and Path(matrix).exists():
        import pickle

        E, rows = pickle.loads(Path(matrix).read_bytes())
    else:
        E, rows = error_matrix(paths)
        if matrix:
            import pickle

            Path(matrix).write_bytes(pickle.dumps((E, rows)))
    vendors = np.array([vendor_key(load_serving(ROOT / "validation" / "inference" / r["file"]).system.chip)
                        for r in rows])
    n = len(rows)
    # production averages (a fleet's time average under varying load) are listed, not fitted or counted
    counted = np.array([r.get("counted", True) for r in rows])
    ok = limits_ok(vendors, bounded=bounded)
    full = fit(E, vendors, counted, ok)
    _, ia, ist, per = full
    loo = []
    for i in range(n):
        if not counted[i]:   # not in the fit: its error with the full fit is already out of sample
            loo.append(math.expm1(E[ia, ist, per[vendors[i]][0], per[vendors[i]][1], i]))
            continue
        m = counted.copy()
        m[i] = False
        _, a, st, pv = fit(E, vendors, m, ok)
        im, ig = pv.get(vendors[i], per[vendors[i]])
        loo.append(math.expm1(E[a, st, im, ig, i]))
    insample = [math.expm1(E[ia, ist, per[vendors[i]][0], per[vendors[i]][1], i]) for i in range(n)]
    loo_c = np.array(loo)[counted]
    abs_loo = np.abs(loo_c)
    summary = {"points": int(counted.sum()), "not_counted": int(n - counted.sum()),
               "loo_median_abs": float(np.median(abs_loo)), "loo_max_abs": float(np.max(abs_loo)),
               "loo_mean_signed": float(np.mean(loo_c)),
               "loo_within_20pct": int(np.sum(abs_loo <= 0.20)),
               "fit_median_abs": float(np.median(np.abs(np.array(insample)[counted])))}
    vendor_eff = {v: (MEM[a], GEMM[b]) for v, (a, b) in per.items()}
    limits = at_limits(A2A[ia], SEQ[ist], vendor_eff, bounded)
    return {"a2a_eff": A2A[ia], "seq_overhead_s": SEQ[ist], "vendor_eff": vendor_eff, "summary": summary,
            "at_limits": limits,
            "table": render(rows, loo, insample, summary, A2A[ia], SEQ[ist], vendor_eff, limits)}


def rl_table() -> str:
    """The whole-step check on validation/rl/ with the freshly written constants (nothing fitted to it)."""
    from trainsim.inference import calib as _calib
    from trainsim.posttrain.phases import clear_cache
    from trainsim.posttrain.validate import error_table as rl_errors, summary as rl_summary

    _calib._doc.cache_clear()
    _calib.default_calib.cache_clear()
    clear_cache()
    rows = rl_errors()
    lines = ["| run | mode | published step (s) | predicted (s) | error | refit | host offload | generation | log-probs "
             "| training |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["error"] is None:
            lines.append(f"| {r['name']} | | {r['reported']:.1f} | no plan | | | | | | |")
            continue
        st = r["stages_s"]
        lines.append(f"| {r['name']} | {r['mode']} | {r['reported']:.1f} | {r['predicted']:.1f} | "
                     f"{r['error'] * 100:+.0f}% | {st.get('weights', 0):.1f} | {st.get('offload', 0):.1f} | "
                     f"{st.get('rollout', 0):.1f} | "
                     f"{st.get('logprobs', 0):.1f} | {st.get('train', 0):.1f} |")
    sm = rl_summary(rows)
    if sm.get("points"):
        lines += ["", f"{sm['points']} runs ({sm['failed']} without a plan): median |error| "
                      f"{sm['median_abs_error'] * 100:.1f}%, max {sm['max_abs_error'] * 100:.1f}%, mean signed "
                      f"{sm['mean_signed_error'] * 100:+.1f}%; {sm['within_20pct']} within 20%."]
    return "\n".join(lines)


def render(rows, loo, insample, summary, a2a, seq, per, limits=()) -> str:
    lines = ["| deployment | stack | phase | published tok/s/chip | predicted (LOO) | LOO error |",
             "|---|---|---|---:|---:|---:|"]
    for r, e in sorted(zip(rows, loo), key=lambda x: x[0]["file"]):
        tag = "" if r.get("counted", True) else " (production average: not counted)"
        lines.append(f"| {r['name']}{tag} | {r['stack'].split('(')[0].strip() or '-'} | {r['phase']} | "
                     f"{r['reported']:,.0f} | {r['reported'] * (1 + e):,.0f} | {e * 100:+.0f}% |")
    lines.append("")
    lines.append(f"{summary['points']} points, leave-one-out: median |error| {summary['loo_median_abs'] * 100:.1f}%, "
                 f"max {summary['loo_max_abs'] * 100:.1f}%, mean signed {summary['loo_mean_signed'] * 100:+.1f}%, "
                 f"{summary['loo_within_20pct']} within 20% "
                 f"(in-sample median {summary['fit_median_abs'] * 100:.1f}%; {summary['not_counted']} production "
                 f"averages listed, not counted or fitted). Fitted: a2a_eff {a2a}, "
                 f"seq_overhead_s {seq * 1e6:g} us per running sequence (step_overhead_s {STEP_MIN[0] * 1e3:g} ms, "
                 f"measured); mem_eff / gemm_eff "
                 + ", ".join(f"{v} {m} / {g}" for v, (m, g) in sorted(per.items())) + "."
                 + (" At a measured limit or a grid end (missing physics): " + "; ".join(limits) + "."
                    if limits else ""))
    return "\n".join(lines)


def yaml_float(val: float) -> str:
    """``val`` as YAML reads back a float: PyYAML's YAML 1.1 resolver takes ``4e-06`` for a string, so an
    exponent gets a mantissa with a point (``4.0e-06``)."""
    s = f"{val:g}"
    mant, _, exp = s.partition("e")
    return f"{mant}.0e{exp}" if exp and "." not in mant else s


def write_data(a2a, seq, per, summary):
    text = DATA.read_text()
    doc = yaml.safe_load(text)
    nv = per.get("nvidia")
    fitted = (("a2a_eff", a2a), ("seq_overhead_s", seq)) + ((("mem_eff", nv[0]), ("gemm_eff", nv[1])) if nv else ())
    for name, val in fitted:
        pat = re.compile(rf"(^  {name}:\n    value: )[^\n]*", re.M)
        pat1 = re.compile(rf"(^  {name}: {{value: )[^,]*", re.M)
        written = yaml_float(val)
        if pat.search(text):
            text = pat.sub(lambda m, w=written: m.group(1) + w, text)
        elif pat1.search(text):
            text = pat1.sub(lambda m, w=written: m.group(1) + w, text)
    block = ("vendor_eff:   # written by scripts/calibrate_inference.py (mem_eff, gemm_eff per chip vendor)\n"
             + "".join(f"  {v}: {{mem_eff: {m:g}, gemm_eff: {g:g}}}\n" for v, (m, g) in sorted(per.items()))
             + "accuracy:   # written by scripts/calibrate_inference.py: leave-one-out over the counted serving "
               "points (what scenarios quote; fit_median_abs is the in-sample figure)\n"
             + "".join(f"  {k}: {summary[k]:.4g}\n" for k in ("points", "loo_median_abs", "loo_max_abs",
                                                              "loo_mean_signed", "loo_within_20pct",
                                                              "fit_median_abs")))
    text = re.sub(r"vendor_eff:.*?(?=\n\S|\Z)\n?(# leave-one-out[^\n]*\n)?", "", text, flags=re.S)
    text = re.sub(r"^accuracy:.*?(?=\n\S|\Z)\n?", "", text, flags=re.S | re.M)
    DATA.write_text(text.rstrip("\n") + "\n\n" + block)
    assert doc is not None


def write_readme(table: str, marker: str):
    text = README.read_text()
    if f"<!-- {marker}:start -->" not in text:
        return
    README.write_text(replace_section(text, table, tag=marker, opening="start"))


if __name__ == "__main__":
    main()
