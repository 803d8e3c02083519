"""Run scenario files: ``run_file(path)`` dispatches on the file's ``kind`` to a registered handler
(:mod:`trainsim.scenario.registry`); ``run_all()`` runs every ``scenarios/*.yaml``."""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import TrainsimError
from ..search import set_threads
from ..posttrain import scenario as _posttrain_kinds  # noqa: F401 - registers the RL / distillation kinds
from .registry import handler
from .kinds import load_doc   # the package registers the other kinds
from ..io import read_yaml, spec_kind
from ..io.specfile import SPEC_COMMAND, SPEC_LABEL

REQUIRED = ("id", "claim", "verdict", "numbers", "assumptions")


def scenarios_dir(start: Path | None = None) -> Path:
    """``scenarios/`` of the repository (next to the ``trainsim`` package), else of the working directory."""
    for cand in (Path(__file__).resolve().parents[2] / "scenarios", Path(start or Path.cwd()) / "scenarios"):
        if cand.is_dir():
            return cand
    raise TrainsimError("no scenarios/ folder next to the trainsim package or in the working directory")


def scenario_files(folder: Path | None = None) -> list[Path]:
    """The scenario YAML files of ``folder`` (the shipped scenarios by default), S1, S2, ... in number
    order, then the others by name."""
    folder = Path(folder) if folder else scenarios_dir()

    def key(p: Path):
        s = p.stem
        return (0, int(s[1:]), s) if s[:1] in "Ss" and s[1:].isdigit() else (1, 0, s)

    return sorted(folder.glob("*.yaml"), key=key)


def in_file(exc: TrainsimError, path: Path, doc: dict) -> TrainsimError:
    """``exc`` naming the scenario file ``path``, as every spec error does, where it named none, the scenario
    (``scenario S1``) or the run built from it (``S1``); an error naming another file (a ``job:`` spec) as is."""
    if exc.where is None or exc.where.startswith("scenario ") or exc.where == str(doc.get("id")):
        msg = str(exc).removeprefix(f"{exc.where}: ") if exc.where else str(exc)
        return TrainsimError(msg, where=str(path))
    return exc


def run_file(path: str | Path) -> dict:
    """Run one scenario file; the result has at least id, claim, verdict, numbers, assumptions."""
    path = Path(path)
    doc = load_doc(path)
    kind = doc.get("kind")
    if not kind:
        other = spec_kind(doc)   # a run / serving / sweep spec given to `scenario`: say which command reads it
        hint = (f" (expected a scenario with a kind:; this is a {SPEC_LABEL[other]} spec: {SPEC_COMMAND[other]})"
                if other != "scenario" and (other != "run" or "training" in doc) else "")
        raise TrainsimError("missing key" + hint, field="kind", where=str(path))
    if spec_kind(doc) == "posttrain":   # kind: opd / rl is a post-training spec, not a scenario kind
        raise TrainsimError(f"{kind!r} is a post-training job, not a scenario kind (this is a post-training spec: "
                            f"{SPEC_COMMAND['posttrain']})", field="kind", where=str(path))
    t0 = time.perf_counter()
    try:
        out = handler(kind)(doc, path.parent)
    except TrainsimError as exc:
        raise in_file(exc, path, doc) from None
    for k in REQUIRED:
        out.setdefault(k, doc.get(k) if k in ("id", "claim") else None)
    out.setdefault("file", str(path))
    out["seconds"] = time.perf_counter() - t0
    return out


# rough relative cost of a kind (tenths of CPU seconds of the shipped scenarios, each measured alone in a fresh
# process on the 2-core machine, start-up included: s31, after expected_waves' grouped windows), to start the slow
# ones first: longest first onto two processes runs S4 on one while the other runs S6 then S7, and both take the
# smaller ones as they free up, about half of the CPU time each
KIND_COST = {"fleet-capacity": 93, "frontier-sizing": 62, "posttrain_multicluster": 46, "hardware-sensitivity": 36,
             "pretrain-compare": 26, "same-job-compare": 25}


def _cost(path: Path) -> int:
    try:
        return KIND_COST.get((read_yaml(path) or {}).get("kind"), 1)
    except Exception:  # noqa: BLE001 - a broken file is reported by run_file itself
        return 1


def _run_one(path: str) -> dict:
    """run_file, with a failure reported as the scenario's result (``verdict_class: error``) so that one broken
    file does not hide the others; ``trainsim scenario --all`` exits non-zero when any result is an error."""
    try:
        return run_file(path)
    except Exception as exc:  # noqa: BLE001
        import traceback

        return {"id": Path(path).stem, "file": path, "claim": "", "verdict": f"error: {exc}",
                "verdict_class": "error", "numbers": {}, "assumptions": [], "error": str(exc),
                "traceback": traceback.format_exc(limit=6) if not isinstance(exc, TrainsimError) else None}


def run_all(folder: Path | None = None, jobs: int | None = None) -> list[dict]:
    """Run every scenario file (in file order). ``jobs`` > 1 runs them in that many processes (default: the
    number of CPUs, at most the number of files); each process memoises its own plan searches."""
    import os

    files = scenario_files(folder)
    jobs = jobs if jobs is not None else min(len(files), os.cpu_count() or 1)
    if jobs <= 1 or len(files) <= 1:
        return [_run_one(str(p)) for p in files]
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp

    order = sorted(files, key=lambda p: -_cost(p))
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    # each process searches on one thread (the processes already share the CPUs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=set_threads, initargs=(1,)) as ex:
        futs = {str(p): ex.submit(_run_one, str(p)) for p in order}
        return [futs[str(p)].result() for p in files]
