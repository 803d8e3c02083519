"""``trainsim.api`` is the only door (issue 12 item 2): the CLI imports nothing from trainsim but ``trainsim.api``,
``trainsim.report`` (rendering) and its own modules, and the explorer's request handlers (``serve/app.py``) the
same plus the explorer's own modules. Checked on the source with ``ast`` (every import, module top or inside a
function), so a new command that reaches into the engine fails here."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import trainsim

PKG = Path(trainsim.__file__).parent


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``; ``from .. import api`` -> ``trainsim.api``."""
    package = ["trainsim", *path.relative_to(PKG).parent.parts]     # the package the module is in
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if node.module is None:                      # from .. import api: the names are modules
                out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, mod))
    return out


def _allowed(mod: str, own: str) -> bool:
    if not (mod == "trainsim" or mod.startswith("trainsim.")):
        return True                                     # third-party and standard library
    return (mod == "trainsim.api" or mod.startswith(("trainsim.api.", "trainsim.report.", own + "."))
            or mod in ("trainsim.report", own))


def test_resolver_reads_relative_imports(tmp_path, monkeypatch):
    p = PKG / "cli" / "size_cmd.py"
    mods = {m for _, m in imported_modules(p)}
    assert "trainsim.api" in mods and "trainsim.cli.costopts" in mods
    fake = tmp_path / "trainsim" / "cli" / "x_cmd.py"        # a command that reaches into the engine
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from ..scenario.sizing import size\n    from .. import spec\n")
    monkeypatch.setattr(__import__(__name__), "PKG", tmp_path / "trainsim")
    assert [m for _, m in imported_modules(fake)] == ["trainsim.scenario.sizing", "trainsim.spec"]
    assert not _allowed("trainsim.scenario.sizing", "trainsim.cli")
    assert _allowed("rich.table", "trainsim.cli") and _allowed("trainsim.report.fmt", "trainsim.cli")


@pytest.mark.parametrize("path", sorted((PKG / "cli").glob("*.py")), ids=lambda p: p.name)
def test_cli_imports_only_api_and_report(path):
    bad = [f"{path.name}:{line} imports {mod}" for line, mod in imported_modules(path)
           if not _allowed(mod, "trainsim.cli")]
    assert not bad, "; ".join(bad)


def test_explorer_handlers_use_the_api():
    path = PKG / "serve" / "app.py"
    bad = [f"app.py:{line} imports {mod}" for line, mod in imported_modules(path)
           if not _allowed(mod, "trainsim.serve")]
    assert not bad, "; ".join(bad)
    assert "trainsim.api" in {m for _, m in imported_modules(path)}


def test_every_command_has_an_api_door():
    """Each command of the issue's list has a function in trainsim.api whose result has to_dict()."""
    from trainsim import api

    for name in ("estimate", "plan", "size", "capacity", "sensitivity", "infer", "posttrain", "validate",
                 "scenario", "sweep", "report", "compare", "check"):
        assert callable(getattr(api, name)), name
        assert getattr(api, name).__doc__, name
