"""What a serving evaluation needs besides the plans: model, system, numerics, MTP and constants."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..catalog.types import System
from ..errors import TrainsimError
from ..model.arch import Arch
from .calib import InferCalib, default_calib, int8_peak

PRECISIONS = ("bf16", "fp8", "int8")
BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0}


@dataclass(frozen=True)
class ServeSetup:
    """Model + system + numerics of one serving deployment.

    ``precision``: weights and GEMM inputs (W8A8 for fp8/int8: 1 byte per weight and per activation fed to a GEMM;
    the output head and the router stay BF16). ``kv_precision``: bytes per cached element. ``mtp_draft`` draft tokens
    per decode step verified by the main model (multi-token prediction / speculative decoding) and ``mtp_accept``
    the acceptance rate of each draft token: a step then yields ``1 + mtp_draft x mtp_accept`` tokens per sequence.
    """

    arch: Arch
    system: System
    precision: str = "bf16"
    kv_precision: str = "bf16"
    mtp_draft: int = 0
    mtp_accept: float = 0.0
    calib: InferCalib = field(default_factory=default_calib)

    def __post_init__(self):
        for name in ("precision", "kv_precision"):
            if getattr(self, name) not in PRECISIONS:
                raise TrainsimError(f"expected one of {', '.join(PRECISIONS)}, got {getattr(self, name)!r}",
                                    field=name)

    @property
    def chip(self):
        return self.system.chip

    @property
    def w_bytes(self) -> float:
        return BYTES[self.precision]

    @property
    def act_bytes(self) -> float:
        return BYTES[self.precision]

    @property
    def kv_bytes(self) -> float:
        return BYTES[self.kv_precision]

    @property
    def gemm_peak(self) -> float:
        """Dense rate of the GEMMs: BF16, FP8 (BF16 rate on chips without FP8) or INT8 (see calib.int8_peak)."""
        if self.precision == "int8":
            return int8_peak(self.chip)[0]
        return self.chip.flops(self.precision)

    @property
    def attn_peak(self) -> float:
        """Attention cores run in BF16 (FlashMLA, FlashAttention; CloudMatrix keeps MLA in BF16)."""
        return self.chip.flops("bf16")

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens each sequence gains per decode step."""
        return 1.0 + self.mtp_draft * self.mtp_accept

    def peak_note(self) -> str:
        if self.precision == "int8":
            return int8_peak(self.chip)[1]
        if self.precision == "fp8" and not self.chip.peak_flops.get("fp8"):
            return "chip has no FP8 rate: BF16 rate (FP8 weights still halve the bytes)"
        return f"chip {self.precision.upper()} dense rate"
