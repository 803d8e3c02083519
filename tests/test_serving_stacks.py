"""Serving stacks as profiles (issue 18, "unstated is not optimal"): trainsim/inference/data/serving_stacks.yaml
states each stack's limits with its source, a serving spec names its stack (``serving.stack``), and the serving
model reads the limits from the profile instead of the chip vendor.

Every expected number below is the one in the cited source, written here from that source:

* vLLM ``custom_all_reduce.py`` (00d618aab6): ``_SUPPORTED_WORLD_SIZES = [2, 4, 6, 8]``, ``max_size=8192 * 1024``
  (no ROCm special case); ``arg_utils.py``: ``device_memory >= 70 * GiB_bytes and "a100" not in device_name`` ->
  ``max_num_seqs`` 1024, else 256; V0 (v0.4.3) ``EngineArgs.max_num_seqs: int = 256``.
* SGLang ``custom_all_reduce.py`` (004e6561cb): the same sizes, ``_MAX_CAR_SIZE = 8192 * 1024``, on ROCm
  ``2 * 8192 * 1024``; ``model_runner.py``: ``max_num_reqs = min(max(int(tokens / context_len * 512), 2048), 4096)``.
* TensorRT-LLM ``customAllReduceUtils.h`` (005b299bd3): ``if (worldSize <= 2) return 16 * 1000 * 1000; return 8 *
  1000 * 1000;``; ``customAllReduceKernels.cu``: "Custom all reduce only supported on {2, 4, 6, 8} GPUs per node";
  ``llm_args.py``: ``max_batch_size ... default=2048``, ``disable_overlap_scheduler ... default=False``.
* vllm-ascend ``npu_communicator.py`` (2915a3c9cf): ``self.ca_comm = None``.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import one_line

from trainsim.api.serving import infer
from trainsim.catalog.load import get_system
from trainsim.errors import TrainsimError
from trainsim.inference.serve import setup_for
from trainsim.inference.spec import parse_serving
from trainsim.inference.stacks import default_max_running, profile, stack_ids, vendor_stack
from trainsim.inference.step import custom_all_reduce_time, tp_all_reduce_time
from trainsim.model.load import resolve_model
from trainsim.perf.collectives import all_reduce_time

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024
GiB = 1024 ** 3


# ---------------------------------------------------------------- each profile value against its source


def test_vllm_profile_is_vllms_code():
    p = profile("vllm")
    assert p["custom_all_reduce"]["world_sizes"] == [2, 4, 6, 8]
    assert p["custom_all_reduce"]["max_bytes"] == 8192 * 1024
    assert p["custom_all_reduce"]["max_bytes_amd"] is None            # cuda_communicator: the default on ROCm too
    m = p["max_running"]
    assert (m["value"], m["large_gpu_value"], m["large_gpu_min_bytes"], m["large_gpu_excludes"]) == \
        (256, 1024, 70 * GiB, ["a100"])
    assert p["host_overlap"] is True


def test_vllm_before_0_8_is_the_v0_engine():
    """v0.4.3 (the MLPerf v4.1 AMD submission's): max_num_seqs 256 on every GPU, the synchronous V0 loop."""
    p = profile("vllm", "0.4.3+rocm614")
    assert p["max_running"] == {"value": 256}
    assert p["host_overlap"] is False and p["host_loop"] == "vllm-v0"
    assert profile("vllm", "0.8.0")["max_running"]["large_gpu_value"] == 1024
    assert profile("vllm", "0.8.0")["host_overlap"] is True


def test_sglang_profile_is_sglangs_code():
    p = profile("sglang")
    assert p["custom_all_reduce"]["world_sizes"] == [2, 4, 6, 8]
    assert p["custom_all_reduce"]["max_bytes"] == 8192 * 1024
    assert p["custom_all_reduce"]["max_bytes_amd"] == 2 * 8192 * 1024
    assert p["max_running"] == {"value": 2048, "large_gpu_value": None, "large_gpu_min_bytes": None,
                                "large_gpu_excludes": []}   # min(max(..., 2048), 4096) is at least 2,048
    assert p["host_overlap"] is True


def test_tensorrt_llm_profile_is_trtllms_code():
    p = profile("tensorrt-llm")
    assert p["custom_all_reduce"]["world_sizes"] == [2, 4, 6, 8]
    assert p["custom_all_reduce"]["max_bytes_at_most_2_ranks"] == 16 * 1000 * 1000
    assert p["custom_all_reduce"]["max_bytes"] == 8 * 1000 * 1000
    assert p["max_running"]["value"] == 2048
    assert p["host_overlap"] is True      # disable_overlap_scheduler defaults to False


def test_library_all_reduce_stacks():
    """vllm-ascend (ca_comm = None) and CloudMatrix-Infer all-reduce through HCCL; CloudMatrix-Infer publishes no
    default cap (every row states its batch)."""
    assert profile("vllm-ascend")["custom_all_reduce"] is None
    assert profile("cloudmatrix-infer")["custom_all_reduce"] is None
    assert profile("cloudmatrix-infer")["max_running"] is None


def test_every_statement_has_a_source():
    for sid in stack_ids():
        p = profile(sid)
        for k in ("custom_all_reduce", "max_running", "host_overlap"):
            assert len(p[f"{k}_source"]) > 40, (sid, k)


@pytest.mark.parametrize("chip, want", [("nvidia-h100-sxm5", 1024), ("nvidia-a100-sxm4-80gb", 256),
                                        ("amd-mi300x", 1024), ("ascend-910b2", 256)])
def test_vllm_default_cap_by_chip(chip, want):
    """>= 70 GiB and not an A100: 1,024 (H100 80 GiB, MI300X 192 GiB); A100 80 GiB and a 64 GiB 910B: 256."""
    from trainsim.catalog.load import get_chip
    assert default_max_running(profile("vllm"), get_chip(chip)) == want


def test_unstated_stack_is_the_vendors_usual_one():
    assert vendor_stack("nvidia") == "vllm" and vendor_stack("amd") == "vllm"
    assert vendor_stack("ascend") == "vllm-ascend"
    assert vendor_stack("google") == vendor_stack("ascend")   # 'other': vLLM's defaults, library all-reduce


# ---------------------------------------------------------------- TensorRT-LLM's rule, not vLLM's


@pytest.fixture(scope="module")
def arch():
    return resolve_model("llama-3.1-8b")


def _setups(arch):
    sysm = get_system("dgx-h100")
    return (setup_for(arch, sysm, stack=profile("tensorrt-llm")), setup_for(arch, sysm, stack=profile("vllm")))


def _ring(s, size, n):
    return float(all_reduce_time(size, np.int64(n), np.int64(1), s.system, s.calib.coll_eff))


def _custom(s, size, n):
    return float(custom_all_reduce_time(size, n, s.system, s.calib.coll_eff))


def test_tp8_message_between_8MB_and_8MiB(arch):
    """8,192,000 B at tp 8: TensorRT-LLM's workspace above 2 ranks is 8,000,000 B (decimal), so NCCL; vLLM's
    buffer is 8,388,608 B, so its custom kernel."""
    trt, vllm = _setups(arch)
    size = 8_192_000
    assert 8 * 1000 * 1000 <= size < 8192 * 1024
    assert float(tp_all_reduce_time(trt, size, 8)) == pytest.approx(_ring(trt, size, 8), rel=1e-12)
    assert float(tp_all_reduce_time(vllm, size, 8)) == pytest.approx(_custom(vllm, size, 8), rel=1e-12)
    assert _ring(trt, size, 8) != pytest.approx(_custom(vllm, size, 8), rel=1e-3)


def test_12MiB_message(arch):
    """12 MiB = 12,582,912 B. tp 2: under TensorRT-LLM's 16,000,000 B two-rank workspace (custom kernel), over
    vLLM's 8 MiB (NCCL). tp 8: over TensorRT-LLM's 8,000,000 B, so NCCL under both rules."""
    trt, vllm = _setups(arch)
    size = 12 * MiB
    assert float(tp_all_reduce_time(trt, size, 2)) == pytest.approx(_custom(trt, size, 2), rel=1e-12)
    assert float(tp_all_reduce_time(vllm, size, 2)) == pytest.approx(_ring(vllm, size, 2), rel=1e-12)
    assert _custom(trt, size, 2) < _ring(vllm, size, 2)
    assert float(tp_all_reduce_time(trt, size, 8)) == pytest.approx(_ring(trt, size, 8), rel=1e-12)


def _decode(tmp_path, stack, chips, batch):
    body = {"name": f"trt-{stack}", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": chips,
            "serving": {"phase": "decode", "input_len": 128, "output_len": 128, "batch": batch, "stack": stack},
            "plan": {"tp": chips, "pp": 1}}
    p = tmp_path / f"{stack}-{chips}-{batch}.yaml"
    p.write_text(yaml.safe_dump(body))
    return json.loads(json.dumps(infer(p).to_dict()))["decode"]["step_time_s"]


def test_a_tensorrt_llm_spec_is_priced_by_its_rule(tmp_path):
    """Llama 3.1 8B (hidden 4,096: 8,192 B per token of BF16 activations) decoding on one H100 server. tp 8,
    batch 1,000: 8,192,000 B per all-reduce, NCCL's ring under TensorRT-LLM and the custom kernel under vLLM, so
    TensorRT-LLM's step is the slower; batch 512 (4 MiB): the custom kernel under both, the same step. tp 2, batch
    1,536 (12 MiB): TensorRT-LLM's custom kernel against vLLM's ring, so TensorRT-LLM's is the faster."""
    assert _decode(tmp_path, "tensorrt-llm", 8, 1000) > _decode(tmp_path, "vllm", 8, 1000)
    assert _decode(tmp_path, "tensorrt-llm", 8, 512) == pytest.approx(_decode(tmp_path, "vllm", 8, 512), rel=1e-12)
    assert _decode(tmp_path, "tensorrt-llm", 2, 1536) < _decode(tmp_path, "vllm", 2, 1536)


# ---------------------------------------------------------------- bad input


def _doc(**serving):
    return {"name": "x", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8,
            "serving": {"phase": "decode", "input_len": 128, "output_len": 128, **serving}}


def test_unknown_stack_names_field_value_and_ids():
    with pytest.raises(TrainsimError) as e:
        parse_serving(_doc(stack="trt-llm"), where="s.yaml")
    msg = str(e.value)
    assert "s.yaml" in msg and "serving.stack" in msg and "'trt-llm'" in msg and "tensorrt-llm" in msg


def test_unknown_stack_with_no_close_match_lists_the_ids():
    with pytest.raises(TrainsimError) as e:
        parse_serving(_doc(stack="foo"), where="s.yaml")
    assert all(sid in str(e.value) for sid in stack_ids())


def test_bad_stack_version_is_refused():
    with pytest.raises(TrainsimError) as e:
        parse_serving(_doc(stack="vllm", stack_version="latest"), where="s.yaml")
    assert "serving.stack_version" in str(e.value)


def test_cli_bad_stack_is_one_line_exit_2(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(_doc(stack="foo")))
    r = subprocess.run([sys.executable, "-m", "trainsim", "infer", str(p)], cwd=ROOT, capture_output=True,
                       text=True)
    line = one_line(r.returncode, r.stderr, 2)
    assert "bad.yaml" in line and "serving.stack" in line and "'foo'" in line and "tensorrt-llm" in line


def test_validation_rows_name_their_stack():
    """Every serving validation row whose source names a stack states it (the DeepSeek in-house system has no
    profile: those rows keep the vendor default)."""
    for f in sorted((ROOT / "validation" / "inference").glob("*.yaml")):
        doc = yaml.safe_load(f.read_text())
        text = doc["reported"]["stack"]
        if "DeepSeek in-house" in text:
            assert "stack" not in doc["serving"], f.name
            continue
        want = ("tensorrt-llm" if "TensorRT-LLM" in text else "sglang" if "SGLang" in text
                else "cloudmatrix-infer" if "CloudMatrix" in text else "vllm" if "vLLM" in text else None)
        assert doc["serving"].get("stack") == want, f.name
