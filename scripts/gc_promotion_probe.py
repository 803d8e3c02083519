#!/usr/bin/env python3
"""How often CPython's automatic collector runs in a Megatron-Core MoE layer's forward, and how many objects it
promotes into the oldest generation (gcjitter, issue 18 criterion 4; the note above _REFIT in tests/test_rl_phases.py).

Why the promotions: CPython (up to 3.13; NeMo RL v0.3 runs 3.12, v0.6 3.13.13) collects generation 0 when the *net*
count of tracked containers allocated since the last collection passes 700, generation 1 every 10th time, and the
oldest generation only when the objects promoted into it since the last full collection exceed a quarter of the
long-lived total (Modules/gcmodule.c gc_collect_generations, the long_lived_pending rule). A full collection walks the
whole heap (c seconds per tracked object), so a rank spends 4 x c x r seconds in full collections per unit of work
that promotes r objects, whatever the heap's size; under expert parallelism each pause stalls the whole group.

What it runs: a TransformerBlock of Megatron-Core's local (no Transformer Engine) GPT layer spec with MoE
(SequentialMLP, alltoall dispatcher, top-8), world size 1 over gloo, on the CPU, with the few CUDA stream / device
calls of the dispatcher and router stubbed; after warm-up it freezes the heap, turns full collections off, and counts
generation-0 / generation-1 collections and the objects each generation-1 collection moves into the oldest generation.
Not the production path (TE grouped GEMM, DeepEP, NeMo RL's loss and Ray worker code also allocate), so the counts
are an order of magnitude for the layer's own code, not a rate to price.

Needs torch and megatron-core (not trainsim's dependencies), e.g. in a separate venv:
    pip install torch megatron-core   # run with megatron-core 0.16.1, torch 2.13.0+cpu, Python 3.11
Usage: python scripts/gc_promotion_probe.py --experts 8 --layers 4 --mode train --passes 200
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import os
import time


def _stub_cuda(torch) -> None:  # type: ignore[no-untyped-def]
    """The alltoall dispatcher's side-stream D2H copies and the router's .to(current_device) on a CPU build."""

    class _Stream:
        def wait_stream(self, *args: object) -> None:
            return None

        def synchronize(self) -> None:
            return None

        def record_event(self, *args: object) -> _Stream:
            return self

    stream = _Stream()
    torch.cuda.Stream = lambda *a, **k: stream
    torch.cuda.current_stream = lambda *a, **k: stream
    torch.cuda.stream = lambda *a, **k: contextlib.nullcontext()
    torch.cuda.current_device = lambda: "cpu"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--mode", choices=["fwd", "train"], default="train")
    ap.add_argument("--passes", type=int, default=200)
    args = ap.parse_args()

    import torch
    import torch.distributed as dist

    _stub_cuda(torch)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("gloo", rank=0, world_size=1)
    import megatron.core.transformer.moe.moe_utils as moe_utils
    from megatron.core import parallel_state
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.tensor_parallel.random import get_cuda_rng_tracker
    from megatron.core.transformer.transformer_block import TransformerBlock
    from megatron.core.transformer.transformer_config import TransformerConfig

    parallel_state.initialize_model_parallel(1, 1)
    get_cuda_rng_tracker().fork = lambda *a, **k: contextlib.nullcontext()
    if not hasattr(moe_utils, "te_general_gemm"):
        moe_utils.te_general_gemm = None  # megatron-core 0.16.1 names it without Transformer Engine installed
    cfg = TransformerConfig(num_layers=args.layers, hidden_size=64, num_attention_heads=4, ffn_hidden_size=128,
                            num_moe_experts=args.experts, moe_router_topk=min(8, args.experts),
                            moe_ffn_hidden_size=32, moe_token_dispatcher_type="alltoall",
                            use_cpu_initialization=True, add_bias_linear=False, params_dtype=torch.float32,
                            moe_router_load_balancing_type="none", attention_dropout=0.0, hidden_dropout=0.0)
    block = TransformerBlock(cfg, get_gpt_layer_local_spec(num_experts=args.experts, moe_grouped_gemm=False))
    x0 = torch.randn(256, 1, 64)
    mask = torch.triu(torch.ones(256, 256), diagonal=1).bool()[None, None]

    def one_pass() -> None:
        if args.mode == "fwd":
            with torch.no_grad():
                block(x0, attention_mask=mask)
        else:
            block(x0.clone().requires_grad_(True), attention_mask=mask).sum().backward()

    for _ in range(3):
        one_pass()
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 1 << 30)  # no full collections: count what would feed them
    state = {"gen0": 0, "gen1": 0, "promoted": 0, "before": 0}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 1:
            state["gen0"] += phase == "stop"
        elif phase == "start":
            state["before"] = len(gc.get_objects(2))
        else:
            state["gen1"] += 1
            state["promoted"] += len(gc.get_objects(2)) - state["before"]

    gc.callbacks.append(on_gc)
    t0 = time.perf_counter()
    for _ in range(args.passes):
        one_pass()
    seconds = time.perf_counter() - t0
    gc.callbacks.remove(on_gc)
    layer_passes = args.passes * args.layers
    print(f"experts {args.experts}, layers {args.layers}, {args.mode}, {args.passes} passes ({seconds:.0f} s): "
          f"gen-0 collections {state['gen0']} (one per {layer_passes / state['gen0'] if state['gen0'] else float('inf'):.1f} layer passes), "
          f"gen-1 {state['gen1']}, promoted {state['promoted']} "
          f"({state['promoted'] / layer_passes:.2f} a layer pass)")


if __name__ == "__main__":
    main()
