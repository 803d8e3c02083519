"""Constants of the inference model, read from ``inference/data/inference.yaml`` (each with its source).

Four are fitted by ``scripts/calibrate_inference.py`` on the serving points of ``validation/inference/`` (L1 on log
errors, leave-one-out table): ``mem_eff`` (fraction of HBM bandwidth reached by weight and KV-cache streaming),
``gemm_eff`` (fraction of the dense peak reached by compute-bound GEMMs), ``a2a_eff`` (fraction of the collective
line rate that expert-parallel dispatch/combine reaches: small messages, many peers) and ``seq_overhead_s`` (host
time per running sequence per forward step that an overlapping engine leaves exposed: scheduling, input
preparation, sampling; the fixed per-step part, ``step_overhead_s``, is the measured gap between CUDA-graph decode
steps). The rest describe components
(attention kernel efficiency, collective efficiency, launch latency, two-micro-batch overlap, expert load
imbalance, buffer memory) and come from component measurements, each with its source. ``expert_stream_eff`` holds
the routed-expert kernels' measured weight-streaming rates per chip family and expert precision (kernel benchmarks,
not fitted); a family / precision without one streams its experts at ``mem_eff``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from importlib import resources


from ..catalog.load import silicon_of
from ..catalog.types import Chip
from ..errors import TrainsimError
from ..perf.calibration import Calib
from ..perf.calibration import constant_sources as training_sources
from ..yamlload import load_data


@dataclass(frozen=True)
class InferCalib:
    """The inference model's constants: achieved fractions of HBM bandwidth, GEMM and attention peak and
    collective bandwidth (per network level), per-GEMM latency (s), communication overlap, expert imbalance,
    reserved buffer (bytes), all-to-all efficiency, per-step overhead (s), per-sequence host time of a synchronous
    engine loop (s) and per-vendor efficiency overrides."""

    mem_eff: float = 0.80
    gemm_eff: float = 0.65
    attn_eff: float = 0.65
    coll_eff: tuple[float, ...] = (0.80, 0.85, 0.85)
    # the training engine's per-kernel constant (perf/data/constants.yaml), not a copy of its value
    gemm_latency_s: float = field(default_factory=lambda: training_kernel_latency_s())
    comm_overlap: float = 0.5
    expert_imbalance: float = 1.0
    buffer_bytes: float = 4e9
    a2a_eff: float = 1.0
    step_overhead_s: float = 0.0
    #: host seconds per running sequence (of one scheduler) per step that the GPU waits for: fitted for engines that
    #: overlap their host work; :func:`engine_host_calib` sets it to a synchronous loop's per-sequence time for
    #: ``host_overlap: false``
    seq_overhead_s: float = 0.0
    #: per-sequence host time of a synchronous engine loop (vLLM V0): scheduling, input preparation, sampling
    #: and output processing, measured ~20 ms per step at 200 running sequences (inference/data/inference.yaml)
    sync_host_s_per_seq: float = 0.0
    #: per-sequence host time per step of vLLM V1's engine loop without async scheduling (inference.yaml)
    v1_sync_host_s_per_seq: float = 0.0
    #: host time of the same Python / launch work on a Grace host whose processes are not NUMA-bound, over an x86
    #: host (inference.yaml)
    unbound_grace_host_factor: float = 1.0
    #: per chip vendor (``vendor_key``): (vendor, mem_eff, gemm_eff) overriding the two efficiencies
    vendor_eff: tuple = ()
    #: measured weight-streaming rates of the routed-expert kernels, (chip family, expert precision, fraction of HBM
    #: peak) rows (inference.yaml ``expert_stream_eff``); a family / precision without a row streams at ``mem_eff``
    expert_stream_eff: tuple = ()

    def for_chip(self, chip: Chip) -> "InferCalib":
        """These constants with the chip vendor's own efficiencies where the calibration fitted them."""
        key = vendor_key(chip)
        for v, mem, gemm in self.vendor_eff:
            if v == key:
                return replace(self, mem_eff=mem, gemm_eff=gemm, vendor_eff=())
        return self

    def expert_mem_eff(self, chip: Chip, precision: str):
        """Fraction of HBM bandwidth at which the routed-expert GEMMs stream their weights on ``chip`` at the expert
        ``precision``: the measured kernel rate of that chip family and precision (``expert_stream_eff``) where
        there is one, else the fitted ``mem_eff`` every other memory-bound kernel gets."""
        for fam, prec, eff in self.expert_stream_eff:
            if fam == chip.family and prec == precision:
                return eff
        return self.mem_eff

    def with_(self, **kw) -> "InferCalib":
        """A copy with the constants in ``kw`` replaced; an unknown name raises :class:`TrainsimError`
        listing the valid ones."""
        bad = set(kw) - {f.name for f in fields(self)}
        if bad:
            raise TrainsimError(f"unknown inference constant(s) {sorted(bad)}; expected one of "
                                f"{[f.name for f in fields(self)]}")
        return replace(self, **kw)


