"""Shared fixtures: small hand-built chips and systems, independent of the catalog files."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trainsim.catalog.types import Chip, NetLevel, System
from trainsim.inference.calib import InferCalib
from trainsim.model.inline import InlineModel, build_inline
from trainsim.perf.calibration import Calib
from trainsim.perf.context import StepContext
from trainsim.spec import parse_run

#: test files whose module fixtures or single tests take minutes, slowest first: the leave-one-out fit, the
#: 2,000-example fuzz, the seed scenarios (``--durations=0`` of the whole suite on 2 workers, session 29: 274 s,
#: 228 s and 73 s of 1,194 s summed over all tests; the next file, 61 s)
SLOW_FILES = ("test_accuracy.py", "test_fuzz.py", "test_scenarios.py")


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (the README's test command: ``-n auto --dist loadfile --no-loadscope-reorder``), each file
    runs whole on one worker, in the order collected: :data:`SLOW_FILES` go first, so that the workers start on the
    longest files and share out the short ones after them, instead of one worker taking a minutes-long file last
    while the others sit idle. A plain ``pytest`` run (no workers) keeps the usual order."""
    if not hasattr(config, "workerinput"):          # set on xdist workers only
        return
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda it: rank.get(it.path.name, len(SLOW_FILES)))   # stable: the rest keep their order


def make_system(bf16=312e12, hbm=80e9, hbm_bw=2.039e12, up=300e9, out=25e9, size=8, fp8=None):
    peaks = {"bf16": bf16}
    if fp8:
        peaks["fp8"] = fp8
    chip = Chip("test-chip", "Test", "test", "test", peaks, hbm, hbm_bw, up, out)
    return System("test-system", "Test", chip, (NetLevel("scale-up", size, up, 2e-6), NetLevel("scale-out", None, out, 5e-6)))


@pytest.fixture(scope="session")
def a100_system():
    return make_system()


@pytest.fixture(scope="session")
def gpt3():
    return build_inline(InlineModel(name="gpt3-175b", layers=96, hidden=12288, heads=96, ffn=49152, vocab=51200,
                                    ffn_act="gelu"))


@pytest.fixture(scope="session")
def small_moe():
    return build_inline(InlineModel(name="moe", layers=8, hidden=1024, heads=16, ffn=4096, ffn_act="swiglu",
                                    vocab=32000, moe=dict(experts=16, top_k=2, expert_ffn=512, shared_experts=1,
                                                          dense_layers=1)))


#: a small dense model for the serving tests (test_inference.py, test_inference_fidelity.py): 4 layers, hidden 512,
#: 8 heads of 64 (MHA), SwiGLU 2048, vocab 1000, untied head
TINY = dict(name="tiny", layers=4, hidden=512, heads=8, head_dim=64, ffn=2048, ffn_act="swiglu", vocab=1000)


@pytest.fixture(scope="session")
def tiny():
    return build_inline(InlineModel(**TINY))


def ideal_infer_calib(**kw) -> InferCalib:
    """Serving constants of the pure roofline: efficiency 1, no launch latency, no overlap, no buffers."""
    return InferCalib(mem_eff=1.0, gemm_eff=1.0, attn_eff=1.0, gemm_latency_s=0.0, comm_overlap=0.0,
                      expert_imbalance=1.0, buffer_bytes=0.0).with_(**kw)


def ctx_for(arch, system, chips=64, seq=2048, gbs=64, precision="bf16", calib=None):
    return StepContext(arch, system, chips, seq, gbs, precision, calib or Calib.defaults())


def run_main(capsys, *args):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    from trainsim.cli import main
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


# A small dense run spec the CLI tests share (Llama 3.1 8B on 64 H100).
SMALL_RUN = """
name: small
model: llama-3.1-8b
system: dgx-h100
chips: 64
training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512, precision: bf16}
"""


def write_spec(tmp_path, text=SMALL_RUN, name="run.yaml"):
    """Write a spec file under ``tmp_path`` (default: the small run above) and return its path."""
    p = tmp_path / name
    p.write_text(text)
    return p


#: Llama 3.1 8B on 64 A100 at a stated plan: the run test_ux.py and test_ux2.py derive cost and energy for by hand
RUN_A100 = """name: a100-8b
model: llama-3.1-8b
system: dgx-a100
chips: 64
training: {tokens: 100B, seq_len: 4096, global_batch_seqs: 512, precision: bf16}
plan: {tp: 1, pp: 1, cp: 1, ep: 1, zero: 1, recompute: selective, micro_batch: 1}
"""


@pytest.fixture
def run_a100(tmp_path):
    """:data:`RUN_A100` written to ``tmp_path / "a100.yaml"``."""
    return write_spec(tmp_path, RUN_A100, "a100.yaml")


