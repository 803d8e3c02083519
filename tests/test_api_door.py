"""``trainsim.api`` is the only door (issue 12 item 2): the CLI imports nothing from trainsim but ``trainsim.api``,
``trainsim.report`` (rendering) and its own modules, and every module of the explorer (``serve/``, handlers and option lists) the
same plus the explorer's own modules. Checked on the source with ``ast`` (every import, module top or inside a
function), so a new command that reaches into the engine fails here."""
from __future__ import annotations

import ast
from pathlib import Path

import subprocess
import sys

import pytest

import trainsim
from trainsim import api
from trainsim.api import checks, posttraining, reports, scenarios, serving, sweeps, validation

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
    # the one exception: `trainsim serve` starts the explorer (trainsim.serve.app), a front end beside the CLI that
    # itself goes through the api (test below)
    bad = [f"{path.name}:{line} imports {mod}" for line, mod in imported_modules(path)
           if not _allowed(mod, "trainsim.cli")
           and not (path.name == "serve_cmd.py" and mod == "trainsim.serve.app")]
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("path", sorted((PKG / "serve").glob("*.py")), ids=lambda p: p.name)
def test_explorer_imports_only_api_and_report(path):
    """Every module of the explorer (its request handlers and its option lists, serve/inputs.py) reaches the
    engine and the catalog only through trainsim.api, as the CLI does."""
    bad = [f"{path.name}:{line} imports {mod}" for line, mod in imported_modules(path)
           if not _allowed(mod, "trainsim.serve")]
    assert not bad, "; ".join(bad)


def test_explorer_handlers_use_the_api():
    assert "trainsim.api" in {m for _, m in imported_modules(PKG / "serve" / "app.py")}


DOORS = {"estimate": api, "plan": scenarios, "size": scenarios, "capacity": scenarios, "sensitivity": scenarios,
         "infer": serving, "posttrain": posttraining, "validate": validation, "scenario": scenarios,
         "sweep": sweeps, "report": reports, "compare": api, "check": checks, "search_plans": api}


def test_every_command_has_an_api_door():
    """Each command of the issue's list has a function in trainsim.api (the core door) or in its module for that
    domain (trainsim.api.scenarios, .serving, ...), documented."""
    for name, module in DOORS.items():
        assert module.__name__.startswith("trainsim.api"), name
        assert callable(getattr(module, name)), name
        assert getattr(module, name).__doc__, name


def test_the_core_door_loads_no_domain_module():
    """``trainsim plan`` and ``trainsim estimate`` import only the core door: no scenario, serving,
    post-training, sweep or report-building module, and neither rich nor matplotlib (start-up time)."""
    code = ("import sys, trainsim.api, trainsim.cli.plan_cmd, trainsim.cli.estimate_cmd; print(' '.join(sorted("
            "m for m in sys.modules if m.startswith(('trainsim.scenario.', 'trainsim.inference', 'trainsim.posttrain',"
            " 'trainsim.sweep', 'trainsim.validate', 'trainsim.api.', 'trainsim.report.build', 'rich', "
            "'matplotlib')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [], out


def test_a_whole_plan_process_loads_nothing_it_does_not_use():
    """The whole ``trainsim plan RUN --json`` process of the planner benchmark (the 1.6T MoE on 24,960 chips with a
    64M-token batch, benchmarks/bench_planner.py; its search takes the Pareto front's rows after the memory pass),
    search and output included, loads no optional or unrelated package: no pandas, matplotlib, rich, pyarrow, no
    numpy.ma (a plain ``np.unique`` loads it: 10 ms of that process), numpy.random or numpy.polynomial, no
    scenario, serving, post-training, sweep or validation module, no report builder (issue 15, the plan process's
    start-up). Checked on the modules loaded when the command has answered, not on time."""
    case = Path(__file__).resolve().parents[1] / "benchmarks" / "runs" / "longcat2-class-cm384x65-64m.yaml"
    code = ("import contextlib, io, sys\n"
            "from trainsim.cli import main\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    try:\n"
            f"        main(['plan', {str(case)!r}, '--json'])\n"
            "    except SystemExit as e:\n"
            "        assert not e.code, e.code\n"
            "assert '\"best\"' in out.getvalue()\n"
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'matplotlib', 'rich', "
            "'pyarrow', 'dask') or m.split('.')[:2] in (['numpy', 'ma'], ['numpy', 'random'], ['numpy', 'polynomial']) "
            "or m.startswith(("
            "'trainsim.scenario.', 'trainsim.inference', 'trainsim.posttrain', 'trainsim.sweep', "
            "'trainsim.validate', 'trainsim.serve', 'trainsim.api.', 'trainsim.report.build')))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == []


RUN = {"name": "t", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 16,
       "training": {"global_batch_seqs": 64, "seq_len": 4096}, "plan": {"tp": 8, "pp": 1, "micro_batch": 1}}


def test_specs_as_paths_or_mappings(tmp_path):
    """The same run given as a mapping and as a file answers the same (the api takes either)."""
    import yaml

    from trainsim import api

    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(RUN))
    a, b = api.estimate(RUN), api.estimate(p)
    assert a.step_time_s == b.step_time_s and a.plan == b.plan
    assert api.estimate_run(p).to_dict()["step_time_s"] == b.step_time_s
    res = checks.check(p).to_dict()
    assert res["kind"] == "run" and res["ok"] is True and "tp=8" in res["resolved"]["plan fixed"]


def test_argument_checks_moved_behind_the_api_keep_the_cli_lines(tmp_path):
    """The checks the CLI did itself now live in api, with the option names of the command line (CLI_NAMES)
    in the CLI and the plain field names elsewhere."""
    from trainsim import api

    with pytest.raises(api.TrainsimError, match=r"^--days: expected a positive number of days below 10\^6, got -1$"):
        scenarios.size(RUN, -1, names=api.CLI_NAMES)
    with pytest.raises(api.TrainsimError, match=r"^days: expected a positive number of days"):
        scenarios.size(RUN, -1)
    with pytest.raises(api.TrainsimError, match=r"^--unit: expected system or chip, got 'pod'$"):
        scenarios.size(RUN, 10, unit="pod", names=api.CLI_NAMES)
    with pytest.raises(api.TrainsimError, match=r"^--units: expected one fleet size, --units or --chips, not both; got --units 2 and --chips 8$"):
        scenarios.capacity("hgx-h800", 8, 30, units=2, names=api.CLI_NAMES)
    with pytest.raises(api.TrainsimError, match=r"^--precision: expected bf16 or fp8, got 'fp4'$"):
        scenarios.capacity("hgx-h800", 8, 30, precision="fp4", names=api.CLI_NAMES)
    with pytest.raises(api.TrainsimError, match=r"^--pue: expected a PUE between 1 and 3 \(facility / IT energy\), "
                                                r"got 0.5$"):
        api.cost_inputs(pue=0.5, names=api.CLI_NAMES)
    with pytest.raises(api.TrainsimError, match=r"^RUNS: expected two or more run specs, got 1$"):
        api.compare([tmp_path / "a.yaml"])


def test_cli_exit_codes_through_the_api(tmp_path, capsys):
    import yaml

    from trainsim.cli import app
    from trainsim.cli.handler import run

    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(RUN))
    assert run(app, ["size", str(p), "--days", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: --days: expected a positive number of days below 10^6, got -1"
    assert run(app, ["capacity", "--system", "hgx-h800", "--days", "30"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --units: expected a fleet size: --units N (scale-up domains) or "
                                             "--chips N (chips), a positive count; got neither")
