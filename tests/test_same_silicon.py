"""Chips of one silicon (hardware.yaml ``same_silicon_as``) calibrate and predict as one chip (issue 14).

The H800 SXM5 is the H100 SXM5's GH100 die at the same clocks with NVLink cut from 900 to 400 GB/s bidirectional
(DeepSeek-AI arXiv 2505.09343; DeepSeek's FlashMLA deep dive: 990 TFLOPS peak, ~865 TFLOPS at ~1,600 MHz, so
1,830 MHz at the peak, the H100 SXM5's boost clock). QA found Llama 3 8B on 64 chips stepping faster on the H800
than on the H100 (3.264 s vs 3.286 s): the H100 had a chip-model gemm_eff fit (0.5788) and the H800 fell back to
the Hopper family's (0.5839). Catalogs are packaged files (no user-supplied hardware catalog, so no CLI path): a
bad ``same_silicon_as`` is refused when the package's catalog loads, as one line naming the file and the field.
"""
from __future__ import annotations

import copy
import math

import pytest
import yaml

from trainsim import api
from trainsim.catalog import load
from trainsim.catalog.load import chips, get_chip, silicon_of
from trainsim.catalog.schema import HardwareFile
from trainsim.errors import TrainsimError
from trainsim.perf.calibration import calib_for, calib_key, load_calibration
from trainsim.validate.calibrate import CalRun

H100, H800 = "nvidia-h100-sxm5", "nvidia-h800-sxm5"
A100, A800 = "nvidia-a100-sxm4-80gb", "nvidia-a800-sxm4-80gb"


def _spec(system: str, seq: int, batch: int, plan: dict | None = None) -> dict:
    d = {"model": "llama-3.1-8b", "system": system, "chips": 64,
         "training": {"seq_len": seq, "global_batch_seqs": batch, "precision": "bf16", "tokens": 1e12}}
    if plan is not None:
        d["plan"] = plan
    return d


def test_catalog_pairs_share_die_not_interconnect():
    """The pairs the sources name, and each pair's compute and HBM fields equal (same die at the same clocks: the
    same dense peaks; the same HBM stacks); what differs is the NVLink cut: 400 vs 900 (H800) and 400 vs 600
    (A800) GB/s bidirectional, i.e. 200 vs 450 and 200 vs 300 GB/s per direction."""
    table = chips()
    pairs = {c.id: c.same_silicon_as for c in table.values() if c.same_silicon_as}
    assert pairs[H800] == H100 and pairs[A800] == A100
    for cid, other in pairs.items():
        a, b = table[cid], table[other]
        for prec in ("bf16", "fp8", "fp4"):
            assert a.peak_flops.get(prec) == b.peak_flops.get(prec), (cid, prec)
        assert (a.hbm_bytes, a.hbm_bw) == (b.hbm_bytes, b.hbm_bw), cid
        assert a.family == b.family
    assert get_chip(H800).scale_up_bw == 200e9 and get_chip(H100).scale_up_bw == 450e9
    assert get_chip(A800).scale_up_bw == 200e9 and get_chip(A100).scale_up_bw == 300e9
    assert silicon_of(H800) == H100 and silicon_of(H100) == H100 and silicon_of("not-a-catalog-chip") == \
        "not-a-catalog-chip"


@pytest.mark.parametrize("fw", [None, "megatron-bridge-2026", "megatron-bridge-2025", "deepseek-hai-llm"])
def test_lookup_resolves_through_the_silicon(fw):
    """The H800 takes whatever the calibration holds for the H100 SXM5 (chip model, chip model with its stack)."""
    fam = get_chip(H800).family
    assert calib_key(fam, framework=fw, chip=H800) == calib_key(fam, framework=fw, chip=H100)
    assert calib_for(fam, framework=fw, chip=H800) == calib_for(fam, framework=fw, chip=H100)


def test_lookup_of_a_chip_fit_reaches_the_sibling(tmp_path):
    """A calibration file with a chip-model fit for the H100 SXM5 only (0.50) and a family value (0.70): the H800
    gets 0.50, as the H100 does; the A800, whose silicon has no chip fit here, the Ampere family's 0.65."""
    f = tmp_path / "cal.yaml"
    f.write_text(yaml.safe_dump({"families": {"nvidia-hopper": {"gemm_eff": 0.70}, "nvidia-ampere": {"gemm_eff": 0.65}},
                                 "chips": {H100: {"gemm_eff": 0.50, "family": "nvidia-hopper"}}}))
    table = load_calibration(str(f))
    assert calib_for("nvidia-hopper", table, chip=H800).gemm_eff == 0.50
    assert calib_for("nvidia-hopper", table, chip=H100).gemm_eff == 0.50
    assert calib_for("nvidia-ampere", table, chip=A800).gemm_eff == 0.65