#: the per-sequence host time (an :class:`InferCalib` field) of each engine loop that does not overlap its host work
SYNC_LOOP_PER_SEQ = {"vllm-v0": "sync_host_s_per_seq", "vllm-v1": "v1_sync_host_s_per_seq"}


def engine_host_calib(calib: InferCalib, chip: Chip, *, host_overlap: bool = True, numa_bound: bool = True,
                      loop: str = "vllm-v1") -> InferCalib:
    """``calib`` with the host terms of a decode step as the serving engine's host loop pays them: the one place
    serving specs (``host_overlap``) and RL rollout servers (``student.rollout_host_overlap`` /
    ``rollout_numa_bound``) set them.

    A step costs ``f x (step_overhead_s + seq_overhead_s x n)`` of host time the GPU waits for (``n`` running
    sequences of one scheduler; :mod:`.step`). ``host_overlap`` false: ``seq_overhead_s`` is the ``loop``'s
    synchronous per-sequence time (:data:`SYNC_LOOP_PER_SEQ`): vLLM V1 without async scheduling (the engine core
    schedules, prepares inputs and applies the sampled tokens between two GPU steps, vllm/v1/engine/core.py
    ``EngineCore.step``; vLLM issue #10634: a 5-6 ms gap between two decode steps at 256 running) or vLLM V0's
    synchronous loop (issue #6801: ~20 ms at 200). ``f = unbound_grace_host_factor`` on a Grace host (catalog
    ``host_cpu: grace``) whose processes are not NUMA-bound (``numa_bound`` false), else 1.
    Example (hand): 128 running, no overlap, V1, x86: 0.15 ms + 128 x 21.5 us = 2.90 ms per step; on an unbound
    Grace host x 2.75 = 7.98 ms."""
    if not host_overlap:
        if loop not in SYNC_LOOP_PER_SEQ:
            raise ValueError(f"unknown engine loop {loop!r}: expected one of {sorted(SYNC_LOOP_PER_SEQ)}")
        calib = calib.with_(seq_overhead_s=getattr(calib, SYNC_LOOP_PER_SEQ[loop]))
    if not numa_bound and chip.host_cpu == "grace":
        f = calib.unbound_grace_host_factor
        calib = calib.with_(seq_overhead_s=calib.seq_overhead_s * f, step_overhead_s=calib.step_overhead_s * f)
    return calib


@lru_cache(maxsize=1)
def _doc() -> dict:
    text = resources.files("trainsim.inference").joinpath("data", "inference.yaml").read_text(encoding="utf-8")
    return load_data(text) or {}


def vendor_key(chip: Chip) -> str:
    """Calibration group of a chip for the serving efficiencies: the vendor prefix of its id (nvidia, ascend, amd)."""
    return chip.id.split("-")[0]


@lru_cache(maxsize=1)
def default_calib() -> InferCalib:
    """The constants of the shipped inference calibration file (its ``constants``, ``vendor_eff`` and
    ``expert_stream_eff``),
    over the dataclass defaults; read once."""
    kw = {}
    for name, entry in (_doc().get("constants") or {}).items():
        v = entry["value"]
        kw[name] = tuple(float(x) for x in v) if isinstance(v, list) else float(v)
    ve = tuple((k, float(e["mem_eff"]), float(e["gemm_eff"])) for k, e in (_doc().get("vendor_eff") or {}).items())
    xs = tuple((fam, prec, float(e["value"])) for fam, by_prec in (_doc().get("expert_stream_eff") or {}).items()
               for prec, e in by_prec.items())
    # one per-kernel fixed time for both engines (perf/compute.py kernel_floor_time): the training engine's sourced
    # constant (perf/data/constants.yaml gemm_latency_s), not a copy of it here
    kw["gemm_latency_s"] = training_kernel_latency_s()
    return InferCalib(vendor_eff=ve, expert_stream_eff=xs).with_(**kw)


