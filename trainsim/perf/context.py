"""What every cost function needs besides the plans: model, system, run shape and calibration."""
from __future__ import annotations

from dataclasses import dataclass

from ..catalog.types import System
from ..model.arch import Arch
from .calibration import Calib


@dataclass(frozen=True)
class StepContext:
    arch: Arch
    system: System
    chips: int
    seq_len: int
    global_batch_seqs: int
    precision: str                   # 'bf16' | 'fp8' (matmul inputs)
    calib: Calib
    attention_kernel: str = "flash"  # 'flash' (fused, no s^2 in HBM) | 'unfused' (scores materialised)

    @property
    def chip(self):
        return self.system.chip

    @property
    def gemm_peak(self) -> float:
        """Dense peak for the run's GEMMs; FP8 only where the chip has an FP8 rate."""
        return self.chip.flops(self.precision)

    @property
    def gemm_eff(self) -> float:
        fp8 = self.precision == "fp8" and self.chip.peak_flops.get("fp8")
        return self.calib.gemm_eff_fp8 if fp8 else self.calib.gemm_eff

    @property
    def act_bytes(self) -> float:
        """Bytes per GEMM input element: 1 with FP8 inputs, else 2 (BF16)."""
        return 1.0 if (self.precision == "fp8" and self.chip.peak_flops.get("fp8")) else 2.0