def trainsim_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """Run ``python -m trainsim ARGS`` in a child process (the installed entry point's path, start-up included);
    return the completed process with its exit code, stdout and stderr as text."""
    return subprocess.run([sys.executable, "-m", "trainsim", *args], capture_output=True, text=True, cwd=cwd)


def spec_with_training(path: Path, **training) -> dict:
    """The run spec file ``path`` as a mapping, its ``training`` keys updated with ``training``."""
    spec = yaml.safe_load(path.read_text())
    spec["training"].update(training)
    return spec


def run_with_training(path: Path, **training):
    """:func:`spec_with_training` parsed as a Run (files it names read relative to ``path``'s folder)."""
    return parse_run(spec_with_training(path, **training), base_dir=path.parent)


def emitted_args(fragment: str, tmp_path) -> list[str]:
    """The words a ``--emit`` shell fragment puts in ``TRAINSIM_ARGS``, as bash itself splits them (``bash -n`` first)."""
    f = tmp_path / "args.sh"
    f.write_text(fragment + "\n")
    subprocess.run(["bash", "-n", str(f)], check=True)
    out = subprocess.run(["bash", "-c", f'source "{f}"; printf "%s\\n" "${{TRAINSIM_ARGS[@]}}"'], check=True,
                         capture_output=True, text=True).stdout
    return out.splitlines()



def load_module(name: str, path: Path):
    """The module of the file ``path`` (a script or another test file: not importable by name), loaded afresh
    under ``name`` and not entered in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_script(name: str):
    """The module of ``scripts/NAME.py`` (the scripts are not a package), loaded afresh."""
    return load_module(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")


#: A Llama-3-70B-shaped dense run on 64 H100 at tp 8, pp 4 (the TP-collective tests' shared shape); format with
#: ``fw`` (the stack), ``zero``, ``recompute`` and ``extra`` (more ``training`` keys, ", key: value" or "").
T70B_TP8_SPEC = """
name: t70b-tp8
framework: {fw}
model: {{name: t70b, layers: 80, hidden: 8192, heads: 64, kv_heads: 8, ffn: 28672, ffn_act: swiglu, vocab: 128256}}
system: dgx-h100
chips: 64
training: {{seq_len: 4096, global_batch_seqs: 64, precision: bf16{extra}}}
plan: {{tp: 8, pp: 4, vpp: 1, cp: 1, ep: 1, zero: {zero}, recompute: {recompute}, micro_batch: 1, schedule: 1f1b}}
"""


def one_plan(**kw):
    """One plan (a Plans of length 1): every parallel degree 1, no ZeRO, no recompute, micro-batch 1, 1F1B, unless
    ``kw`` says otherwise."""
    from trainsim.parallel.plan import Plans

    base = dict(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=1, zero=0, recompute=0, mb=1, schedule=0, node_limit=0)
    base.update(kw)
    return Plans.from_columns(**base)


def step_time_ratio_scaled(spec: dict, plan: dict, what: str, factor: float) -> float:
    """Step time of ``plan`` on the spec's system with the chip's HBM bandwidth (``what`` = "hbm_bw") or peak FLOP/s
    ("flops") scaled by ``factor``, over the step time on the chip as it is (the same plan, nothing else changed):
    the hardware-monotonicity properties (a faster chip never makes a plan slower) of test_qa_properties / test_qa18."""
    from dataclasses import replace

    from trainsim.api import as_run
    from trainsim.parallel.plan import RECOMPUTE, Plans
    from trainsim.parallel.schedules import code
    from trainsim.plan_estimate import estimate_plans

    run = as_run(spec)
    p = Plans.from_columns(**{k: plan[k] for k in ("tp", "pp", "vpp", "ep", "etp", "cp", "dp", "zero", "mb",
                                                   "node_limit")},
                           recompute=RECOMPUTE.index(plan["recompute"]), schedule=code(plan["schedule"]))
    c = run.system.chip
    chip = c.with_(hbm_bw=c.hbm_bw * factor) if what == "hbm_bw" else \
        c.with_(peak_flops={k: v * factor for k, v in c.peak_flops.items()})
    faster = replace(run, system=run.system.with_(chip=chip))
    return float(estimate_plans(faster, p).step_time_s[0] / estimate_plans(run, p).step_time_s[0])


def one_line(code: int, err: str, want: int) -> str:
    """The CLI's bad-input / no-answer contract: exit code ``want`` and exactly one non-empty line on stderr, no
    traceback; returns that line (the one copy the QA test files share)."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == want and len(lines) == 1 and "Traceback" not in err, (code, err[-600:])
    return lines[0]


def infer_json(tmp_path, body: dict) -> dict:
    """``trainsim.api.serving.infer`` of a serving spec written to ``tmp_path``, as its JSON document (the dict
    ``trainsim infer --json`` prints)."""
    import json

    from trainsim.api.serving import infer
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(body))
    return json.loads(json.dumps(infer(p).to_dict()))
