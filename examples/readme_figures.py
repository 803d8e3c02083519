"""Reproduce the README's figures as PNG files (no display needed: matplotlib's Agg canvas).

    python examples/readme_figures.py [OUT_DIR] [--held-out]

Writes into OUT_DIR (default ``docs/figures/`` of the repository, where the README's images live):

* ``accuracy.png``: predicted against reported tokens/s per chip for every run of ``validation/runs`` (the README's
  accuracy table as a chart). By default the predictions use the packaged calibration (fitted on all runs, ~2 s);
  ``--held-out`` refits without each run first, exactly as the README table's leave-one-out column (minutes).
* ``<run>-breakdown.png`` and ``<run>-memory.png`` for each benchmark run (``benchmarks/runs/``): where the step
  time goes and the memory per chip against HBM, for the estimate and the next-best plans.
* ``llama31-405b-scaling.png`` and ``llama31-405b-sensitivity.png``: days and MFU against chips, and the tornado
  chart of days against HBM / network / FLOP/s for Llama 3.1 405B on H100.

Everything goes through the public API: ``trainsim.load_run``, ``trainsim.report.collect.run_data`` (the numbers
of ``trainsim report``), ``trainsim.report.charts`` (the figures) and ``trainsim.validate.runner.validate``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def accuracy_rows(held_out: bool) -> list[dict]:
    """(reported, predicted, family) of every steady-state validation run."""
    if held_out:
        from trainsim.validate.calibrate import leave_one_out, prepare

        loo = leave_one_out(prepare())
        return [{"name": r.name, "family": r.family, "reported": r.reported, "predicted": r.predicted}
                for r in loo.rows]
    from trainsim.validate.runner import validate

    df = validate().to_frame()
    df = df[(df["kind"] == "steady") & df["predicted"].notna() & df["reported"].notna()]
    return df[["run", "family", "reported", "predicted"]].rename(columns={"run": "name"}).to_dict("records")


def main(argv: list[str]) -> int:
    import trainsim
    from trainsim.report import charts
    from trainsim.report.collect import run_data

    held_out = "--held-out" in argv
    args = [a for a in argv if not a.startswith("--")]
    out = Path(args[0]) if args else ROOT / "docs" / "figures"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def save(fig, name: str) -> None:
        (out / name).write_bytes(charts.png_bytes(fig))
        print(f"wrote {out / name}")

    rows = accuracy_rows(held_out)
    title = "Predicted (held out) vs reported tokens/s per chip" if held_out else \
        "Predicted vs reported tokens/s per chip (packaged calibration)"
    save(charts.accuracy_chart(rows, title=title), "accuracy.png")

    for path in sorted((ROOT / "benchmarks" / "runs").glob("*.yaml")):
        run = trainsim.load_run(path)
        full = path.stem.startswith("llama31-405b")
        data = run_data(run, top=4, with_scaling=full, with_sensitivity=full, with_ranges=False)
        if not data["plans"]:
            print(f"skipped {path.name}: {data.get('message')}")
            continue
        hbm = run.system.chip.hbm_bytes
        save(charts.breakdown_chart(data["plans"], title=f"Step time by cause: {run.name}"), f"{path.stem}-breakdown.png")
        save(charts.memory_chart(data["plans"], hbm, title=f"Memory per chip: {run.name}"), f"{path.stem}-memory.png")
        if full:
            save(charts.scaling_chart(data["scaling"], run.chips, title=f"Scaling: {run.arch.name} on H100"),
                 "llama31-405b-scaling.png")
            save(charts.tornado_chart(data["sensitivity"]["rows"], title=f"Sensitivity of days: {run.arch.name}",
                                      xlabel="change in days vs nominal (%)"), "llama31-405b-sensitivity.png")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
