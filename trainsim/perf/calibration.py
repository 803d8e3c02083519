"""The engine's few calibration constants, per chip family, read from ``perf/data/calibration.yaml``.

That file is the only place fitted numbers live; ``scripts/calibrate.py`` writes it from the calibration runs
(see ``trainsim validate``). Every constant is a physical fraction or time with a documented default.

Levels, the most specific first (:func:`calib_for`): chip model with its software stack, chip model (keyed by its
silicon, catalog/load.py silicon_of: the H800 SXM5 takes the H100 SXM5's fit), family with
its software stack, family, the family's vendor pool (``vendors:``, keyed by the family's vendor part,
catalog/load.py vendor_key: ``nvidia``, ``amd``, ``ascend``, ``google``), the global pool (``default``). A chip
family without its own fit takes its vendor's pool before the global one, so that, e.g., Blackwell BF16 is priced
from NVIDIA's BF16 runs and an Ascend refit does not move it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from ..catalog.load import silicon_of, vendor_key
from ..errors import TrainsimError
from ..io.specfile import yaml_shape
from ..io.yamlsafe import read_yaml
from ..yamlload import load_data, sourced_values


@dataclass(frozen=True)
class Calib:
    """The training model's calibration constants (kernel efficiencies, latencies, tile sizes, collective
    costs, overlaps, memory terms), each explained in the comment beside it.

    The fields have no defaults here: every value, with its source, lives in ``perf/data/constants.yaml``
    (``default``, then per chip family) and, for the fitted ones, ``calibration.yaml``. :meth:`defaults` is the
    ``constants.yaml`` default entry; :func:`load_calibration` layers the family and fitted values on it."""

    # compute
    gemm_eff: float  # fraction of dense BF16 peak a large GEMM reaches (cuBLAS/CANN, compute-bound)
    gemm_eff_fp8: float  # the same for per-tensor scaled FP8 GEMMs, as a fraction of the FP8 peak
    gemm_eff_fp8_block_ratio: float  # block-scaled FP8 GEMMs (MXFP8, blockwise) / per-tensor FP8 GEMMs
    gemm_eff_fp32: float  # FP32 GEMMs on the CUDA cores (no TF32), fraction of the chip's FP32 peak (measured)
    attn_eff: float  # flash-attention forward, fraction of BF16 peak (per family: cuDNN sweeps, FlashAttention papers)
    attn_eff_flash2: float  # FlashAttention-2 on Hopper / Blackwell (FlashAttention-3 paper, abstract)
    attn_eff_flash2_families: tuple[str, ...]  # chip families whose attention kernel is FlashAttention-2's
    attn_bwd_rate_ratio: float  # flash forward / backward FLOP rate (perf/compute.py attn_bwd_ratio)
    attn_bwd_rate_ratio_flash2: float  # the same for FlashAttention-2 on Hopper / Blackwell (FlashAttention-3 paper)
    attn_block_l0_flash2: float  # short-block L0 of FlashAttention-2 on Hopper / Blackwell (perf/compute.py)
    # head-dim term of attention kernels whose softmax runs on vector units (perf/compute.py attention_head_dim_factor):
    # vector softmax / matrix time per score tile at the reference head dim, output rescale / matrix time, that dim
    attn_vec_fixed_ratio: float
    attn_vec_out_ratio: float
    attn_vec_ref_head_dim: float
    dsa_bwd_eff: float  # sparse-attention (DSA) backward on long index lists, fraction of BF16 peak
    dsa_bwd_k0: float  # DSA backward: index-list length at half that rate (measured; constants.yaml)
    mem_eff: float  # fraction of HBM bandwidth memory-bound kernels reach
    gemm_latency_s: float  # fixed cost per GEMM launch (kernel launch + tail)
    gemm_tile_m: float  # output tile of GEMM kernels, rows (tile quantisation), elements
    gemm_tile_n: float  # output tile of GEMM kernels, columns, elements
    gemm_k0: float  # K-loop prologue/epilogue, elements of K (efficiency K / (K + k0))
    compute_units: float  # SMs / AI cores a GEMM's tiles are spread over (wave quantisation)
    sm_count: float  # SMs a kernel pinning some of them shares (perf/comm_ep.py ep_overlapped_exposed)
    gemm_out_bytes: float  # bytes per GEMM output element its epilogue writes (BF16, also after FP8 inputs)
    gemm_epilogue_overlap: float  # 0 where the epilogue follows the K loop on the same SM (serial, Ampere/Hopper)
    gemm_stream_k: float  # 1: dense GEMMs spread a tail wave under half full over all SMs (perf/compute.py gemm_waves)
    # per collective or ring step: kernel launch + stream synchronisation, not hideable by overlap (NCCL small-message
    # latency on one 8-GPU NVLink node is ~10 us in nccl-tests; we take the launch/sync part)
    comm_launch_s: float
    # per peer of an all-to-all: one message posted per peer (NCCL grouped send/recv, DeepEP, HCCL)
    a2a_peer_s: float
    # attention kernels on short blocks: half-saturation key-block length (FlashAttention-2 paper Fig. 4:
    # causal head-dim-128 forward at 512 tokens reaches ~0.6 of its 16K rate)
    attn_block_l0: float
    # network: achievable fraction of line rate per level (scale-up, scale-out, inter-site); a level whose wiring
    # has its own measured fraction takes that instead (catalog NetLevel.coll_eff: HCCL on a full mesh)
    coll_eff: tuple[float, ...]
    # overlap of communication with compute (0: fully exposed, 1: hidden up to the available compute)
    tp_overlap: float
    tp_overlap_userbuffers: float  # with --tp-comm-overlap (TE userbuffers; MC2 on Ascend): constants.yaml sources
    dp_overlap: float
    ep_overlap: float
    ep_overlap_dualpipe: float
    ep_overlap_a2a: float  # with Megatron-Core's EP all-to-all overlap (constants.yaml)
    cp_overlap: float
    pp_overlap: float
    pp_overlap_interleaved: float
    # MoE routing: max expert load / mean expert load
    expert_imbalance: float
    # memory
    optimizer_step_bytes: float  # HBM traffic of one Adam update per parameter (read 16 B, write 14 B, + norm)
    host_link_eff: float  # share of a chip's stated host-link line rate that DMA copies reach
    host_link_bw: float  # host link per chip, bytes/s one direction (DMA copies, not line rate)
    buffer_bytes: float  # communication buffers, workspace, CUDA/CANN context
    alloc_margin: float  # allocator fragmentation as a fraction of the rest
    step_overhead_s: float  # per-step fixed cost (data loader, logging)
    moe_layer_host_s: float  # host time exposed per MoE layer per micro-batch outside CUDA graphs (fitted)
    moe_expert_call_host_s: float  # host time per per-expert grouped-GEMM call outside CUDA graphs (fitted)
    host_time_factor_grace: float  # host (CPU) time on a Grace host / on the x86 hosts (constants.yaml; perf/step.py)
    # a family's measured host-bound launch work per MoE layer and micro-batch, and the per-expert calls of the layer
    # it was measured on (0: none measured; perf/step.py host_time_factor, constants.yaml families.amd-cdna4)
    host_bound_layer_s: float
    host_bound_layer_calls: float
    # eager (no graph) launch work of a transformer layer: host time to issue one operator, and the operators one
    # layer issues per micro-batch forward / backward (perf/step.py layer_launch_floor; 0 s: not applied)
    eager_op_host_s: float
    eager_layer_ops_fwd: float
    eager_layer_ops_bwd: float

    def with_(self, **kw: Any) -> "Calib":
        """A copy with the constants in ``kw`` replaced."""
        return replace(self, **kw)

    @classmethod
    def defaults(cls) -> "Calib":
        """The ``default`` entry of ``perf/data/constants.yaml`` (no family, nothing fitted)."""
        return _default_calib()


_FIELDS = {f.name for f in fields(Calib)}


def _parse(entry: dict[str, Any], where: str) -> dict[str, Any]:
    """One calibration entry's constants (numbers, or lists such as the families a constant holds for), its notes
    left out; anything else is a one-line input error naming ``where`` (a --calibration file is user input)."""
    if entry is not None and not isinstance(entry, dict):
        raise TrainsimError(f"expected a mapping of calibration constants, got {type(entry).__name__} {entry!r:.80}",
                            where=where)
    out = {}
    for k, v in (entry or {}).items():
        if k in ("source", "note", "notes", "fitted_on", "loo", "family") or str(k).startswith("fitted_on_"):
            continue
        if k not in _FIELDS:
            raise TrainsimError(f"unknown calibration constant '{k}'", where=where)
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if not (number or isinstance(v, list) and all(isinstance(x, (int, float, str)) for x in v)):
            raise TrainsimError(f"expected a number (or a list), got {v!r:.80}", field=str(k), where=where)
        out[k] = tuple(v) if isinstance(v, list) else float(v)
    return out


@lru_cache(maxsize=2)
def _data_doc(name: str) -> dict[str, Any]:
    """The parsed ``perf/data/<name>`` (constants.yaml or calibration.yaml), read once per process."""
    return load_data(resources.files("trainsim.perf").joinpath(f"data/{name}").read_text()) or {}   # JSON cache


def _constants() -> tuple[dict[str, Any], dict[str, Any]]:
    """(default, per-family) constants of ``perf/data/constants.yaml`` as plain values (each entry has a source)."""
    doc = _data_doc("constants.yaml")

    def vals(entry: dict[str, Any], where: str) -> dict[str, Any]:
        return _parse(sourced_values(entry, "constant", where), where)

    fams = {f: vals(e, f"constants.yaml: families.{f}") for f, e in (doc.get("families") or {}).items()}
    return vals(doc.get("default", {}), "constants.yaml: default"), fams


@lru_cache(maxsize=1)
def _default_calib() -> Calib:
    """Calib of the ``default`` entry of ``perf/data/constants.yaml``, which must name every field."""
    const = _constants()[0]
    missing = sorted(_FIELDS - set(const))
    if missing:
        raise TrainsimError(f"constants without a default value: {', '.join(missing)}",
                            where="perf/data/constants.yaml: default")
    return Calib(**const)


def family_constants(family: str | None) -> Calib:
    """The sourced constants of a chip family, nothing fitted: ``constants.yaml``'s default entry with the family's
    own entry on it (Blackwell's 256-row GEMM tiles and 74 SM pairs, Ampere's host link, ...)."""
    return Calib.defaults().with_(**_constants()[1].get(family or "", {}))


def constant_sources() -> dict[str, str]:
    """Every engine constant's source (default entries), for reports."""
    doc = _data_doc("constants.yaml")
    return {k: v["source"] for k, v in (doc.get("default") or {}).items()}


