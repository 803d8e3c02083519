"""Run scenario files: ``run_file(path)`` dispatches on the file's ``kind`` to a registered handler
(:mod:`trainsim.scenario.registry`); ``run_all()`` runs every ``scenarios/*.yaml``."""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import TrainsimError
from .registry import handler

REQUIRED = ("id", "claim", "verdict", "numbers", "assumptions")


def scenarios_dir(start: Path | None = None) -> Path:
    """``scenarios/`` of the repository (next to the ``trainsim`` package), else of the working directory."""
    import trainsim

    for cand in (Path(trainsim.__file__).resolve().parents[1] / "scenarios", Path(start or Path.cwd()) / "scenarios"):
        if cand.is_dir():
            return cand
    raise TrainsimError("no scenarios/ folder next to the trainsim package or in the working directory")


def scenario_files(folder: Path | None = None) -> list[Path]:
    folder = Path(folder) if folder else scenarios_dir()

    def key(p: Path):
        s = p.stem
        return (0, int(s[1:]), s) if s[:1] in "Ss" and s[1:].isdigit() else (1, 0, s)

    return sorted(folder.glob("*.yaml"), key=key)


def run_file(path: str | Path) -> dict:
    """Run one scenario file; the result has at least id, claim, verdict, numbers, assumptions."""
    from .kinds import load_doc

    path = Path(path)
    doc = load_doc(path)
    kind = doc.get("kind")
    if not kind:
        raise TrainsimError("missing key", field="kind", where=str(path))
    t0 = time.perf_counter()
    try:
        out = handler(kind)(doc, path.parent)
    except TrainsimError as exc:
        if exc.where is None:
            raise TrainsimError(str(exc), where=str(path)) from None
        raise
    for k in REQUIRED:
        out.setdefault(k, doc.get(k) if k in ("id", "claim") else None)
    out.setdefault("file", str(path))
    out["seconds"] = time.perf_counter() - t0
    return out


def run_all(folder: Path | None = None) -> list[dict]:
    return [run_file(p) for p in scenario_files(folder)]
