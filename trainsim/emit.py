"""A plan as framework command-line arguments (Megatron-LM; MindSpeed-LLM uses the same argument names)."""
from __future__ import annotations

from .errors import TrainsimError


def emit_args(est, framework: str) -> str:
    """Megatron-LM / MindSpeed arguments for the plan of ``est`` (an :class:`~trainsim.estimate.Estimate`)."""
    if framework not in ("megatron", "mindspeed"):
        raise TrainsimError(f"expected megatron or mindspeed, got {framework!r}", field="--emit")
    p = est.plan
    run = est.run
    gbs = run.training.batch_seqs
    args = [
        f"--tensor-model-parallel-size {p['tp']}",
        f"--pipeline-model-parallel-size {p['pp']}",
        f"--context-parallel-size {p['cp']}",
        f"--micro-batch-size {p['micro_batch']}",
        f"--global-batch-size {gbs}",
        f"--seq-length {run.training.seq_len}",
    ]
    if p["tp"] > 1:
        args.append("--sequence-parallel")
    if p["vpp"] > 1:
        layers = run.arch.n_layers // (p["pp"] * p["vpp"])
        args.append(f"--num-layers-per-virtual-pipeline-stage {max(layers, 1)}")
    if run.arch.is_moe:
        args += [f"--expert-model-parallel-size {p['ep']}", f"--expert-tensor-parallel-size {p['etp']}"]
        if p.get("node_limit"):
            args.append(f"--moe-router-group-topk {p['node_limit']}")
    if p["zero"] >= 1:
        args.append("--use-distributed-optimizer")
    if p["zero"] >= 3:
        args.append("--use-torch-fsdp2  # ZeRO-3: Megatron-FSDP / FSDP2")
    if p["recompute"] == "selective":
        args.append("--recompute-granularity selective")
    elif p["recompute"] == "full":
        args += ["--recompute-granularity full", "--recompute-method uniform", "--recompute-num-layers 1"]
    if p["schedule"] == "zero-bubble":
        args.append("# zero-bubble schedule: not in upstream Megatron-LM (see sail-sg/zero-bubble-pipeline-parallelism)")
    if p["schedule"] == "dualpipe":
        args.append("# dualpipe schedule: DeepSeek DualPipe (deepseek-ai/DualPipe), not a Megatron-LM flag")
    if run.training.precision == "fp8":
        if framework == "megatron":
            args += ["--fp8-format hybrid", "--fp8-recipe delayed"]
        else:
            args.append("# FP8: check that your MindSpeed release supports this chip's 8-bit format")
    if framework == "mindspeed":
        args += ["--use-fused-rmsnorm", "--use-flash-attn"]
    return " \\\n  ".join(args)
