"""The serving fit's measured limits (scripts/calibrate_inference.py GEMM_MAX, STEP_MIN; decodekern, issue 18).

Each limit is a published component measurement, derived here by hand from the figure its source states:
* NVIDIA GEMM ceiling: DeepGEMM's README (deepseek-ai/DeepGEMM, news 2025-04-18) "up to 1550 TFLOPS" FP8 on H800,
  whose dense FP8 peak is 1,979 TFLOPS (NVIDIA H100 SXM5 datasheet): 1550 / 1979 = 0.7832;
* Ascend GEMM ceiling: CloudMatrix384 serving paper (arXiv 2506.12708 v3) Table 10, INT8 GEMM at 77.4-82.7% of one
  die's peak: the top of that range, 0.827;
* fixed host time per step (not fitted; the fit's host constant is the time per running sequence): vllm-project/vllm
  pull request 11133, the gap between CUDA-graph decode steps with V1 asynchronous scheduling "150-170us": the
  bottom of that range, 150 us, written to inference.yaml as step_overhead_s.

The fit itself is checked on a synthetic error matrix whose unconstrained optimum lies beyond the GEMM limit: the
bounded fit must stop at it and report it as such, the unbounded one must go past and flag it; a host time per
sequence at the grid's floor is flagged as such.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("calibrate_inference")


def test_limits_are_their_published_figures(script):
    assert script.GEMM_MAX["nvidia"][0] == pytest.approx(1550 / 1979, abs=5e-4)
    assert script.GEMM_MAX["ascend"][0] == pytest.approx(0.827, abs=5e-4)
    assert script.STEP_MIN[0] == pytest.approx(150e-6, rel=1e-9)
    # the limits are grid points, so the fit can sit exactly at one
    assert all(any(abs(g - b) < 1e-12 for g in script.GEMM) for b, _ in script.GEMM_MAX.values())
    assert script.SEQ[0] == 0.0


def _synthetic(script):
    """Two NVIDIA points and one AMD point whose log error is |log(gemm / 0.95)| + 1e3 x seq: the points want GEMM
    efficiency 0.95 (above NVIDIA's measured 0.783) and no host time per sequence."""
    seq, mem, gemm = (np.array(x) for x in (script.SEQ, script.MEM, script.GEMM))
    e = np.abs(np.log(gemm / 0.95))[None, None, :] + 1e3 * seq[:, None, None] + 0.0 * mem[None, :, None]
    E = np.repeat(e[None, ..., None], 3, axis=-1)     # (a2a = 1, seq, mem, gemm, 3 points)
    vendors = np.array(["nvidia", "nvidia", "amd"])
    return E, vendors, np.ones(3, bool)


def test_bounded_fit_stops_at_the_limits_and_says_so(script):
    E, vendors, mask = _synthetic(script)
    _, ia, ist, per = script.fit(E, vendors, mask, script.limits_ok(vendors))
    nv_gemm, amd_gemm = script.GEMM[per["nvidia"][1]], script.GEMM[per["amd"][1]]
    assert script.SEQ[ist] == 0.0
    assert nv_gemm == pytest.approx(1550 / 1979, abs=5e-4)     # the highest allowed, closest to 0.95
    assert amd_gemm == pytest.approx(0.95)                      # no AMD ceiling: the unconstrained optimum
    notes = script.at_limits(1.0, script.SEQ[ist], {"nvidia": (0.5, nv_gemm), "amd": (0.5, amd_gemm)})
    assert "seq_overhead_s 0 us at the grid's floor" in notes
    assert f"nvidia gemm_eff {nv_gemm:g} at its measured ceiling" in notes
    assert not any(n.startswith("amd gemm_eff") for n in notes)


def test_unbounded_fit_goes_past_the_limits_and_flags_them(script):
    E, vendors, mask = _synthetic(script)
    _, _, ist, per = script.fit(E, vendors, mask, script.limits_ok(vendors, bounded=False))
    nv_gemm = script.GEMM[per["nvidia"][1]]
    assert script.SEQ[ist] == 0.0 and nv_gemm == pytest.approx(0.95)
    notes = script.at_limits(1.0, 0.0, {"nvidia": (0.5, nv_gemm)}, bounded=False)
    assert any(n.startswith("nvidia gemm_eff 0.95 above its measured ceiling") for n in notes)
