"""How the ``trainsim`` command ends: every outcome is an exit code and, on failure, one line on stderr.

========  ==========================================================================================
exit 0    an answer
exit 1    no answer (no plan fits, a stated plan does not fit, a claim not met): the nearest alternatives printed
exit 2    bad input (:class:`~trainsim.errors.TrainsimError`) or a usage mistake (unknown command or
          option, missing argument, a value of the wrong type): one line, with the command's usage
exit 3    a bug: an invariant of the engine violated (:class:`~trainsim.sanity.InvariantViolation`) or
          an unexpected exception; one line asking for a bug report (``TRAINSIM_TRACEBACK=1`` shows it)
exit 130  interrupted (Ctrl-C)
========  ==========================================================================================

The usage errors come from click, which typer either depends on (typer < 0.16) or bundles as
``typer._click``; they are recognised by their class names, so no error path imports a module that may be
missing.
"""
from __future__ import annotations

import os
import re
import sys

from ..api import NoPlanError, TrainsimError
from ..api import InvariantViolation
from ..report.terminal import print_json   # numpy numbers and non-finite floats as plain JSON

#: the longest error line printed (characters); longer messages are cut
MAX_LINE_CHARS = 400


_LINE_SUFFIX = re.compile(r" \(line \d+\)$")


#: where a no-answer line's nearest alternatives begin (search.SearchResult.no_plan_message)
_NEAREST = "; nearest alternatives: "


