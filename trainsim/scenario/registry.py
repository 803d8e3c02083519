"""Scenario kinds: a scenario YAML names its ``kind``; each kind is answered by one registered function.

A handler takes ``(doc: dict, base_dir: pathlib.Path)`` and returns a dict with at least ``id``, ``claim``,
``verdict``, ``numbers``, ``assumptions`` (and optionally ``best_plan``, ``ranges``, ``validation_error``).
Modules register their kinds with :func:`register` when imported; :data:`KIND_MODULES` lists them, and
:mod:`trainsim.scenario.run` (the one way scenario files are run) imports them at its top.
"""
from __future__ import annotations

from typing import Callable
from ..errors import unknown

HANDLERS: dict[str, Callable] = {}

# modules that define scenario kinds (imported at the top of trainsim.scenario.run)
KIND_MODULES = ("trainsim.scenario.kinds", "trainsim.posttrain.scenario")


def register(kind: str):
    """A decorator that registers its function as the handler of scenario kind ``kind``."""
    def deco(fn):
        HANDLERS[kind] = fn
        return fn
    return deco


def handler(kind: str) -> Callable:
    """The handler of scenario kind ``kind`` (registered by the modules of :data:`KIND_MODULES`); an unknown kind
    raises with the nearest names."""
    if kind not in HANDLERS:
        raise unknown("scenario kind", kind, HANDLERS, field="kind")
    return HANDLERS[kind]
