"""Sweep throughput (issue 9): points per second in-process and on a local Dask cluster, and the overhead per point.

Run: python benchmarks/bench_sweep.py [--workers 2] [--repeats 1]

Two workloads:

* ``small``: a 1B dense model on 16-64 H100 (128 points, each plan search a few ms): throughput is bound by
  per-point and per-task overhead, so it shows what batching buys;
* ``moe``: ``examples/sweep-hbm-bandwidth.yaml`` (1.6T MoE on 65 CloudMatrix 384, 25 points of ~0.3 s each): the
  numpy work dominates, so it shows how throughput scales with workers.

For each: ``compute`` is the CPU time of :func:`evaluate_batch` on every point in this process (the work
itself); ``wall`` the whole :func:`run_sweep` (Parquet parts and merge included; the cluster's start-up excluded
and reported separately); ``cpu`` the CPU time of this process and of every Dask worker during the run; overhead
per point = (cpu - compute) / points: what scheduling, serialisation and writing cost, independent of how busy
the machine is. Wall-clock points/s depend on free cores: on a shared machine, compare the CPU columns.
Measured on the machine it runs on (CI-class: 2 cores); not a test.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SMALL = {
    "name": "bench-small",
    "base": {"name": "t1b", "model": {"name": "t1b", "layers": 16, "hidden": 2048, "heads": 16, "ffn": 5504,
                                      "ffn_act": "swiglu", "vocab": 32000},
             "system": "dgx-h100", "chips": 16, "training": {"tokens": "100B", "seq_len": 2048,
                                                             "global_batch_seqs": 256}, "plan": {"tp": 8}},
    "axes": {"chips": [16, 24, 32, 40, 48, 56, 64, 72],
             "system.chip.hbm_bw": {"scale": [0.5, 1.0, 1.5, 2.0]},
             "system.scale_out.bandwidth": ["100 Gb/s", "200 Gb/s", "400 Gb/s", "800 Gb/s"]},
}


def _spec(name: str):
    from trainsim.sweep import load_sweep, parse_sweep

    if name == "small":
        return parse_sweep(SMALL, base_dir=ROOT)
    return load_sweep(ROOT / "examples" / "sweep-hbm-bandwidth.yaml")


def _compute(spec) -> float:
    from trainsim.sweep.evaluate import evaluate_batch

    evaluate_batch(spec, [0])                      # warm caches (catalog, calibration, imports)
    t0 = time.process_time()
    evaluate_batch(spec, range(spec.n_points))
    return time.process_time() - t0


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _workers_cpu(executor) -> float:
    client = getattr(executor, "client", None)
    return sum(client.run(_cpu).values()) if client is not None else 0.0


def _run(spec, executor, batch: int, tmp: Path) -> tuple[float, float, int]:
    from trainsim.sweep.runner import run_sweep

    out = tmp / f"{spec.name}-{time.monotonic_ns()}.parquet"
    c0, w0, t0 = _cpu(), _workers_cpu(executor), time.perf_counter()
    res = run_sweep(spec, out, executor=executor, batch=batch, quiet=True)
    wall = time.perf_counter() - t0
    cpu = _cpu() - c0 + _workers_cpu(executor) - w0
    assert res.complete and res.evaluated == spec.n_points
    return wall, cpu, res.batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    from trainsim.sweep.executors import DaskExecutor, InProcess

    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        dask = DaskExecutor.local(args.workers)
        startup = time.perf_counter() - t0
        try:
            for name in ("small", "moe"):
                spec = _spec(name)
                n = spec.n_points
                compute = min(_compute(spec) for _ in range(args.repeats))
                cases = [("in-process", InProcess(), 1, 0)]
                if name == "small":
                    cases.append((f"dask {args.workers} workers, batch 1", dask, args.workers, 1))
                cases.append((f"dask {args.workers} workers, batch auto", dask, args.workers, 0))
                _run(spec, dask, 0, tmp)   # warm the workers (imports, catalog) once per workload
                for label, ex, _w, batch in cases:
                    wall, cpu, k = min(_run(spec, ex, batch, tmp) for _ in range(args.repeats))
                    rows.append((name, n, label, k, wall, n / wall, compute / n, cpu / n, (cpu - compute) / n))
        finally:
            dask.close()
    print(f"local cluster start-up ({args.workers} worker processes): {startup:.1f} s\n")
    print(f"{'workload':9s} {'points':>6s}  {'mode':28s} {'batch':>5s} {'wall s':>7s} {'points/s':>9s} "
          f"{'compute ms/pt':>13s} {'cpu ms/pt':>9s} {'overhead ms/pt':>14s}")
    for name, n, label, k, wall, pps, comp, cpu, over in rows:
        print(f"{name:9s} {n:6d}  {label:28s} {k:5d} {wall:7.2f} {pps:9.1f} {comp * 1e3:13.1f} {cpu * 1e3:9.1f} "
              f"{over * 1e3:14.1f}")


if __name__ == "__main__":   # dask worker processes re-import this file; the guard keeps them from re-running it
    main()