#: key of a vendor pool in :func:`load_calibration`'s table (apart from chip and family ids)
VENDOR_KEY = "vendor:{}"


def _pool(table: dict[str, Calib], group: str | None) -> Calib:
    """The constants a group (a family or a chip id) without an entry of its own starts from: its vendor's pool
    where calibration.yaml fits one, else the global pool (``default``)."""
    return table.get(VENDOR_KEY.format(vendor_key(group)), table["default"])


@lru_cache(maxsize=8)
def load_calibration(path: str | None = None) -> dict[str, Calib]:
    """Family -> Calib: sourced constants (constants.yaml, default then family), then the fitted values of
    calibration.yaml, from the least specific: default (the global pool), the family's vendor pool
    (``vendors``), the family's sourced constants, the family's fit; then chip models and software stacks on
    their family's. Keys: family and chip ids, ``family@framework``, ``vendor:<key>`` and ``default``."""
    if path is None:
        doc, name = _data_doc("calibration.yaml"), "calibration.yaml"
    else:   # user input: read with the spec files' limits, shapes checked (was a bare open and safe_load)
        doc, name = read_yaml(path, what="calibration file") or {}, str(path)
        if not isinstance(doc, dict):
            raise TrainsimError(f"expected a mapping of calibration sections (default, vendors, families, chips, "
                                f"frameworks), "
                                f"got {yaml_shape(doc)}", where=name)
        for sec in ("vendors", "families", "chips", "frameworks"):
            if doc.get(sec) is not None and not isinstance(doc[sec], dict):
                raise TrainsimError(f"expected a mapping, got {yaml_shape(doc[sec])}", field=sec, where=name)
        for fw, fams in (doc.get("frameworks") or {}).items():
            if fams is not None and not isinstance(fams, dict):
                raise TrainsimError(f"expected a mapping of chip families, got {yaml_shape(fams)}",
                                    field=f"frameworks.{fw}", where=name)
    const_fam = _constants()[1]
    fitted = _parse(doc.get("default", {}), f"{name}: default")
    base = Calib.defaults().with_(**fitted)
    out = {"default": base}
    # per vendor: the pool of the vendor's runs (scripts/calibrate.py fits one on MIN_RUNS runs of a kind)
    for v, e in (doc.get("vendors") or {}).items():
        out[VENDOR_KEY.format(v)] = base.with_(**_parse(e, f"{name}: vendors.{v}"))
    fitted_fam = {fam: _parse(e, f"{name}: families.{fam}") for fam, e in (doc.get("families") or {}).items()}
    for fam in set(const_fam) | set(fitted_fam):
        out[fam] = _pool(out, fam).with_(**{**const_fam.get(fam, {}), **fitted_fam.get(fam, {})})
    # per chip model (SKU) within its family: its own fitted share of the peak
    for chip, e in (doc.get("chips") or {}).items():
        fitted_chip = _parse(e, f"{name}: chips.{chip}")
        fam = str((e or {}).get("family"))
        out[chip] = out.get(fam, _pool(out, fam)).with_(**fitted_chip)
    # per software stack (framework profile) and chip family: fitted kernel efficiencies over the family's
    for fw, fams in (doc.get("frameworks") or {}).items():
        for fam, e in (fams or {}).items():
            out[f"{fam}@{fw}"] = out.get(fam, _pool(out, fam)).with_(**_parse(e, f"{name}: frameworks.{fw}.{fam}"))
    return out


