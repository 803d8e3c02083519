"""Reading a Hugging Face ``config.json`` with its family's defaults.

A key absent from the file takes the default of the family's ``transformers`` configuration class (each family
module cites the class its defaults come from); a key present with ``null`` keeps ``None`` (e.g. DeepSeek-V2-Lite's
``q_lora_rank: null`` = no query compression). Several families spell one quantity in more than one way (GPT-2
``n_embd``, Falcon ``n_head_kv`` / ``num_kv_heads``), so every read names its accepted keys, first preferred.
"""
from __future__ import annotations

import builtins

import math
from collections.abc import Mapping
from typing import Any

from ...errors import TrainsimError
from ...errors import short
from ...types_checked import MAX_DIM

_REQUIRED = object()


class Cfg:
    """One config.json (a mapping) of ``family`` plus that family's defaults."""

    def __init__(self, raw: Mapping[str, Any], family: str, defaults: Mapping[str, Any] | None = None,
                 where: str | None = None):
        self.raw = dict(raw)
        self.family = family
        self.defaults = dict(defaults or {})
        self.where = where

    def error(self, message: str, key: str | None = None) -> TrainsimError:
        """A one-line error about this config.json, naming the family and ``key``."""
        return TrainsimError(f"{message} (config.json of family '{self.family}')", field=key, where=self.where)

    def has(self, key: str) -> bool:
        """Whether the file itself gives ``key`` a non-null value (family defaults not consulted)."""
        return self.raw.get(key) is not None

    def get(self, *keys: str, default: Any = _REQUIRED) -> Any:
        """The first of ``keys`` present in the file (its value, even ``None``), else the family default of the
        first key that has one, else ``default``; a missing required key is an error naming it."""
        for k in keys:
            if k in self.raw:
                return self.raw[k]
        for k in keys:
            if k in self.defaults:
                return self.defaults[k]
        if default is _REQUIRED:
            raise self.error(f"missing '{keys[0]}'", keys[0])
        return default

    def int(self, *keys: str, default: Any = _REQUIRED) -> int:
        """A positive integer (integral floats such as ``4096.0`` accepted); ``None`` falls back to ``default``."""
        v = self.get(*keys, default=default)
        if v is None:
            if default is _REQUIRED or default is None:
                raise self.error(f"'{keys[0]}' is null; expected a positive integer", keys[0])
            v = default
        return _as_int(self, keys[0], v)

    def opt_int(self, *keys: str, default: builtins.int | None = None) -> builtins.int | None:
        """An integer or ``None`` (absent, null or 0 where 0 means 'off', as ``q_lora_rank: 0``)."""
        v = self.get(*keys, default=default)
        if v is None or v == 0:
            return None
        return _as_int(self, keys[0], v)

    def bool(self, *keys: str, default: Any = _REQUIRED) -> bool:
        """A boolean read like :meth:`get` (null reads as false); another type is an error."""
        v = self.get(*keys, default=default)
        if v is None:
            return False
        if not isinstance(v, (bool, int)):
            raise self.error(f"'{keys[0]}' is {v!r}; expected true or false", keys[0])
        return bool(v)

    def list(self, *keys: str, default: Any = None) -> builtins.list[Any] | None:
        """A list read like :meth:`get` (null reads as ``None``); another type is an error."""
        v = self.get(*keys, default=default)
        if v is None:
            return None
        if not isinstance(v, (list, tuple)):
            raise self.error(f"'{keys[0]}' is {v!r}; expected a list", keys[0])
        return list(v)


def _as_int(c: Cfg, key: str, v: Any) -> int:
    """An integer read from a config: booleans, non-integral, non-finite, negative and absurdly large values
    (above :data:`~trainsim.types_checked.MAX_DIM`) are one-line errors naming the key and the value."""
    if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v)
            or not 0 <= v <= MAX_DIM):
        raise c.error(f"'{key}' is {short(v)}; expected an integer in [0, {MAX_DIM:,}]", key)
    return int(v)
