"""YAML reading, safe only: libyaml's C loader when PyYAML was built with it, else PyYAML's pure-Python SafeLoader.
Both build only plain Python objects (no tags that run code).

Packaged data files (the catalog, calibration, assumptions) are read on every command, and building Python
objects from YAML dominates their cost even with libyaml. :func:`load_data` therefore keeps a JSON copy of each
parsed file in the user's cache directory (``$TRAINSIM_CACHE``, else ``$XDG_CACHE_HOME/trainsim``, else
``~/.cache/trainsim``), named by the SHA-256 of the YAML text: an edited file has a new hash and is parsed again,
and a cache that cannot be written or read is simply not used. JSON holds only plain data, so reading it runs
no code; a file whose YAML holds other types (dates) is not cached.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml
from .errors import TrainsimError

try:
    from yaml import CSafeLoader as Loader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as Loader


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with the fastest safe loader available."""
    return yaml.load(text, Loader=Loader)


def sourced_values(doc: dict | None, what: str, where: str) -> dict[str, Any]:
    """``{name: {value, source}}`` entries of a sourced data file as ``{name: value}``; an entry without a value
    or a source is a one-line error naming ``where`` (constants, search limits: every number carries its source)."""
    out = {}
    for k, v in (doc or {}).items():
        if not isinstance(v, dict) or "value" not in v or not v.get("source"):
            raise TrainsimError(f"{what} '{k}' needs a value and a source", where=where)
        out[k] = v["value"]
    return out


def _cache_dir() -> Path:
    env = os.environ.get("TRAINSIM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "trainsim"


def load_data(text: str):
    """A packaged YAML file's content (``text``), through the JSON cache described in the module docstring."""
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()
    path = _cache_dir() / f"{key}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    doc = safe_load(text)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, allow_nan=False), encoding="utf-8")
        if json.loads(tmp.read_text(encoding="utf-8")) == doc:     # round-trips exactly: plain data only
            os.replace(tmp, path)
        else:
            tmp.unlink()
    except (OSError, TypeError, ValueError):
        pass
    return doc
