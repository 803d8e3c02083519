"""The engine's few calibration constants, per chip family, read from ``perf/data/calibration.yaml``.

That file is the only place fitted numbers live; ``scripts/calibrate.py`` writes it from the calibration runs
(see ``trainsim validate``). Every constant is a physical fraction or time with a documented default.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache
from importlib import resources

from ..errors import TrainsimError
from ..yamlload import safe_load


@dataclass(frozen=True)
class Calib:
    # compute
    gemm_eff: float = 0.75          # fraction of dense BF16 peak a large GEMM reaches (cuBLAS/CANN, compute-bound)
    gemm_eff_fp8: float = 0.65      # the same for FP8 GEMMs, as a fraction of the FP8 peak
    attn_eff: float = 0.55          # flash-attention forward, fraction of BF16 peak (FlashAttention-2/3 papers)
    attn_bwd_ratio: float = 2.5     # flash backward time / forward time (5 vs 2 matmuls; Dao 2023 sec. 3.1.2)
    mem_eff: float = 0.80           # fraction of HBM bandwidth memory-bound kernels reach
    gemm_latency_s: float = 4e-6    # fixed cost per GEMM launch (kernel launch + tail)
    gemm_d0: float = 128.0          # half-saturation GEMM dimension (tile/wave quantisation), elements
    # network: achievable fraction of line rate per level (scale-up, scale-out, inter-site)
    coll_eff: tuple[float, ...] = (0.80, 0.85, 0.85)
    # overlap of communication with compute (0: fully exposed, 1: hidden up to the available compute)
    tp_overlap: float = 0.0
    dp_overlap: float = 0.8
    ep_overlap: float = 0.0
    ep_overlap_dualpipe: float = 0.9
    cp_overlap: float = 0.9
    pp_overlap: float = 0.5
    # MoE routing: max expert load / mean expert load
    expert_imbalance: float = 1.0
    # memory
    grad_bytes: float = 4.0         # fp32 main gradients (Megatron-LM default accumulate/reduce in fp32)
    optimizer_bytes: float = 12.0   # fp32 master weights + Adam m and v
    optimizer_step_bytes: float = 32.0  # HBM traffic of one Adam update per parameter (read 16 B, write 14 B, + norm)
    buffer_bytes: float = 2.0e9     # communication buffers, workspace, CUDA/CANN context
    alloc_margin: float = 0.08      # allocator fragmentation as a fraction of the rest
    step_overhead_s: float = 0.0    # per-step fixed cost (data loader, logging)

    def with_(self, **kw) -> "Calib":
        return replace(self, **kw)


_FIELDS = {f.name for f in fields(Calib)}


def _parse(entry: dict, where: str) -> dict:
    out = {}
    for k, v in (entry or {}).items():
        if k in ("source", "note", "notes", "fitted_on", "loo"):
            continue
        if k not in _FIELDS:
            raise TrainsimError(f"unknown calibration constant '{k}'", where=where)
        out[k] = tuple(v) if isinstance(v, list) else float(v)
    return out


@lru_cache(maxsize=8)
def load_calibration(path: str | None = None) -> dict[str, Calib]:
    """Family -> Calib. The ``default`` entry applies to every family, a family entry overrides it."""
    if path is None:
        text = resources.files("trainsim.perf").joinpath("data/calibration.yaml").read_text()
    else:
        with open(path) as fh:
            text = fh.read()
    doc = safe_load(text) or {}
    base = Calib().with_(**_parse(doc.get("default", {}), "calibration.yaml: default"))
    out = {"default": base}
    for fam, entry in (doc.get("families") or {}).items():
        out[fam] = base.with_(**_parse(entry, f"calibration.yaml: families.{fam}"))
    return out


def calib_for(family: str, table: dict[str, Calib] | None = None) -> Calib:
    table = table or load_calibration()
    return table.get(family, table["default"])


def validation_error(family: str) -> dict | None:
    """The held-out (leave-one-out) validation error that applies to a chip family, as written by the
    calibration script into calibration.yaml's ``accuracy`` section; falls back to the overall figure.
    Returns e.g. {"median_abs_error": 0.06, "max_abs_error": 0.2, "runs": 30, "basis": "..."} or None."""
    text = resources.files("trainsim.perf").joinpath("data/calibration.yaml").read_text()
    acc = (safe_load(text) or {}).get("accuracy") or {}
    fam = (acc.get("by_family") or {}).get(family)
    if fam:
        return {**fam, "basis": f"leave-one-out on {family} calibration runs"}
    overall = acc.get("overall")
    if overall:
        return {**overall, "basis": f"leave-one-out on all calibration runs (no {family} runs in the set)"}
    return None
