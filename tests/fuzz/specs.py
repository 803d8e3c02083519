"""Hostile inputs for the trainsim CLI: seed specs of every kind, hypothesis strategies that mutate them (values,
types, structure, encodings), and one function that runs a case and classifies the outcome.

Used by ``tests/test_fuzz.py`` (in-process, >= 2,000 examples) and ``scripts/fuzz.py`` (10,000 cases, each in a
forked child process with a time limit, counts by outcome).

Outcomes: ``ok`` (exit 0, output sane), ``no-answer`` (exit 1), ``bad-input`` (exit 2, one line on stderr) are
acceptable; ``bug`` (exit 3), ``traceback`` (an exception escaped), ``multi-line`` (exit 2 with more than one line),
``nonsense`` (exit 0 with a non-finite or impossible number in the JSON) and ``hang`` are failures.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import math

import yaml
from hypothesis import strategies as st

TINY_MODEL = {"layers": 4, "hidden": 512, "heads": 8, "ffn": 2048, "vocab": 32000, "ffn_act": "swiglu"}
TINY_MOE = {"layers": 4, "hidden": 512, "heads": 8, "kv_heads": 2, "ffn": 1024, "vocab": 32000, "ffn_act": "swiglu",
            "moe": {"experts": 8, "top_k": 2, "expert_ffn": 256, "dense_layers": 1}}
INLINE_SYSTEM = {"chip": {"name": "x", "bf16_tflops": 989, "fp8_tflops": 1979, "hbm": "80 GB",
                          "hbm_bandwidth": "3.35 TB/s"},
                 "scale_up": {"size": 8, "bandwidth": "450 GB/s"}, "scale_out": {"bandwidth": "400 Gb/s"}}

#: seed documents: (kind, document); every one is valid and answers quickly
SEEDS: list[tuple[str, dict]] = [
    ("run", {"name": "tiny", "model": TINY_MODEL, "system": "dgx-h100", "chips": 16,
             "training": {"tokens": "10B", "seq_len": 2048, "global_batch_seqs": 64, "precision": "bf16"},
             "plan": {"tp": 2, "pp": 2, "cp": 1, "ep": 1, "zero": 1, "recompute": "none", "micro_batch": 1}}),
    ("run", {"model": TINY_MOE, "system": INLINE_SYSTEM, "chips": 8,
             "training": {"tokens": "1T", "seq_len": 1024, "global_batch_tokens": "1M", "precision": "fp8"},
             "plan": {"tp": 1, "pp": 1, "cp": 1, "ep": 4, "zero": 2, "recompute": "selective",
                      "micro_batch": 2}}),
    ("run", {"model": "llama-3.1-8b", "system": "hgx-h20", "chips": 64,
             "training": {"tokens": "1T", "seq_len": 4096, "global_batch_seqs": 256, "precision": "fp8"},
             "plan": {"tp": 1, "pp": 1, "cp": 1, "ep": 1, "zero": 1, "recompute": "none", "micro_batch": 1}}),
    ("serving", {"name": "s", "model": TINY_MODEL, "system": "hgx-h800",
                 "serving": {"input_len": 512, "output_len": 128, "precision": "bf16", "kv_precision": "bf16"},
                 "latency": {"tpot_ms": 50}}),
    ("posttrain", {"name": "p", "kind": "opd",
                   "clusters": {"main": {"system": "hgx-h800", "chips": 64}, "b": {"system": "dgx-h100", "chips": 64}},
                   "links": [{"between": ["main", "b"], "bandwidth": "10 Gb/s", "latency": "30 ms"}],
                   "student": {"model": "llama-3.1-8b", "cluster": "main", "precision": "bf16"},
                   "teachers": [{"name": "t", "model": "llama-3.1-8b", "cluster": "b", "share": 1.0}],
                   "step": {"prompts": 64, "samples_per_prompt": 4, "prompt_len": 512, "rollout_len": 1024,
                            "steps": 10, "mode": "async", "logprobs": "sampled"}}),
    ("sweep", {"name": "sw", "base": "run.yaml", "axes": {"chips": [8, 16]}, "record": ["inputs", "time"]}),
]

#: hostile scalar values
HOSTILE = [0, -1, 1, 2, 3, 7, 1.5, -0.0, 1e400, -1e400, float("nan"), True, False, None, "", " ", "abc", "-1T",
           "1e400", "inf", "nan", ".inf", "inf GB/s", "-3 TB/s", "0 GB", "1 parsec", "x" * 200, "9" * 400,
           10**30, -(10**30), 10**7 + 1, 2**31, 2**63, 10**400, "1" * 5000, [], {}, [1, 2], {"a": 1}, "ü€😀",
           "\x00", "1,000", "1_000", "2M", "14.8T", "400 Gb/s", "3.2 TB/s", "80 GiB", "fp8", "bf16", "fp4",
           "flash", "1f1b", "dualpipe", "full", "hgx-h800", "llama-3.1-8b", "deepseek-v3", 1024, 4096, 1000000,
           [[[[[[[[[[1]]]]]]]]]], "${HOME}", "../../../etc/passwd", "/dev/zero", "/dev/stdin", "run.yaml"]

#: extra keys (typos and keys from other kinds)
KEYS = ["tp", "pp", "ep", "etp", "cp", "dp", "zero", "vpp", "schedule", "recompute", "micro_batch", "chips",
        "tokens", "seq_len", "hidden", "heads", "kv_heads", "head_dim", "layers", "vocab", "ffn", "moe", "experts",
        "top_k", "bf16_tflops", "fp8_tflops", "hbm", "hbm_bandwidth", "size", "bandwidth", "latency", "model",
        "system", "name", "base", "axes", "record", "precision", "kind", "hiddden", "chip", "scale_up"]

COMMANDS = {
    "run": [["estimate", "{f}", "--json"], ["estimate", "{f}"], ["plan", "{f}", "--json", "--top", "2"],
            ["size", "{f}", "--days", "30", "--json"], ["model", "{m}", "--json"],
            # the other commands that read a run spec: beside a valid run, checked, reported, validated
            ["compare", "{f}", "{g}", "--json"], ["check", "{f}", "--json"], ["report", "{f}", "--json"],
            ["validate", "{f}", "--json"]],
    "serving": [["infer", "{f}", "--json"], ["check", "{f}", "--json"]],
    "posttrain": [["posttrain", "{f}", "--json"], ["check", "{f}", "--json"]],
    "sweep": [["sweep", "{f}", "-o", "{o}", "--quiet"], ["check", "{f}", "--json"]],
}


def _paths(doc, prefix=()):
    """Every path into a nested document (mapping keys and list indices)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def _set(doc, path, value):
    if not path:
        return value
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return doc


