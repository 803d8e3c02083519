"""The import graph of trainsim/ (built from the source with ast, imports inside functions included): no cycles,
no lower layer importing a higher one, and every imported trainsim name exists where it is imported from.

Layers, lowest first: base (errors, units, number formats, checked types, YAML loading, io) -> catalog ->
model -> parallel -> perf -> search (run spec, one-plan estimate, plan search, framework profiles, emitters,
cost, sanity) -> domain (scenario, validate, inference, posttrain, sweep) -> report (rendering and report
building) -> api (the one door, which also builds reports) -> top (cli, serve and the package itself). A module may import its own layer or lower ones.
"""
from __future__ import annotations

import ast
import importlib
import pathlib


PKG = pathlib.Path(__file__).resolve().parents[1] / "trainsim"

LAYERS = ("base", "catalog", "model", "parallel", "perf", "search", "domain", "report", "api", "top")
_TOP_LEVEL = {
    "base": ("errors", "units", "numfmt", "types_checked", "yamlload", "io", "_version"),
    "catalog": ("catalog",), "model": ("model",), "parallel": ("parallel",), "perf": ("perf",),
    "search": ("spec", "frameworks", "plan_estimate", "estimate", "search", "fit_advice", "alternatives", "emit",
               "sanity", "cost", "plan_diff"),
    "domain": ("scenario", "validate", "inference", "posttrain", "sweep"),
    "report": ("report",),
    "api": ("api",),
    "top": ("cli", "serve", "__main__"),
}

#: upward imports known today, each with the reason it is still there; the list may only shrink
KNOWN_UPWARD = {
    ("trainsim.cost", "trainsim.scenario.assumptions"):
        "run_cost's default prices, PUE and electricity come from scenario/assumptions.yaml",
    ("trainsim.sweep.runner", "trainsim.report.progress"): "the sweep's progress bar",
    ("trainsim.scenario.render", "trainsim.report.terminal"):
        "the scenario renderer still lives in its domain package (the seed-answer work reshapes it); it uses the "
        "terminal's console",
    ("trainsim.validate.runner", "trainsim.report.fmt"):
        "a validation row's plan text (kept in --json) comes from the one formatting layer",
    ("trainsim.scenario.render", "trainsim.report.fmt"):
        "the same renderer formats through the one formatting layer",
}


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
