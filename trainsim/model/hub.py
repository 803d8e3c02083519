"""Models as people have them: a folder holding ``config.json``, or a Hugging Face Hub id (``Qwen/Qwen2.5-7B``)
resolved from the local Hugging Face cache -- never from the network.

Cache layout (huggingface_hub "Understand caching" guide): ``$HF_HUB_CACHE`` (default ``$HF_HOME/hub``, with
``HF_HOME`` defaulting to ``~/.cache/huggingface``) holds ``models--{org}--{name}/snapshots/{commit}/config.json``
and ``refs/main`` naming the commit of the main branch.
"""
from __future__ import annotations

from typing import Any

import os
import re
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def cache_dirs() -> list[Path]:
    """Where a Hugging Face hub cache may be, in the order huggingface_hub reads its settings."""
    out = []
    if os.environ.get("HF_HUB_CACHE"):
        out.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        out.append(Path(os.environ["HF_HOME"]) / "hub")
    if os.environ.get("TRANSFORMERS_CACHE"):   # legacy setting
        out.append(Path(os.environ["TRANSFORMERS_CACHE"]))
    out.append(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface" / "hub")
    return list(dict.fromkeys(out))


def cached_config(repo_id: str) -> Path | None:
    """The ``config.json`` of ``repo_id`` in the local cache (main branch's snapshot first), or None."""
    for root in cache_dirs():
        repo = root / ("models--" + repo_id.replace("/", "--"))
        snaps = repo / "snapshots"
        if not snaps.is_dir():
            continue
        ref = repo / "refs" / "main"
        if ref.is_file():
            cfg = snaps / ref.read_text().strip() / "config.json"
            if cfg.is_file():
                return cfg
        found = sorted(snaps.glob("*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        if found:
            return found[0]
    return None


def model_name(cfg: dict[str, Any], path: Path, repo_id: str | None = None) -> str:
    """A model's name: the Hub id when loaded from the cache, else the config's ``_name_or_path`` (its last
    part), else the folder holding ``config.json`` (a file named otherwise gives its stem), else
    ``architectures[0]``."""
    if repo_id:
        return repo_id.split("/")[-1]
    nop = str(cfg.get("_name_or_path") or "").rstrip("/")
    if nop:
        return nop.split("/")[-1]
    if path.name != "config.json":
        return path.stem
    if path.parent.name and path.parent.name not in (".", ""):
        return path.parent.resolve().name
    arch = cfg.get("architectures") or []
    return arch[0] if arch else path.stem
