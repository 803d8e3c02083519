"""What the device benchmark scripts (``h200_kernels.py``, ``h200_decode.py``) share: their command line, the
device they pick, the environment they record, and the GPU's clock and power after a measurement.

The scripts run as ``python3 benchmarks/h200_X.py`` (this folder first on ``sys.path``) on a machine with torch;
trainsim does not depend on torch, so nothing in the package or the tests imports this module.
"""
from __future__ import annotations

import argparse
import sys

import torch


def setup(doc: str, argv=None) -> tuple[argparse.Namespace, str] | int:
    """Parse ``--out`` / ``--dry-run`` and set torch up as both scripts measure (seed 0, no TF32 in matmuls):
    ``(args, device)``, or exit status 2 with one line when no CUDA device is present without ``--dry-run``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU")
    args = ap.parse_args(argv)
    device = "cpu" if args.dry_run or not torch.cuda.is_available() else "cuda"
    if device == "cpu" and not args.dry_run:
        print("no CUDA device; use --dry-run for the CPU check", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    return args, device


def env(device: str) -> dict:
    """torch / CUDA / cuDNN versions and, on a GPU, its name, SM count, memory and L2 bytes."""
    out = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": device,
           "cudnn": torch.backends.cudnn.version() if device == "cuda" else None}
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        out.update({"gpu": p.name, "sms": p.multi_processor_count, "mem_bytes": p.total_memory,
                    "l2_bytes": getattr(p, "L2_cache_size", None)})
    return out


def gpu_state() -> dict:
    """SM clock (MHz) and power (mW) right after a measurement (NVML through torch), or {} where unreadable."""
    try:
        return {"sm_clock_mhz": torch.cuda.clock_rate(), "power_mw": torch.cuda.power_draw()}
    except Exception:   # noqa: BLE001 (no NVML: no reading)
        return {}
