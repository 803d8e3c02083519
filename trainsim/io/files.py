"""Reading text files as UTF-8 with a size limit, and writing outputs atomically without following symlinks.

Outputs go to a temporary file in the target's folder and are renamed over the target (``os.replace`` is atomic
on POSIX), so a killed run never leaves half a file; an existing output is replaced only with ``force``, and a
symlink is never followed (the link itself would be replaced, never its target).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from ..errors import TrainsimError

#: the largest spec file read (bytes); real specs are a few kB, catalog-sized model files under 1 MB
MAX_FILE_BYTES = 4 * 2**20


def require_file(path: str | Path, *, what: str = "file") -> Path:
    """``path`` when it is a file; else one line: 'no such file' or, for a folder, 'expected a WHAT, got a folder'
    (the words :func:`read_text` uses), not 'no such file' for a folder that exists."""
    p = Path(path)
    if not p.exists():
        raise TrainsimError(f"no such file ({what})", where=str(p))
    if not p.is_file():
        raise TrainsimError(f"expected a {what}, got a folder or special file", where=str(p))
    return p


def read_text(path: str | Path, *, what: str = "file", max_bytes: int = MAX_FILE_BYTES) -> str:
    """The text of ``path`` decoded as UTF-8 (a UTF-8 BOM is dropped); any other encoding, a binary file,
    a folder or a file over ``max_bytes`` is a one-line :class:`TrainsimError` naming the file."""
    p = Path(path)
    where = str(p)
    try:
        if not p.exists():
            raise TrainsimError(f"no such file ({what})", where=where)
        if not p.is_file():
            raise TrainsimError(f"expected a {what}, got a folder or special file", where=where)
        size = p.stat().st_size
        if size > max_bytes:
            raise TrainsimError(f"{what} is {size:,} bytes; expected at most {max_bytes:,}", where=where)
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise TrainsimError(f"cannot read {what}: {exc.strerror or exc}", where=where) from None
    if len(data) > max_bytes:
        raise TrainsimError(f"{what} is over {max_bytes:,} bytes", where=where)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TrainsimError("file is UTF-16; expected UTF-8 text (save it as UTF-8)", where=where)
    if b"\x00" in data:
        nul = data.index(b"\x00")
        raise TrainsimError(f"binary file (NUL byte at offset {nul}); expected UTF-8 text", where=where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrainsimError(f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}; expected UTF-8 text",
                            where=where) from None
    return text.removeprefix("\ufeff")


def check_suffix(path: str | Path, suffixes: tuple[str, ...], *, what: str = "output", field: str = "-o") -> Path:
    """Refuse an output path whose extension names another format than the file written (``report -o r.pdf``
    wrote HTML, ``sweep -o r.csv`` Parquet, each under a name that says otherwise): a path with an extension must
    end in one of ``suffixes`` (any case); one without an extension is taken as given."""
    p = Path(path)
    if suffixes and p.suffix and p.suffix.lower() not in suffixes:
        raise TrainsimError(f"the {what} is written as {suffixes[0][1:].upper()}; expected a path ending in "
                            f"{' or '.join(suffixes)}, got {p.suffix!r}", field=field, where=str(p))
    return p


def check_output_path(path: str | Path, *, force: bool = False, what: str = "output",
                      suffixes: tuple[str, ...] = ()) -> Path:
    """Refuse an output path that exists (unless ``force``), is a folder or, given ``suffixes``, names another
    format (:func:`check_suffix`); a missing folder is created later."""
    p = check_suffix(path, suffixes, what=what)
    if p.is_dir() and not p.is_symlink():
        raise TrainsimError(f"{what} is a folder; expected a file path", where=str(p))
    if (p.exists() or p.is_symlink()) and not force:
        raise TrainsimError(f"{what} exists; pass --force to replace it", where=str(p))
    if p.parent.exists() and not p.parent.is_dir():
        raise TrainsimError(f"{str(p.parent)!r} is not a folder", where=str(p))
    return p


def check_output_dir(path: str | Path, *, field: str, what: str = "folder") -> Path:
    """Refuse, before any work, an output folder (``report --png``, ``sweep --plots``) that exists and is not a
    folder, or whose parent is a file; a missing folder is created when written."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise TrainsimError(f"{what} exists and is not a folder; expected a folder path", field=field, where=str(p))
    parent = next((q for q in p.parents if q.exists()), None)
    if parent is not None and not parent.is_dir():
        raise TrainsimError(f"{str(parent)!r} is not a folder", field=field, where=str(p))
    return p


def write_atomic(path: str | Path, data: bytes | str, *, force: bool = False, what: str = "output") -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    An existing ``path`` is replaced only with ``force``; a symlink at ``path`` is replaced by the new file
    (its target is never written).
    """
    p = check_output_path(path, force=force, what=what)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainsimError(f"cannot create the folder of the {what}: {exc.strerror or exc}", where=str(p)) from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
    except OSError as exc:   # named the hidden temporary file ('.report.html.x1y2.tmp'), not the path asked for
        raise TrainsimError(f"cannot write the {what}: {exc.strerror or exc}", where=str(p)) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, p)  # replaces a symlink itself, never its target
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.strerror:   # a full disk or a vanished folder: the target, one line
            raise TrainsimError(f"cannot write the {what}: {exc.strerror}", where=str(p)) from None
        raise
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def stderr_ok(console=None) -> bool:
    """Whether live progress may be drawn: a given console always; else only when standard error is a terminal (a
    file or a pipe gets summary lines alone)."""
    if console is not None:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
