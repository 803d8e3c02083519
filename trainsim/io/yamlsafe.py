"""A hardened YAML loader for user files: safe constructors only, plus limits checked while parsing.

PyYAML's ``safe_load`` already refuses arbitrary Python objects; this loader also refuses what makes a small
file expensive or ambiguous (see :data:`LIMITS`):

* duplicate keys in a mapping (YAML 1.2 says keys are unique; PyYAML silently keeps the last);
* more than ``aliases`` alias nodes (``*ref``), and more than ``nodes`` nodes once aliases are expanded
  (the "billion laughs" tree: a few lines that expand to 10^9 strings for whatever walks the result);
* nesting deeper than ``depth`` (PyYAML's composer recurses and hits Python's recursion limit);
* a scalar longer than ``scalar_chars`` and a document longer than ``file_chars``, checked before parsing.

Every refusal is one :class:`TrainsimError` line naming the file and the line.
"""
from __future__ import annotations

from pathlib import Path

import yaml
from yaml.events import AliasEvent

from ..errors import TrainsimError, short
from .files import read_text

#: limits for user YAML; real specs use a handful of aliases, depth < 10 and scalars < 1 kB
LIMITS = {"file_chars": 1_000_000, "scalar_chars": 20_000, "depth": 64, "aliases": 100, "nodes": 200_000}


def _line(node_or_mark) -> str:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    line = getattr(mark, "line", None)
    return f" at line {line + 1}" if line is not None else ""


class _Limited(yaml.SafeLoader):
    """SafeLoader that counts depth, aliases and expanded nodes while composing, and rejects duplicate keys."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._sizes: dict[int, int] = {}   # id(node) -> expanded node count, for alias expansion
        self._total = 0

    def compose_node(self, parent, index):
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > LIMITS["aliases"]:
                raise TrainsimError(f"more than {LIMITS['aliases']} YAML aliases{_line(self.peek_event())}; "
                                    "expected a plain document")
            node = super().compose_node(parent, index)
            self._count(self._sizes.get(id(node), 1), node)
            return node
        self._depth += 1
        if self._depth > LIMITS["depth"]:
            raise TrainsimError(f"YAML nested deeper than {LIMITS['depth']} levels{_line(self.peek_event())}")
        try:
            before = self._total
            node = super().compose_node(parent, index)
            self._count(1, node)
            self._sizes[id(node)] = self._total - before
        finally:
            self._depth -= 1
        return node

    def _count(self, n: int, node) -> None:
        self._total += n
        if self._total > LIMITS["nodes"]:
            raise TrainsimError(f"YAML expands to more than {LIMITS['nodes']:,} nodes{_line(node)} "
                                "(aliases nested in aliases?); expected a plain document")

    def construct_scalar(self, node):
        value = super().construct_scalar(node)
        if isinstance(value, str) and len(value) > LIMITS["scalar_chars"]:
            raise TrainsimError(f"a {len(value):,}-character string{_line(node)}; expected at most "
                                f"{LIMITS['scalar_chars']:,}")
        return value

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:  # the keys written here (merged '<<' keys may be overridden)
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise TrainsimError(f"a mapping key that is a list or mapping{_line(key_node)}; "
                                        "expected a plain key") from None
                if key in seen:
                    raise TrainsimError(f"duplicate key {short(key)}{_line(key_node)}; expected each key once")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, *, where: str | None = None):
    """Parse one YAML document with :class:`_Limited`; every problem is a one-line :class:`TrainsimError`."""
    return _load(text, where, lines=False)[0]


def load_yaml_lines(text: str, *, where: str | None = None) -> tuple[object, dict[str, int]]:
    """:func:`load_yaml` plus where each key and list item starts: ``{"plan.tp": 7, "teachers.0": 12, ...}``
    (dotted paths as pydantic and :class:`TrainsimError` name fields; line numbers from 1). A node reached again
    through an alias is not walked again, and at most ``LIMITS["nodes"]`` paths are recorded."""
    return _load(text, where, lines=True)


def _key_lines(node, prefix: str, out: dict[str, int], seen: set[int]) -> None:
    """Record the first line of every key (and list item) under ``node`` in ``out``, keyed by dotted path."""
    if id(node) in seen or len(out) >= LIMITS["nodes"]:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            path = f"{prefix}{key_node.value}"
            out.setdefault(path, key_node.start_mark.line + 1)
            _key_lines(value_node, path + ".", out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}{i}"
            out.setdefault(path, item.start_mark.line + 1)
            _key_lines(item, path + ".", out, seen)


def _load(text: str, where: str | None, lines: bool) -> tuple[object, dict[str, int]]:
    if len(text) > LIMITS["file_chars"]:
        raise TrainsimError(f"{len(text):,} characters; expected at most {LIMITS['file_chars']:,}", where=where)
    try:
        loader = _Limited(text)
        try:
            if not lines:
                return loader.get_single_data(), {}
            node = loader.get_single_node()          # what get_single_data does, keeping the node tree
            data = loader.construct_document(node) if node is not None else None
            found: dict[str, int] = {}
            if node is not None:
                _key_lines(node, "", found, set())
            return data, found
        finally:
            loader.dispose()
    except TrainsimError as exc:
        if exc.where is None and where is not None:
            raise TrainsimError(str(exc), where=where) from None
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "syntax error"
        raise TrainsimError(f"not valid YAML{_line(mark)}: {problem}", where=where) from None
    except RecursionError:
        raise TrainsimError(f"YAML nested too deeply; expected at most {LIMITS['depth']} levels",
                            where=where) from None
    except (ValueError, OverflowError, TypeError) as exc:  # e.g. a timestamp out of range
        raise TrainsimError(f"not valid YAML: {short(str(exc))}", where=where) from None


def read_yaml(path: str | Path, *, what: str = "file"):
    """Read ``path`` as UTF-8 (:func:`~trainsim.io.files.read_text`) and parse it with :func:`load_yaml`."""
    return load_yaml(read_text(path, what=what), where=str(path))


def load_json(text: str, *, where: str | None = None):
    """Parse JSON with the same limits as :func:`load_yaml` (duplicate keys, depth, size) as one-line errors."""
    import json

    if len(text) > LIMITS["file_chars"]:
        raise TrainsimError(f"{len(text):,} characters; expected at most {LIMITS['file_chars']:,}", where=where)

    def pairs(items):
        out = {}
        for k, v in items:
            if k in out:
                raise TrainsimError(f"duplicate key {short(k)}; expected each key once", where=where)
            out[k] = v
        return out

    depth = 0
    for ch in text:  # bracket depth, linear; strings may hold brackets, so this bound is conservative
        if ch in "[{":
            depth += 1
            if depth > LIMITS["depth"] * 4:
                raise TrainsimError(f"JSON nested deeper than {LIMITS['depth'] * 4} levels", where=where)
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise TrainsimError(f"not valid JSON at line {exc.lineno}: {exc.msg}", where=where) from None
    except (RecursionError, ValueError) as exc:
        raise TrainsimError(f"not valid JSON: {short(str(exc))}", where=where) from None
