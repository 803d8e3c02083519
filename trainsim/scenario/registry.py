"""Scenario kinds: a scenario YAML names its ``kind``; each kind is answered by one registered function.

A handler takes ``(doc: dict, base_dir: pathlib.Path)`` and returns a dict with at least ``id``, ``claim``,
``verdict``, ``numbers``, ``assumptions`` (and optionally ``best_plan``, ``ranges``, ``validation_error``).
Modules register their kinds with :func:`register`; :data:`KIND_MODULES` lists the modules to import.
"""
from __future__ import annotations

from importlib import import_module
from typing import Callable

HANDLERS: dict[str, Callable] = {}

# modules that define scenario kinds (imported lazily by `handler`)
KIND_MODULES = ("trainsim.scenario.kinds", "trainsim.posttrain.scenario")


def register(kind: str):
    """A decorator that registers its function as the handler of scenario kind ``kind``."""
    def deco(fn):
        HANDLERS[kind] = fn
        return fn
    return deco


def handler(kind: str) -> Callable:
    """The handler of scenario kind ``kind`` (every kind module imported first); an unknown kind raises with
    the nearest names."""
    from ..errors import unknown

    for mod in KIND_MODULES:
        try:
            import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
    if kind not in HANDLERS:
        raise unknown("scenario kind", kind, HANDLERS, field="kind")
    return HANDLERS[kind]
