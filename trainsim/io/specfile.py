"""One loader for every spec file a user gives: run, serving, post-training, sweep, and the report's
"run spec or scenario" question.

:func:`load_spec_file` reads the file through the hardened edge (:func:`~trainsim.io.files.read_text`,
:func:`~trainsim.io.yamlsafe.load_yaml_lines`), validates the document and turns every problem into one
:class:`~trainsim.errors.TrainsimError` line naming the file, the field, the offending value, what was
expected and the line the field is written on::

    run.yaml: plan.tp: Input should be a valid integer ...; got 'eight' (line 9)

Each spec kind keeps its own pydantic model and resolver (``parse_run``, ``parse_serving``, ...); this module
is the one place where a file becomes a document and where the line number is added, so the kinds cannot
drift apart again.
"""
from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any, Callable

from ..errors import TrainsimError, from_validation
from .files import read_text
from .yamlsafe import load_yaml_lines


def line_of(field: str | None, lines: dict[str, int]) -> int | None:
    """The line of ``field`` (dotted path) in a file whose key lines are ``lines``; a field that is not
    written (a missing key, a default) falls back to its nearest written parent; None when nothing is."""
    if not field:
        return None
    parts = str(field).split(".")
    while parts:
        n = lines.get(".".join(parts))
        if n is not None:
            return n
        parts.pop()
    return None


def field_lines(path: str | Path) -> dict[str, int]:
    """The line of every key of the spec file ``path`` (:func:`~trainsim.io.yamlsafe.load_yaml_lines`), read
    again for an error raised after the file was parsed (:func:`trainsim.errors.located`); empty when the file
    cannot be read or parsed now."""
    try:
        return load_yaml_lines(read_text(path), where=str(path))[1]
    except TrainsimError:
        return {}


def located(exc: TrainsimError, where: Any) -> TrainsimError:
    """``exc`` naming the spec file ``where`` when it names none (an error raised below the spec parser, e.g. by
    the engine on a stated plan), and `` (line N)`` where it names a field written in that file, as the parser's
    own errors do (:func:`with_line`, the file's lines read again by :func:`field_lines`); a path-like ``where``
    only, never a mapping. Returns ``exc`` itself."""
    if not isinstance(where, (str, PurePath)):
        return exc
    if exc.where is None:
        exc.where = str(where)
        exc.args = (f"{where}: {exc.args[0]}",) + exc.args[1:]
    if exc.field and exc.where == str(where):
        lines = field_lines(where)
        if lines:
            with_line(exc, str(where), lines)
    return exc


def with_line(exc: TrainsimError, path: str, lines: dict[str, int]) -> TrainsimError:
    """``exc`` with `` (line N)`` appended when it names a field of the file ``path`` (a sweep's inline base
    run spec reports its fields as ``PATH: base``; they are found under ``base.``), and ``path`` in front when
    it names a field but no file. Returns ``exc`` itself."""
    if exc.field is None:
        return exc
    if exc.where is None:   # a field parser that does not know the file (units.parse_count): it is this file's
        exc.where = path
        exc.args = (f"{path}: {exc}",)
    if exc.where == path:
        field = exc.field
    elif exc.where == f"{path}: base":
        field = f"base.{exc.field}"
    else:
        return exc
    text = str(exc)
    n = line_of(field.lstrip("-"), lines)
    if n is not None and not text.endswith(f"(line {n})"):
        exc.args = (f"{text} (line {n})",)
    return exc


def spec_kind(doc: Any) -> str:
    """run | serving | posttrain | sweep | scenario, from the keys a spec has (run: the rest)."""
    if "axes" in doc:
        return "sweep"
    if "clusters" in doc:
        return "posttrain"
    if "serving" in doc:
        return "serving"
    if "kind" in doc:
        return "scenario"
    return "run"


#: the kind each reader expects (``what``) and the command that reads each kind
_KIND_OF_WHAT = {"run spec": "run", "serving spec": "serving", "post-training spec": "posttrain",
                 "sweep spec": "sweep"}
_COMMAND_OF = {"run": "trainsim estimate / plan / size", "serving": "trainsim infer",
               "posttrain": "trainsim posttrain", "sweep": "trainsim sweep", "scenario": "trainsim scenario"}
SPEC_COMMAND = _COMMAND_OF
#: each kind as a sentence names it
SPEC_LABEL = {"run": "run", "serving": "serving", "posttrain": "post-training", "sweep": "sweep",
              "scenario": "scenario"}


def _other_kind(doc: Any, what: str) -> str:
    """' -- this is a serving spec (trainsim infer)' when ``doc`` has the marker key of another spec kind than
    the reader's (a serving spec given to ``estimate``); else ''."""
    want = _KIND_OF_WHAT.get(what)
    if want is None or not isinstance(doc, dict):
        return ""
    got = spec_kind(doc)
    if got == want or (got == "run" and "training" not in doc):   # "run" is the fallback: only with training
        return ""
    return f" -- this is a {got} spec ({_COMMAND_OF[got]})"


def yaml_shape(doc: Any) -> str:
    """What a YAML document that is not a mapping holds, in a reader's words: ``an empty file`` (YAML reads
    nothing as null), ``a list``, ``a string``, ``a number``; never a Python type name (NoneType)."""
    if doc is None:
        return "an empty file"
    if isinstance(doc, list):
        return "a list"
    if isinstance(doc, str):
        return "a string"
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        return "a number"
    return f"a {type(doc).__name__}"


def load_spec_file(path: str | Path, model: Any = None, /, *, what: str = "spec", text: str | None = None,
                   **kw: Any) -> Any:
    """Read the spec file ``path`` and validate it with ``model``.

    ``model`` is a pydantic model class (the result is ``model.model_validate(doc)``), a parser
    ``model(doc, base_dir=PATH.parent, where=str(PATH), **kw)`` (``parse_run``, ``parse_serving``, ...), or None
    (the document itself, which must be a mapping). ``what`` names the kind in errors ("run spec"); ``text``
    is the file's text when the caller has read it already (the sweep keeps it). Every problem is one
    :class:`TrainsimError` line: file, field, value, what was expected, and ``(line N)`` for a field that is
    written in the file.
    """
    from pydantic import BaseModel, ValidationError

    path = Path(path)
    where = str(path)
    if text is None:
        text = read_text(path, what=what)
    doc, lines = load_yaml_lines(text, where=where)
    try:
        if model is None:
            if not isinstance(doc, dict):
                raise TrainsimError(f"expected a mapping of {what} keys, got {yaml_shape(doc)}", where=where)
            return doc
        if isinstance(model, type) and issubclass(model, BaseModel):
            if not isinstance(doc, dict):
                raise TrainsimError(f"expected a mapping of {what} keys, got {yaml_shape(doc)}", where=where)
            try:
                return model.model_validate(doc)
            except ValidationError as exc:
                raise from_validation(exc, where, model) from None
        parse: Callable[..., Any] = model
        return parse(doc, base_dir=path.parent, where=where, **kw)
    except TrainsimError as exc:
        exc = with_line(exc, where, lines)
        hint = _other_kind(doc, what)
        if hint:
            exc.args = (f"{exc}{hint}",)
        raise exc from None