def test_fit_groups_runs_by_silicon():
    """scripts/calibrate.py's chip-model group of an H800 run is the H100 SXM5's (validate/calibrate.py CalRun.chip
    and chain), so its runs count toward the one fit both chips look up."""
    r800 = CalRun("h800", api.as_run(_spec("hgx-h800", 4096, 1024)), "nvidia-hopper", 1.0, None)
    r100 = CalRun("h100", api.as_run(_spec("dgx-h100", 4096, 1024)), "nvidia-hopper", 1.0, None)
    assert r800.chip == r100.chip == H100
    assert r800.chain == r100.chain == (H100, "nvidia-hopper", "nvidia")


def test_h800_never_faster_on_a_compute_bound_job():
    """Llama 3.1 8B, 64 chips, 4,096 x 1,024 sequences, BF16 (QA's case class). Same die, clocks and HBM: every
    compute and memory term of a plan is the same on both chips; the H800's scale-up links are slower (200 vs
    450 GB/s per direction), so each plan's communication is no faster; hence its best plan is no faster. On the
    stated data-parallel plan (tp 1, ZeRO-1) the step is compute-bound (gradients 16 GB per chip, reduce-scattered
    behind the backward pass): the GEMM, attention, memory-bound and optimizer terms are equal to rounding (the
    old lookup priced the H800's GEMMs at the Hopper family's 0.5839 and the H100's at its own 0.5788: the H800's
    compute_gemm came out 0.9% shorter)."""
    best = {s: api.estimate(_spec(s, 4096, 1024)).step_time_s for s in ("dgx-h100", "hgx-h800")}
    assert best["hgx-h800"] >= best["dgx-h100"]
    plan = {"tp": 1, "pp": 1, "cp": 1, "zero": 1, "micro_batch": 1}
    e100, e800 = (api.estimate(_spec(s, 4096, 1024, plan)) for s in ("dgx-h100", "hgx-h800"))
    assert e800.step_time_s >= e100.step_time_s
    for k in ("compute_gemm", "attention", "memory_bound", "optimizer"):
        assert math.isclose(e800.breakdown[k], e100.breakdown[k], rel_tol=1e-9), k
    assert e100.breakdown["compute_gemm"] > 0.8 * e100.step_time_s   # compute-bound indeed


def test_h800_slower_under_tensor_parallel_traffic():
    """Llama 3.1 8B (32 layers, hidden 4,096), tp 8 with sequence parallelism, 8,192-token sequences, 512 per step
    on 64 chips: dp 8, 64 micro-batches per chip. Per layer and micro-batch 4 all-gathers / reduce-scatters forward
    and 4 backward, each moving (tp - 1) / tp x 8,192 x 4,096 x 2 B = 58.7 MB per chip: 32 x 8 x 58.7 MB x 64 =
    962 GB per chip and step. At line rate that is 962 / 200 = 4.81 s on the H800 and 962 / 450 = 2.14 s on the
    H100: 2.67 s more. Half of it hidden behind compute at most (Megatron overlaps only part of the TP
    collectives without userbuffers), the H800's step is at least 1.3 s longer."""
    plan = {"tp": 8, "pp": 1, "cp": 1, "micro_batch": 1}
    e100, e800 = (api.estimate(_spec(s, 8192, 512, plan)) for s in ("dgx-h100", "hgx-h800"))
    assert e800.step_time_s - e100.step_time_s >= 0.5 * (962 / 200 - 962 / 450)
    assert e800.breakdown["tp_comm"] > e100.breakdown["tp_comm"]
    assert math.isclose(e800.breakdown["compute_gemm"], e100.breakdown["compute_gemm"], rel_tol=1e-9)


def _catalog_with(monkeypatch, edit) -> None:
    doc = copy.deepcopy(load._read_yaml("hardware.yaml"))
    for c in doc["chips"]:
        edit(c)
    monkeypatch.setattr(load, "_read_yaml", lambda name: doc)
    load._validate(HardwareFile, "hardware.yaml")


@pytest.mark.parametrize("edit, words", [
    (lambda c: c["id"] == H800 and c["same_silicon_as"].update(value="nvidia-h100-sxm9"),
     ["same_silicon_as", "nvidia-h100-sxm9", "not another catalog chip id"]),
    (lambda c: c["id"] == H800 and c["same_silicon_as"].update(value=H800),
     ["same_silicon_as", H800, "not another catalog chip id"]),
    (lambda c: c["id"] == H800 and c["bf16_dense_tflops"].update(value=900),
     ["bf16_dense_tflops", "900", "differs from same_silicon_as nvidia-h100-sxm5", "989"]),
    (lambda c: c["id"] == A100 and c.update(same_silicon_as={"value": A800, "source": ["derived"],
                                                              "confidence": "low"}),
     ["same_silicon_as", "expected the silicon's own chip"]),
])
def test_schema_refuses_a_bad_same_silicon_as(monkeypatch, edit, words):
    """One line naming the catalog file, the chip's field, the value and what was expected."""
    with pytest.raises(TrainsimError) as exc:
        _catalog_with(monkeypatch, edit)
    msg = str(exc.value)
    assert "\n" not in msg and "hardware.yaml" in msg and all(w in msg for w in words), msg