def one_line(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """Collapse whitespace and newlines into one line of at most ``limit`` characters; a cut line keeps the
    `` (line N)`` its error ends with (:func:`trainsim.io.specfile.with_line`), the middle gives way: in a no-answer
    line the reason before ``; nearest alternatives:`` is cut first (down to half the line), so the alternatives
    stay (a 'no valid plan' reason listing its rejections pushed them past the cut: compare, report); any other
    long line keeps its last clause (from its last ``; ``, else its last ``, got ``; at most a third of the line):
    the value given and the facts it was checked against end a bad-input line (``--fix pp=64`` lost its
    '; llama-3.1-8b has 32 layers, got 64' behind a 400-character rule)."""
    line = " ".join(str(text).split())
    if len(line) <= limit:
        return line
    m = _LINE_SUFFIX.search(line)
    tail = m.group(0) if m else ""
    reason, sep, alts = line[: len(line) - len(tail)].partition(_NEAREST)
    if sep:
        keep = max(limit // 2, limit - 3 - len(sep) - len(alts) - len(tail))
        if len(reason) > keep:
            line = reason[:keep] + "..." + sep + alts + tail
        if len(line) <= limit:
            return line
    body = line[: len(line) - len(tail)]
    last = next((body[i:] for i in (body.rfind("; "), body.rfind(", got "))
                 if i > 0 and len(body) - i <= limit // 3), "")
    return body[: limit - 3 - len(last) - len(tail)] + "..." + last + tail


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _option_value(param, argv: list[str]) -> str | None:
    """The value ``argv`` gives option ``param`` (its last ``--opt VALUE`` or ``--opt=VALUE``), or None."""
    found = None
    for i, tok in enumerate(argv):
        for opt in getattr(param, "opts", ()):
            if tok == opt and i + 1 < len(argv):
                found = argv[i + 1]
            elif opt.startswith("--") and tok.startswith(opt + "="):
                found = tok[len(opt) + 1:]
    return found


def _usage_line(exc, argv: list[str] | None = None) -> str:
    """A click/typer usage error as one line: the message, the value given (typer's pydantic-style messages for an
    option it cannot convert name none: '--days 1,000' read 'Input should be a valid number'), the command's
    usage, and where help is."""
    ctx = getattr(exc, "ctx", None)
    try:
        msg = exc.format_message()
    except Exception:  # noqa: BLE001 - a message is all we need
        msg = str(exc)
    value = _option_value(getattr(exc, "param", None), argv or [])
    if value is not None and "BadParameter" in _names(exc) and repr(value) not in msg:
        msg = f"{msg.rstrip('.')}, got {value if len(value) <= 80 else value[:77] + '...'!r}"
    if "NoArgsIsHelpError" in _names(exc) or not msg:
        msg = "missing command" if ctx is not None and hasattr(ctx.command, "list_commands") else \
            "missing argument"
    usage, path = "", "trainsim"
    if ctx is not None:
        try:
            path = ctx.command_path or path
            usage = " ".join(ctx.get_usage().split()).removeprefix("Usage: ")
            if hasattr(ctx.command, "list_commands"):
                cmds = [c for c in ctx.command.list_commands(ctx)
                        if not getattr(ctx.command.get_command(ctx, c), "hidden", False)]
                if cmds and "command" in msg.lower():
                    usage += f" (commands: {', '.join(cmds)})"
        except Exception:  # noqa: BLE001 - the usage line is a courtesy
            pass
    msg = msg.rstrip(".")
    hint = f"usage: {usage}; " if usage else ""
    return one_line(f"error: {msg}. {hint}see '{path} --help'")


#: output options of which a command prints one: each is the whole answer (JSON, or CSV rows)
OUTPUT_FORMATS = ("--json", "--csv")


def format_conflict(args: list[str]) -> str | None:
    """The usage error for ``--json`` and ``--csv`` given together (before any ``--``), or None: one of them
    would be dropped without a word (every command printed the CSV)."""
    toks = args[:args.index("--")] if "--" in args else args
    given = [f for f in OUTPUT_FORMATS if f in toks]
    if len(given) < 2:
        return None
    cmd = next((t for t in toks if not t.startswith("-")), "")
    see = f"trainsim {cmd} --help" if cmd else "trainsim --help"
    return f"error: {' and '.join(given)} both given; expected one of them (each prints the whole answer); see '{see}'"


def no_answer_json(exc: NoPlanError) -> dict:
    """The JSON object a ``--json`` command prints on stdout when it has no answer (exit 1) and has printed none
    of its own (``plan`` / ``estimate`` / ``size`` print their empty result): ``answer`` null, the spec file, field
    and line of the one stderr line, its reason, and the nearest alternatives it names (the text after 'nearest
    alternatives: ', split at '; '), with the search result where the error carries one (its structured
    ``alternatives``). Before, ``infer`` / ``posttrain`` / ``compare --json`` printed nothing there."""
    text = str(exc)
    for part in (exc.where, exc.field):
        text = text.removeprefix(f"{part}: ") if part else text
    m = _LINE_SUFFIX.search(text)
    reason, _, alts = text[:m.start()].partition("; nearest alternatives: ") if m else \
        text.partition("; nearest alternatives: ")
    out = {"answer": None, "exit_code": 1, "spec": exc.where, "field": exc.field,
           "line": int(m.group(0).strip(" ()").split()[1]) if m else None, "reason": reason,
           "alternatives": [a for a in alts.split("; ") if a]}
    if getattr(exc, "result", None) is not None and hasattr(exc.result, "to_dict"):
        out["search"] = exc.result.to_dict()
    return out


def _wants_json(argv: list[str]) -> bool:
    toks = argv[:argv.index("--")] if "--" in argv else argv
    return "--json" in toks


def run(app, argv: list[str] | None = None) -> int:
    """Run the typer ``app`` on ``argv`` and return the exit code (never raises, never prints a traceback
    unless ``TRAINSIM_TRACEBACK`` is set); a usage error :func:`format_conflict` finds exits 2 before any work."""
    conflict = format_conflict([str(a) for a in (sys.argv[1:] if argv is None else argv)])
    if conflict:
        print(conflict, file=sys.stderr)
        return 2
    try:
        rc = app(args=argv, standalone_mode=False, prog_name="trainsim")
        return rc if isinstance(rc, int) else 0
    except TrainsimError as exc:
        if isinstance(exc, NoPlanError) and _wants_json([str(a) for a in (sys.argv[1:] if argv is None else argv)]):
            print_json(no_answer_json(exc))
        print(one_line(f"error: {exc}"), file=sys.stderr)
        return 1 if isinstance(exc, NoPlanError) else 2   # no answer: 1; bad input: 2
    except InvariantViolation as exc:
        print(one_line(f"bug: {exc} -- this is a trainsim bug, please report it with the input; "
                       "no result was printed"), file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BrokenPipeError:  # output piped into `head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's flush at exit
        except OSError:
            pass
        return 0
    except BaseException as exc:  # noqa: BLE001 - the one place every other exception ends
        names = _names(exc)
        if "Exit" in names and hasattr(exc, "exit_code"):
            return int(exc.exit_code or 0)
        if "Abort" in names:
            print("aborted", file=sys.stderr)
            return 1
        if "ClickException" in names or "UsageError" in names:
            print(_usage_line(exc, [str(a) for a in (sys.argv[1:] if argv is None else argv)]), file=sys.stderr)
            return 2
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError) and exc.strerror:
            fn = str(exc.filename or "")
            name = (fn if len(fn) <= 80 else fn[:77] + "...") + ": " if fn else ""
            print(one_line(f"error: {name}{exc.strerror}; expected a readable file or a writable path"),
                  file=sys.stderr)
            return 2
        if isinstance(exc, (RecursionError, MemoryError)):
            print(one_line(f"error: input too large or too deeply nested ({type(exc).__name__}); "
                           "expected a smaller input"), file=sys.stderr)
            return 2
        if os.environ.get("TRAINSIM_TRACEBACK"):
            raise
        print(one_line(f"bug: unexpected {type(exc).__name__}: {exc} -- this is a trainsim bug, please report "
                       "it with the input (TRAINSIM_TRACEBACK=1 shows the traceback)"), file=sys.stderr)
        return 3
