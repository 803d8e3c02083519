"""User-facing errors: one line, naming the field, the value and what was expected.

The CLI turns every :class:`TrainsimError` into that one line on stderr and exit code 2.
"""
from __future__ import annotations

import difflib
import math
from typing import Iterable


class TrainsimError(Exception):
    """An input error a person can act on (bad field, unknown id, invalid plan)."""

    def __init__(self, message: str, *, field: str | None = None, where: str | None = None):
        self.field = field
        self.where = where
        prefix = ""
        if where:
            prefix += f"{where}: "
        if field:
            prefix += f"{field}: "
        super().__init__(prefix + message)


def short(value, n: int = 80) -> str:
    """``repr(value)`` cut to ``n`` characters (an error line quotes the offending value, never all of it)."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


#: from here up a count is echoed with 3 significant digits (:func:`readable_count`), not digit by digit
READABLE_EXPONENT_FROM = 1e15


def readable_count(v) -> str:
    """A count echoed in an error line as a person reads it: grouped when whole and below
    :data:`READABLE_EXPONENT_FROM`, 10^15 (``20,000,000``), else 3 significant digits (``1e+30``), never the 31
    digits of ``int(1e30)``."""
    try:
        x = float(v)
    except OverflowError:        # an int with hundreds of digits
        return "more than 1e+308"
    if math.isfinite(x) and abs(x) < READABLE_EXPONENT_FROM and x == int(x):
        return f"{int(x):,}"
    return f"{x:.3g}"


def close_matches(name: str, options: Iterable[str], n: int = 3) -> list[str]:
    """Close matches for an unknown name: difflib ratio, then substring hits (``h100`` -> ``nvidia-h100-sxm5``)."""
    options = list(options)
    close = difflib.get_close_matches(name, options, n=n, cutoff=0.5)
    low = name.lower()
    contain = [opt for opt in options if low and low in opt.lower()]
    # a name the option contains (h100 in nvidia-h100-sxm5) first: difflib alone fills the list with look-alikes
    # (hgx-h800, hgx-h200 for h100) and drops the chip that was meant; very short names contain too much to lead
    hits = (contain + close) if len(low) >= 3 else (close + contain)
    return list(dict.fromkeys(hits))[:n]


#: an unknown name with no close match lists the choices when there are at most this many
LISTED_CHOICES = 20
#: where a person finds the choices of a catalog kind too long to list in one line (more than LISTED_CHOICES)
CATALOG_LISTINGS = {"model": "one of the {n} catalog models (trainsim catalog models lists them), a config.json "
                             "path or a Hugging Face id in the local cache",
                    "chip": "one of the {n} catalog chips (trainsim catalog chips lists them)",
                    "system": "one of the {n} catalog systems (trainsim catalog systems lists them)",
                    "framework": "one of the {n} software-stack profiles (trainsim catalog frameworks lists them)",
                    "catalog id": "one of the {n} catalog ids (trainsim catalog chips | systems | models | "
                                  "frameworks lists them)"}


def unknown(kind: str, name: str, options: Iterable[str], *, field: str | None = None,
            where: str | None = None) -> TrainsimError:
    """The error for an unknown catalog id: ``unknown chip 'h100'; did you mean nvidia-h100-sxm5?``; with no close
    match, what was expected: the choices where they are few (at most :data:`LISTED_CHOICES`), ``unknown plan field
    'foo'; expected one of tp, pp, ...``; else for a catalog kind the command that lists them
    (:data:`CATALOG_LISTINGS`: ``unknown model 'foo'; expected one of the 31 catalog models (trainsim catalog
    models lists them), ...``), and for any other kind their count and a few of them. The README promises each bad
    input says what was expected: an unknown model, chip or framework with no close match said only ``unknown
    model 'foo'``."""
    options = list(options)
    # a name of another type (YAML 'kind: 7') is quoted as its value and matched against nothing (difflib takes
    # strings: 'int' object is not iterable, exit 3)
    hits = close_matches(name, options) if isinstance(name, str) else []
    hint = (f"; did you mean {', '.join(hits)}?" if hits
            else f"; expected one of {', '.join(map(str, options))}" if 0 < len(options) <= LISTED_CHOICES
            else "; expected " + CATALOG_LISTINGS[kind].format(n=len(options)) if kind in CATALOG_LISTINGS and options
            else f"; expected one of {len(options)} choices such as {', '.join(map(str, options[:5]))}"
            if options else "")
    shown = f"'{name}'" if isinstance(name, str) else short(name)
    return TrainsimError(f"unknown {kind} {shown}{hint}", field=field, where=where)


def ambiguous(name: str, meanings: Iterable[str], *, field: str | None = None,
              where: str | None = None) -> TrainsimError:
    """The error for a name that could mean more than one thing, refused rather than read as one of them:
    ``'hbm' is ambiguous: name hbm_capacity or hbm_bandwidth`` (``sensitivity --vary``, sweep axes)."""
    return TrainsimError(f"{name!r} is ambiguous: name {' or '.join(meanings)}", field=field, where=where)


#: endings of the keys that only document a spec (``model_source``, ``chips_note``, ``notes``, ``note``)
NOTE_SUFFIXES = ("source", "note", "notes")


def refuse_unknown_keys(doc: dict, known, *, prefix: str = "", reads: str = "", where: str | None = None) -> None:
    """Refuse a key of ``doc`` outside ``known`` that is not a note or a source (:data:`NOTE_SUFFIXES`): a typo
    such as ``size_for_day`` would otherwise be kept and change nothing. ``prefix``: the field path of ``doc``
    (``inputs.``); ``reads``: who reads ``known``, named when no key is close."""
    known = set(known)
    for k in doc:
        if k not in known and not str(k).endswith(NOTE_SUFFIXES):
            near = close_matches(str(k), sorted(known))
            hint = f"did you mean {', '.join(near)}?" if near else f"{reads or 'expected'} {', '.join(sorted(known))}"
            raise TrainsimError(f"unknown key (typo? {hint})", field=f"{prefix}{k}", where=where)


def _model_in(annotation):
    """The pydantic model an annotation holds (``M``, ``M | None``, ``list[M]``, ``dict[str, M]``), else None."""
    from typing import get_args

    from pydantic import BaseModel
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        m = _model_in(arg)
        if m is not None:
            return m
    return None


def _keys_at(model, loc) -> list[str]:
    """The keys the pydantic ``model`` takes at the mapping ``loc`` points to (list indices and mapping keys
    that are not fields are stepped over); [] where the path leaves the models."""
    cur = model
    for x in loc:
        if cur is None:
            return []
        if isinstance(x, str) and x in cur.model_fields:
            cur = _model_in(cur.model_fields[x].annotation)
    return [] if cur is None else list(cur.model_fields)


def _places_of(model, key: str, skip) -> list[str]:
    """Where else the pydantic ``model`` takes ``key``: 'at the top level' and 'under SECTION' for the sections
    (``latency``) one level down whose model has that field, except the mapping ``skip`` (where it was written)."""
    if model is None:
        return []
    out = ["at the top level"] if key in model.model_fields and tuple(skip) != () else []
    for name, f in model.model_fields.items():
        sub = _model_in(f.annotation)
        if sub is not None and key in sub.model_fields and tuple(skip) != (name,):
            out.append(f"under {name} ({name}.{key})")
    return out


def _union_branch(part) -> bool:
    """Whether ``part`` of a pydantic error location names the branch of a union it tried (``constrained-str``,
    ``str``, ``int``, ``literal['a','b']``, ``list[int]``, ``dict[str,any]``, ``function-after[...]``), not a
    field or an index: those are pydantic's schema names, never keys of a spec."""
    return isinstance(part, str) and (part.startswith(("function-", "constrained-")) or "[" in part
                                      or part in ("str", "int", "float", "bool", "bytes", "none"))


