"""Resuming an interrupted sweep: which points the part files already hold.

A point is identified by its index in the product and checked by its ``point_key`` (a hash of what it sets), and
the parts must carry the sweep's digest (spec, axes, record, assumptions, trainsim version): a changed spec is
refused rather than mixed. Finished points are never recomputed; the merged file equals an uninterrupted run's.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import TrainsimError
from ..io import check_suffix
from .writer import read_metadata, read_parts


def finished_points(spec, folder: Path) -> set[int]:
    """Indices of the points already written to ``folder`` (empty when there is none)."""
    folder = Path(folder)
    if not folder.is_dir():
        return set()
    table = read_parts(spec, folder, columns=["point", "point_key"])
    if table is None:
        return set()
    done: set[int] = set()
    for i, key in zip(table.column("point").to_pylist(), table.column("point_key").to_pylist()):
        if not 0 <= i < spec.n_points or spec.point(i).key != key:
            raise TrainsimError(f"{folder}: point {i} does not match this sweep spec; pass --overwrite to start over")
        done.add(int(i))
    return done


def check_output(out: Path) -> None:
    """Refuse an output that a sweep must not replace: a symlink, a folder, or an existing file that is not a
    trainsim sweep result (Parquet with the ``trainsim.sweep.digest`` key); only the sweep's own kind of file is
    ever overwritten. A name with another format's extension (``-o results.csv``) is refused too
    (:func:`trainsim.io.check_suffix`): the file is Parquet whatever it is called."""
    out = check_suffix(out, (".parquet", ".pq"), what="sweep result")
    if out.is_symlink():
        raise TrainsimError("output is a symlink; give a plain file path (symlinks are never followed)",
                            where=str(out))
    if out.is_dir():
        raise TrainsimError("output is a folder; give a file path such as results.parquet", where=str(out))
    if out.exists():
        try:
            meta = read_metadata(out)
        except TrainsimError:
            meta = {}
        if "trainsim.sweep.digest" not in meta:
            raise TrainsimError("output exists and is not a trainsim sweep result; refusing to replace it (choose "
                                "another -o or remove the file)", where=str(out))


def complete_output(spec, out: Path) -> bool:
    """True when ``out`` is the finished result file of this very sweep."""
    out = Path(out)
    if not out.is_file():
        return False
    try:
        meta = read_metadata(out)
    except TrainsimError:
        return False
    return meta.get("trainsim.sweep.digest") == spec.digest
