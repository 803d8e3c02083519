"""Parquet output (pyarrow, imported lazily): rows stream into part files as batches finish, and the parts are
merged into one file sorted by ``point`` at the end.

Layout while a sweep runs: ``OUT.parts/part-NNNNNN.parquet``, each written to a temporary name and renamed, so
a killed sweep leaves only whole part files. Every part and the final file carry the same schema metadata
(:meth:`SweepSpec.metadata`: the spec text, resolved base run, axes, trainsim version and a digest of everything
that decides the results), so ``--resume`` can refuse parts of a different sweep.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from ..errors import TrainsimError
from ..io import require_file


def pa():
    """The ``pyarrow`` module; missing, a one-line error saying how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        raise TrainsimError("sweeps write Parquet with pyarrow: pip install 'trainsim[sweep]'") from None
    return pyarrow


def arrow_schema(spec):
    """The Arrow schema of the sweep's columns, with the spec's metadata."""
    p = pa()
    types = {"int64": p.int64(), "float64": p.float64(), "string": p.string(), "bool": p.bool_()}
    return p.schema([p.field(name, types[t]) for name, t in spec.columns],
                    metadata={k.encode(): v.encode() for k, v in spec.metadata().items()})


def _coerce(rows: list[dict], spec) -> list[dict]:
    """String columns hold text (an axis may mix numbers and words); numbers stay numbers."""
    strings = [c for c, t in spec.columns if t == "string"]
    floats = [c for c, t in spec.columns if t == "float64"]
    out = []
    for r in rows:
        r = dict(r)
        for c in strings:
            v = r.get(c)
            if v is not None and not isinstance(v, str):
                r[c] = str(v)
        for c in floats:
            v = r.get(c)
            if isinstance(v, int) and not isinstance(v, bool):
                r[c] = float(v)
        out.append(r)
    return out


def to_table(spec, rows: list[dict]):
    """An Arrow table of ``rows``, coerced to the sweep's column types."""
    return pa().Table.from_pylist(_coerce(rows, spec), schema=arrow_schema(spec))


def parts_dir(out: str | Path) -> Path:
    """The folder of part files beside output ``out`` (``<out>.parts``)."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


class PartWriter:
    """Buffers finished rows and writes a part file every ``flush_rows`` rows or ``flush_seconds`` seconds."""

    def __init__(self, spec, folder: Path, *, flush_rows: int = 1024, flush_seconds: float = 5.0):
        self.spec = spec
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.flush_rows = max(1, int(flush_rows))
        self.flush_seconds = float(flush_seconds)
        self.buffer: list[dict] = []
        self.last = time.monotonic()
        self.seq = 1 + max((int(p.stem.split("-")[1]) for p in self.folder.glob("part-*.parquet")
                            if p.stem.split("-")[1].isdigit()), default=0)
        self.rows_written = 0

    def add(self, rows: list[dict]) -> None:
        """Buffer ``rows``; flush when ``flush_rows`` are buffered or ``flush_seconds`` have passed."""
        self.buffer.extend(rows)
        if len(self.buffer) >= self.flush_rows or time.monotonic() - self.last >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as the next Parquet part file (atomically, through a temporary name)."""
        self.last = time.monotonic()
        if not self.buffer:
            return
        import pyarrow.parquet as pq

        table = to_table(self.spec, self.buffer)
        final = self.folder / f"part-{self.seq:06d}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, final)
        self.seq += 1
        self.rows_written += len(self.buffer)
        self.buffer = []

    def close(self) -> None:
        """Flush the remaining rows."""
        self.flush()


def read_parts(spec, folder: Path, *, columns=None):
    """The part files of ``folder`` as one table (unsorted); parts of another sweep raise, unreadable parts
    (a crash mid-write leaves none, but a disk may) are removed and their points recomputed."""
    p = pa()
    import pyarrow.parquet as pq

    folder = Path(folder)
    for tmp in folder.glob("*.tmp"):
        tmp.unlink()
    tables = []
    for part in sorted(folder.glob("part-*.parquet")):
        try:
            meta = pq.read_schema(part).metadata or {}
            digest = meta.get(b"trainsim.sweep.digest", b"").decode()
            if digest != spec.digest:
                raise TrainsimError(f"{folder} holds results of a different sweep spec or trainsim version "
                                    f"(digest {digest or 'none'} vs {spec.digest}); pass --overwrite to start over")
            tables.append(pq.read_table(part, columns=columns))
        except TrainsimError:
            raise
        except Exception:  # noqa: BLE001 - a damaged part: drop it, its points run again
            part.unlink()
    if not tables:
        return None
    return p.concat_tables(tables)


def finalize(spec, folder: Path, out: Path) -> int:
    """Merge the parts into ``out`` (sorted by point, one row per point, the sweep's schema metadata) and remove
    the parts folder. Returns the number of rows."""
    import pyarrow.parquet as pq

    table = read_parts(spec, folder)
    if table is None:
        table = arrow_schema(spec).empty_table()
    table = table.sort_by([("point", "ascending")])
    pts = table.column("point").to_numpy()
    if len(pts) > 1:
        import numpy as np

        keep = np.concatenate(([True], pts[1:] != pts[:-1]))
        if not keep.all():
            table = table.filter(pa().array(keep))
    if table.num_rows != spec.n_points:
        raise TrainsimError(f"{folder} holds {table.num_rows} of {spec.n_points} points; rerun with --resume")
    table = table.replace_schema_metadata(arrow_schema(spec).metadata)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    shutil.rmtree(folder, ignore_errors=True)
    return table.num_rows


def read_metadata(path: str | Path) -> dict[str, str]:
    """The trainsim keys of a results file's schema metadata."""
    import pyarrow.parquet as pq

    path = Path(path)
    require_file(path, what="Parquet sweep result")
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:  # noqa: BLE001
        raise TrainsimError(f"not a Parquet file ({exc.__class__.__name__})", where=str(path)) from None
    return {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"trainsim.")}