def _delete(doc, path):
    if not path:
        return doc
    node = doc
    for k in path[:-1]:
        node = node[k]
    del node[path[-1]]
    return doc


@st.composite
def mutations(draw):
    """A mutated document and how it is written: (kind, doc-or-text, encoding, command)."""
    kind, seed = draw(st.sampled_from(SEEDS))
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["value", "value", "value", "delete", "add", "retype", "number"]))
        try:
            if op == "value":
                doc = _set(doc, path, copy.deepcopy(draw(st.sampled_from(HOSTILE))))
            elif op == "number":
                doc = _set(doc, path, draw(st.one_of(st.integers(-10, 10**9), st.floats(allow_nan=True),
                                                     st.text(max_size=12))))
            elif op == "delete" and path:
                doc = _delete(doc, path)
            elif op == "add":
                node = doc
                for k in path:
                    node = node[k]
                if isinstance(node, dict):
                    node[draw(st.sampled_from(KEYS))] = copy.deepcopy(draw(st.sampled_from(HOSTILE)))
            elif op == "retype":
                node = doc
                for k in path:
                    node = node[k]
                doc = _set(doc, path, [node] if not isinstance(node, list) else {"a": node})
        except (KeyError, IndexError, TypeError):
            pass
    text = _dump(doc)
    text = draw(st.sampled_from([lambda t: t] * 6 + [_duplicate_key, _alias_bomb, _deep, _truncate, _long_unit,
                                                      _tabs]))(text)
    encoding = draw(st.sampled_from(["utf-8"] * 8 + ["utf-16", "latin-1", "binary", "bom"]))
    command = draw(st.sampled_from(COMMANDS[kind]))
    return kind, text, encoding, command


def _dump(doc) -> str:
    try:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except Exception:  # noqa: BLE001 - e.g. a value yaml cannot represent
        return json.dumps(doc, default=str)


def _duplicate_key(text: str) -> str:
    first = text.splitlines()[0] if text.strip() else "a: 1"
    return text + "\n" + first + "\n"