def calib_for(family: str, table: dict[str, Calib] | None = None, framework: str | None = None,
              chip: str | None = None) -> Calib:
    """The constants of a chip, the most specific fitted ones first: its chip model with its software stack, its
    chip model, its family with its software stack, its family, its family's vendor pool, the global pool
    (``default``)."""
    table = table or load_calibration()
    return table[calib_key(family, table, framework, chip)]


def calib_key(family: str, table: dict[str, Calib] | None = None, framework: str | None = None,
              chip: str | None = None) -> str:
    """The entry of :func:`load_calibration`'s table :func:`calib_for` takes (``nvidia-gb300@megatron-bridge-2026``,
    ``nvidia-hopper``, ``vendor:nvidia``, ``default``, ...): where a chip's fitted constants come from. A chip
    model is looked up by its silicon (catalog/load.py :func:`~trainsim.catalog.load.silicon_of`), as
    scripts/calibrate.py keys its fit: the H800 SXM5 resolves to ``nvidia-h100-sxm5``."""
    table = table or load_calibration()
    for g in (None if chip is None else silicon_of(chip), family):
        if g is None:
            continue
        if framework is not None and f"{g}@{framework}" in table:
            return f"{g}@{framework}"
        if g in table:
            return g
    key = VENDOR_KEY.format(vendor_key(family))
    return key if key in table else "default"