def from_validation(exc, where: str | None = None, model=None) -> TrainsimError:
    """A pydantic ``ValidationError`` as one line: the first error's field path, message and offending value.
    A misspelt key is reported as itself, not as the required key it leaves missing (``chip:`` for ``chips:``:
    'chip: unknown key (typo? did you mean chips?)'), and, given the validated ``model``, as the near spelling of
    any key the model takes there (``seq_lenn``: 'did you mean seq_len?'); the union branch pydantic tried
    (``literal[...]``, ``list[...]``, ``constrained-str``) is not part of the field path, and a value no branch
    takes says what each branch expected ('Input should be a valid string or a valid dictionary': ``model: 5``)."""
    errs = exc.errors()

    def path(e) -> str | None:
        return ".".join(str(x) for x in e["loc"] if not _union_branch(x)) or None

    extra = [e for e in errs if e["type"] == "extra_forbidden"]
    err = extra[0] if extra else errs[0]
    if not extra and isinstance(err.get("input"), list) and err["loc"] and _union_branch(err["loc"][-1]):
        # a value-or-list field given a list ('schedule: [1f1b, zb]'): the list branch's error for the one bad
        # item, not the scalar branch's, which quoted the whole list (qa30a)
        items = [e for e in errs if len(e["loc"]) >= 2 and isinstance(e["loc"][-1], int)
                 and _union_branch(e["loc"][-2]) and e["loc"][:-2] == err["loc"][:-1]]
        if items:
            err = {**items[0], "loc": items[0]["loc"][:-1]}    # the field, not its index
    field = path(err)
    msg = err["msg"].removeprefix("Value error, ")
    if err["loc"] and _union_branch(err["loc"][-1]) and err["type"].endswith("_type"):
        # the other branches of the same union, each a type it did not match: 'a valid string or a valid dictionary'
        kinds = [e["msg"].removeprefix("Input should be ") for e in errs
                 if e["loc"][:-1] == err["loc"][:-1] and e["loc"] and _union_branch(e["loc"][-1])
                 and e["type"].endswith("_type")]
        msg = "Input should be " + " or ".join(dict.fromkeys(kinds))
    if err["type"] == "extra_forbidden":
        parent = err["loc"][:-1]
        missing = [str(e["loc"][-1]) for e in errs if e["type"] == "missing" and e["loc"][:-1] == parent]
        # a near spelling only ('chip' for 'chips': 0.89), never another key ('serving' for 'training': 0.57);
        # a missing (required) key first, then any other key the model takes there
        near = (difflib.get_close_matches(str(err["loc"][-1]), missing, n=1, cutoff=0.8)
                or difflib.get_close_matches(str(err["loc"][-1]), _keys_at(model, parent), n=1, cutoff=0.8))
        key = str(err["loc"][-1])
        places = [] if near else _places_of(model, key, parent)
        msg = (f"unknown key (typo? did you mean {near[0]}?)" if near
               else f"unknown key here; {key} belongs {' or '.join(places)}" if places
               else "unknown key (typo?)")
    elif err["type"] == "missing" and err["loc"] and isinstance(err["loc"][-1], int):
        # an item of a fixed-length list (a [low, high] range given one value): 'missing key; expected 1' named the
        # index as if it were a key
        got = err.get("input")
        n = f"{len(got)}: {short(got)}" if isinstance(got, (list, tuple)) else short(got)
        field = path({"loc": err["loc"][:-1]})
        msg = f"too few items: expected at least {err['loc'][-1] + 1}, got {n}"
    elif err["type"] == "missing":   # pydantic's 'Field required' said neither what is missing nor where it goes
        parent = [str(x) for x in err["loc"][:-1] if isinstance(x, str)]
        msg = (f"missing key; expected {err['loc'][-1]}: "
               f"{'under ' + '.'.join(parent) if parent else 'at the top level'} (required)")
    elif err["type"] == "int_from_float" and "input" in err:   # pydantic says 'got a number with a fractional
        msg = f"{msg} ({short(err['input'])})"                     # part' without the number: add it
    elif ("input" in err and err["type"] != "missing" and not isinstance(err["input"], dict)
          and "got " not in msg):        # checked types already name the value they got
        inp = err["input"]
        huge = isinstance(inp, (int, float)) and not isinstance(inp, bool) and abs(inp) >= READABLE_EXPONENT_FROM
        msg = f"{msg}; got {readable_count(inp) if huge else short(inp)}"   # 1e+30, not int(1e30)'s 31 digits
    return TrainsimError(msg, field=field, where=where)


class NoPlanError(TrainsimError):
    """The input is valid but no plan answers it (exit code 1, not 2); ``result`` is the empty search result, with
    ``alternatives`` once the caller has looked for them."""

    def __init__(self, message: str, result=None, **kw):
        super().__init__(message, **kw)
        self.result = result