def _alias_bomb(text: str) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return text + "\n" + "\n".join(lines) + "\nname: *a8\n"


def _deep(text: str) -> str:
    return text + "\nnotes: " + "[" * 1000 + "]" * 1000 + "\n"


def _truncate(text: str) -> str:
    return text[: len(text) // 2]


def _long_unit(text: str) -> str:
    return text.replace("GB", "G" + "B" * 100_000, 1) if "GB" in text else text + "\nsystem: {chip: {hbm: '" + \
        "8" * 100_000 + " GB'}}\n"


def _tabs(text: str) -> str:
    return text.replace("  ", "\t", 1)


def encode(text: str, encoding: str) -> bytes:
    if encoding == "binary":
        return bytes(range(256)) + text.encode("utf-8", "surrogatepass")
    if encoding == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
    return text.encode(encoding, "replace")


def write_case(tmp, case) -> list[str]:
    """Write the case's files into folder ``tmp`` and return the argv."""
    from pathlib import Path

    kind, text, encoding, command = case
    tmp = Path(tmp)
    spec = tmp / f"{kind}.yaml"
    spec.write_bytes(encode(text, encoding))
    if kind == "sweep" or "{g}" in command:  # the base run of the sweep seed; the valid run compared beside it
        (tmp / "run.yaml").write_text(_dump(SEEDS[0][1]))
    model = "llama-3.1-8b"
    if kind == "run":
        try:
            doc = yaml.safe_load(text)
            m = doc.get("model") if isinstance(doc, dict) else None
            if isinstance(m, dict):
                (tmp / "model.yaml").write_text(_dump(m))
                model = str(tmp / "model.yaml")
            elif isinstance(m, str):
                model = m
        except Exception:  # noqa: BLE001 - the run command reports it
            pass
    return [a.format(f=str(spec), o=str(tmp / "out.parquet"), m=model, g=str(tmp / "run.yaml")) for a in command]


def classify(rc, out: str, err: str) -> tuple[str, str]:
    """(outcome, detail) of one finished run; see the module docstring."""
    if rc is None:
        return "traceback", err[-300:]
    if rc == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if len(lines) != 1 or "Traceback" in err:
            return "multi-line", err[-300:]
        return "bad-input", lines[0]
    if rc == 3:
        return "bug", err.strip()[-300:]
    if rc == 1:
        return ("traceback", err[-300:]) if "Traceback" in err else ("no-answer", err.strip()[-200:])
    if rc == 0:
        bad = nonsense(out)
        return ("nonsense", bad) if bad else ("ok", "")
    return "traceback", f"exit {rc}: {err[-300:]}"


_POSITIVE = {"step_time_s", "tokens_per_s_per_chip", "days", "chip_hours", "memory_per_chip_bytes",
             "mfu_at_precision", "hfu_at_precision"}


def nonsense(out: str) -> str:
    """'' when the output is sane, else what is wrong: a JSON number that is not finite, a positive quantity
    that is <= 0, an MFU/HFU at precision above 1."""
    text = out.strip()
    if not text.startswith(("{", "[")):
        return ""
    try:
        doc = json.loads(text)
    except ValueError:
        return ""  # not JSON (several documents or a table)

    bad = []

    def walk(x, key=""):
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, str(k))
        elif isinstance(x, list):
            for v in x:
                walk(v, key)
        elif isinstance(x, float):
            if not math.isfinite(x):
                bad.append(f"{key}={x}")
            elif key in _POSITIVE and x <= 0:
                bad.append(f"{key}={x} <= 0")
            elif key in ("mfu_at_precision", "hfu_at_precision") and x > 1 + 1e-9:
                bad.append(f"{key}={x} > 1")
        elif x is None and key in ("step_time_s", "tokens_per_s_per_chip", "mfu"):
            bad.append(f"{key}=null")

    walk(doc)
    return "; ".join(bad[:3])


def run_in_process(argv: list[str]) -> tuple[int | None, str, str]:
    """Run the CLI in this process; (exit code or None for an escaped exception, stdout, stderr)."""
    from trainsim.cli import app
    from trainsim.cli.handler import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = run(app, argv)
        except BaseException as exc:  # noqa: BLE001 - the handler must not let anything through
            import traceback

            err.write("Traceback (escaped the handler)\n" + "".join(traceback.format_exception(exc)))
            rc = None
    return rc, out.getvalue(), err.getvalue()