def training_kernel_latency_s() -> float:
    """The fixed device time per kernel, ``gemm_latency_s`` of the training engine's ``perf/data/constants.yaml``
    (default entry), which the serving model reads rather than restating."""
    return Calib.defaults().gemm_latency_s


def held_out_accuracy() -> dict | None:
    """The serving model's leave-one-out error over the validation points, as scripts/calibrate_inference.py
    writes it into inference.yaml's ``accuracy`` (points, loo_median_abs, loo_max_abs, loo_mean_signed, ...);
    None where the file has none. What an answer quotes: the in-sample error of the fitted constants on the same
    points (fit_median_abs) is smaller and says less."""
    acc = _doc().get("accuracy")
    return dict(acc) if acc else None


def constant_sources() -> dict[str, str]:
    """Name -> value and source of every inference constant (for reports and scenario assumptions)."""
    out = {}
    for name, entry in (_doc().get("constants") or {}).items():
        out[name] = f"{entry['value']} ({' '.join(str(entry.get('source', '')).split())})"
    src = " ".join(str(training_sources().get("gemm_latency_s", "")).split())
    out["gemm_latency_s"] = f"{training_kernel_latency_s()} (the training engine's constants.yaml: {src})"
    return out


def int8_peak(chip: Chip) -> tuple[float, str]:
    """Dense INT8 rate (op/s) of ``chip`` and where it came from: inference.yaml ``int8_tops`` for the chip or its
    silicon (catalog ``same_silicon_as``: the A800 runs the A100's INT8 tensor cores), else its FP8 rate, else BF16."""
    table = _doc().get("int8_tops") or {}
    entry = table.get(chip.id) or table.get(silicon_of(chip.id))
    if entry:
        return float(entry["value"]) * 1e12, " ".join(str(entry["source"]).split())
    if chip.peak_flops.get("fp8"):
        return chip.peak_flops["fp8"], "chip FP8 dense rate (INT8 runs at the 8-bit tensor-core rate)"
    return chip.peak_flops["bf16"], "no 8-bit rate known: BF16 rate (8-bit weights still halve the bytes)"

def tpot_p99_relation(chip: Chip) -> tuple[float, float, str]:
    """For the serving stack of ``chip``'s vendor under continuous batching at saturating load: the requests' p99 /
    mean TPOT, the p99 a deployment runs at over its p99 bound, and their source (inference.yaml ``tpot_p99``:
    medians of the MLPerf Inference v5.1 llama2-70b Server / Interactive logs; its ``default`` row for a vendor
    without one)."""
    rows = _doc().get("tpot_p99") or {}
    e = rows.get(vendor_key(chip)) or rows.get("default")
    if not e:
        return 1.0, 1.0, "no p99 TPOT relation in inference.yaml: the bound taken as a bound on the mean"
    return float(e["p99_over_mean"]), float(e["p99_over_bound"]), " ".join(str(e["source"]).split())


def mean_tpot_bound_s(tpot_ms: float | None, stat: str, chip: Chip) -> float | None:
    """The bound (s) on the mean TPOT -- what the model's decode step is -- that a stated TPOT bound ``tpot_ms`` on the
    requests' ``stat`` sets: ``mean``: itself; ``p99``: ``tpot_ms x (p99 / bound) / (p99 / mean)``
    (:func:`tpot_p99_relation`). MLPerf's Interactive llama2-70b bound, p99 <= 40 ms, is a mean of 40 x 0.944 / 1.078
    = 35.0 ms on NVIDIA GPUs (NVIDIA's B200 x8 submission ran at a mean of 34.2 ms, p99 38.1 ms). None where no
    bound is stated."""
    if not tpot_ms:
        return None
    if stat != "p99":
        return tpot_ms / 1e3
    p99_over_mean, p99_over_bound, _ = tpot_p99_relation(chip)
    return tpot_ms / 1e3 * p99_over_bound / p99_over_mean