def fitted_values(name: str) -> dict[str, float]:
    """Every value of the fitted constant ``name`` in calibration.yaml, by where it applies (``family`` or
    ``family@framework``): the spread of, e.g., ``gemm_eff_fp8`` over the chip families and software stacks that
    have FP8 calibration runs."""
    doc = _data_doc("calibration.yaml")
    out = {fam: float(e[name]) for sec in ("families", "chips") for fam, e in (doc.get(sec) or {}).items()
           if name in (e or {})}
    for fw, fams in (doc.get("frameworks") or {}).items():
        out.update({f"{fam}@{fw}": float(e[name]) for fam, e in (fams or {}).items() if name in (e or {})})
    return out


def validation_error_that_applies(family: str, moe: bool) -> dict[str, Any]:
    """What a prediction for a run on chip ``family`` with a dense (``moe`` False) or MoE model can be trusted to:
    ``{"chip_family": validation_error(family), "model_kind": <the leave-one-out summary of the dense or MoE
    runs>}``, both read from calibration.yaml's ``accuracy`` section (scripts/calibrate.py writes it from the
    leave-one-out over validation/runs). Each part is None when the calibration has no such figure. Every estimate
    carries it (brief: "every prediction says how far it can be trusted")."""
    acc = _data_doc("calibration.yaml").get("accuracy") or {}
    kind = dict(acc.get("moe" if moe else "dense") or {}) or None
    if kind is not None:
        kind["kind"] = "MoE" if moe else "dense"
    return {"chip_family": validation_error(family), "model_kind": kind}


def validation_error(family: str) -> dict[str, Any] | None:
    """The held-out (leave-one-out) validation error that applies to a chip family, as written by the
    calibration script into calibration.yaml's ``accuracy`` section.

    For a family with no run in the validation set (an unshipped chip such as the Ascend 950DT) the all-runs
    median would lend it the accuracy of runs on other chips; instead it gets the least accurate measured family
    of the same vendor (catalog/load.py vendor_key, e.g. ``ascend``: the same compiler stack and framework, CANN /
    MindSpeed), else the least accurate measured family, marked ``runs: 0`` with its basis: the chip's own error is
    unmeasured and no smaller than that on a chip it succeeds, so the figure is a floor, not a bound.
    Returns e.g. {"median_abs_error": 0.06, "max_abs_error": 0.2, "runs": 30, "basis": "..."} or None."""
    acc = _data_doc("calibration.yaml").get("accuracy") or {}
    fams = dict(acc.get("by_family") or {})
    if fams.get(family):
        return {**fams[family], "basis": f"leave-one-out on {family} calibration runs"}
    fams = {f: v for f, v in fams.items() if v}
    if not fams:
        return None
    vendor = vendor_key(family)
    same = {f: v for f, v in fams.items() if vendor is not None and vendor_key(f) == vendor} or fams
    near = max(same, key=lambda f: float(same[f].get("median_abs_error") or 0.0))
    v = same[near]
    return {"runs": 0, "median_abs_error": v.get("median_abs_error"), "max_abs_error": v.get("max_abs_error"),
            "bias": v.get("bias"), "shown_family": near,
            "basis": (f"no {family} run in the validation set, so its error is unmeasured; shown: leave-one-out on "
                      f"the {v.get('runs')} {near} calibration runs ("
                      + ("the same vendor" if vendor is not None and vendor_key(near) == vendor
                         else "the least accurate family")
                      + "), a floor rather than a bound")}
