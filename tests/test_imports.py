"""The import graph of trainsim/ (built from the source with ast, imports inside functions included): no cycles,
no lower layer importing a higher one, and every imported trainsim name exists where it is imported from. Every
trainsim import sits at its module's top, except the CLI's command dispatch (``trainsim/cli/application.py``).

Layers, lowest first: base (errors, units, number formats, checked types, YAML loading, io) -> catalog ->
model -> parallel -> perf -> search (run spec, one-plan estimate, plan search, framework profiles, emitters,
cost, sanity) -> domain (scenario, validate, inference, posttrain, sweep) -> report (rendering and report
building) -> api (the one door, which also builds reports) -> top (cli, serve and the package itself). A module may import its own layer or lower ones.
"""
from __future__ import annotations

import ast
import importlib
import pathlib
import subprocess
import sys


PKG = pathlib.Path(__file__).resolve().parents[1] / "trainsim"

LAYERS = ("base", "catalog", "model", "parallel", "perf", "search", "domain", "report", "api", "top")
_TOP_LEVEL = {
    "base": ("errors", "units", "numfmt", "types_checked", "yamlload", "io", "_version"),
    "catalog": ("catalog",), "model": ("model",), "parallel": ("parallel",), "perf": ("perf",),
    "search": ("assumptions", "spec", "frameworks", "plan_estimate", "estimate", "search", "fit_advice", "alternatives", "emit",
               "sanity", "cost", "plan_diff"),
    "domain": ("scenario", "validate", "inference", "posttrain", "sweep"),
    "report": ("report",),
    "api": ("api",),
    "top": ("cli", "serve", "__main__"),
}

#: upward imports known today, each with the reason it is still there; the list may only shrink
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "top"       # the package itself re-exports the API
    for name, tops in _TOP_LEVEL.items():
        if parts[1] in tops:
            return name
    raise AssertionError(f"{module}: no layer assigned (add it to _TOP_LEVEL in tests/test_imports.py)")


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


MODS = _modules()


def _imports(module: str, f: pathlib.Path):
    """(target module, imported name or None, line) for every trainsim import in ``f``, wherever it sits."""
    pkg = module if f.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "trainsim":
                    yield a.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "trainsim":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                yield (sub, None, node.lineno) if sub in MODS else (target, a.name, node.lineno)


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in _imports(m, f) if t in MODS and t != m} for m, f in MODS.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_no_lower_layer_imports_a_higher_one():
    bad = []
    for m, targets in _graph().items():
        for t in targets:
            if LAYERS.index(layer_of(t)) > LAYERS.index(layer_of(m)) and (m, t) not in KNOWN_UPWARD:
                bad.append(f"{m} ({layer_of(m)}) imports {t} ({layer_of(t)})")
    assert not bad, bad


def test_known_upward_imports_still_exist():
    """An entry of KNOWN_UPWARD that is gone must leave the list (so it only shrinks)."""
    graph = _graph()
    assert [k for k in KNOWN_UPWARD if k[1] not in graph[k[0]]] == []


OPTIONAL = ("matplotlib", "pandas", "pyarrow", "dask", "distributed", "starlette", "uvicorn", "selenium")


def test_every_imported_name_exists():
    """``from trainsim.x import name`` names something trainsim.x has (a forwarder removed in one place and
    still imported in another fails here, not when that function first runs)."""
    missing = []
    for m, f in MODS.items():
        for target, name, line in _imports(m, f):
            if name is None or name == "*":
                continue
            try:
                mod = importlib.import_module(target)
            except ModuleNotFoundError as exc:
                if exc.name and exc.name.split(".")[0] in OPTIONAL:
                    continue
                raise
            if not hasattr(mod, name):
                missing.append(f"{f.relative_to(PKG.parent)}:{line} imports {name} from {target}")
    assert not missing, missing


def test_every_module_has_a_layer():
    assert {layer_of(m) for m in MODS} <= set(LAYERS)


# --- imports at module top (issue 12 item 4) ---------------------------------------------------------------------

#: the one place a trainsim module is imported later than at a module's top: the CLI's command dispatch (a
#: subcommand's module is imported when that subcommand runs; table COMMANDS in trainsim/cli/application.py)
DEFERRED_IMPORT_PLACES = {"trainsim/cli/application.py"}
_IMPORT_CALLS = {"import_module", "__import__"}


def deferred_imports(source: str) -> list[tuple[int, str]]:
    """(line, text) of every import of a trainsim module inside a function, method or lambda (relative imports
    included), and of every call of ``import_module`` / ``__import__`` (an import hidden from the graph)."""
    out = []
    tree = ast.parse(source)
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "trainsim"):
                out.append((node.lineno, ast.unparse(node)))
            elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "trainsim" for a in node.names):
                out.append((node.lineno, ast.unparse(node)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in _IMPORT_CALLS:
                out.append((node.lineno, ast.unparse(node)))
    return sorted(set(out))


def test_deferred_import_finder_finds_them():
    src = ("import os\nfrom . import api\n\ndef f():\n    import json\n    from ..scenario import run\n"
           "    import trainsim.spec as s\n    return lambda: __import__('x')\n\n"
           "class C:\n    def m(self):\n        from trainsim import api\n        importlib.import_module('y')\n")
    assert [line for line, _ in deferred_imports(src)] == [6, 7, 8, 12, 13]
    assert deferred_imports("import numpy\nfrom .x import y\n\ndef f():\n    import matplotlib\n") == []


def test_trainsim_imports_sit_at_module_top():
    """Every import of a trainsim module is at its module's top, except in the CLI's command dispatch; optional
    third-party packages (matplotlib, pandas, pyarrow, dask, the serve extra, rich's renderers) may be imported
    where they are used."""
    bad = []
    for _m, f in MODS.items():
        rel = f.relative_to(PKG.parent).as_posix()
        if rel in DEFERRED_IMPORT_PLACES:
            continue
        bad += [f"{rel}:{line}: {text}" for line, text in deferred_imports(f.read_text(encoding="utf-8"))]
    assert not bad, bad


def test_the_dispatch_is_the_one_deferred_place():
    f = PKG / "cli" / "application.py"
    assert [text for _, text in deferred_imports(f.read_text(encoding="utf-8"))] == [
        "import_module(f'{__package__}.{module}')"]


def test_dispatch_table_covers_every_command_module():
    from trainsim.cli import application

    modules = {p.stem for p in (PKG / "cli").glob("*_cmd.py")}
    assert set(application.COMMANDS.values()) | {application.ROOT_MODULE} == modules
    app = application.load_commands()
    names = {c.name or c.callback.__name__ for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert names == set(application.COMMANDS)


def test_a_command_imports_only_its_own_module():
    code = ("import sys; from trainsim.cli.application import load_commands; load_commands(['plan', 'x.yaml']); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('trainsim.cli.') and m.endswith('_cmd'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["trainsim.cli.plan_cmd", "trainsim.cli.version_cmd"]


def test_the_scenario_runner_registers_every_kind():
    from trainsim.scenario import registry

    code = ("import sys, trainsim.scenario.run as r; from trainsim.scenario.registry import KIND_MODULES; "
            "print(all(m in sys.modules for m in KIND_MODULES), len(r.handler.__globals__['HANDLERS']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True" and int(out[1]) >= len(registry.KIND_MODULES)
