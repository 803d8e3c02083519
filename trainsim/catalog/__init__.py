"""The sourced catalog: chips, systems and their uncertainty ranges (data in ``catalog/data``).

See :mod:`trainsim.catalog.load` (catalog files -> runtime objects) and :mod:`trainsim.catalog.resolve`
(run-spec ``system:`` / ``chip:`` values -> runtime objects).
"""
from .load import chips, get_chip, get_system, require_usable, source_text, systems
from .resolve import resolve_chip, resolve_system
from .types import Chip, NetLevel, Range, Sourced, System

__all__ = ["Chip", "NetLevel", "Range", "Sourced", "System", "chips", "get_chip", "get_system",
           "require_usable", "resolve_chip", "resolve_system", "source_text", "systems"]
