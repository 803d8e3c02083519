"""How fast a Triton fused-MoE grouped GEMM streams BF16 expert weights at decode batch sizes, by expert shard width.

Needs a CUDA GPU with PyTorch and Triton (neither is a trainsim dependency); run it as ``python3
scripts/fused_moe_shard_bench.py``. Issue 18 criterion 4 (rl29): the DeepSeek-V3 BF16 rollouts of the NeMo RL table
run vLLM at tensor parallel 32, so each routed expert's shard is ``2,048 / 32 = 64`` wide, narrower than any
published kernel time (tests/test_rl_step.py ``_DSV3_NARROW``); the serving model streams them at the Hopper
``expert_stream_eff`` 0.82, measured at wide shards (trainsim/inference/data/inference.yaml).

The kernel is a Triton grouped GEMM with the tiling of vLLM's BF16 ``fused_moe_kernel``
(vllm/model_executor/layers/fused_moe/fused_moe.py): token-expert pairs sorted by expert and padded to
``BLOCK_M`` per expert (``moe_align_block_size``), one program per ``BLOCK_M x BLOCK_N`` output tile looping over
``K`` in ``BLOCK_K`` steps, weights ``[E, N, K]``; the first GEMM (``w13``, gate and up: ``2N x K``) reads each token
once per chosen expert, the second (``w2``: ``K x N``) multiplies by the routing weight. Routing is uniform
(``top_k`` distinct experts per token); times are ``triton.testing.do_bench`` medians (L2 flushed between runs) of
the two GEMMs alone (vLLM's benchmark_moe.py times the whole call, alignment, activation and sum kernels included);
streamed bytes are the touched experts' ``3 x N x K`` BF16 weights. Each shape runs over 29 tile configurations:
``BLOCK_M`` 16 x ``BLOCK_N`` {32, 64, 128} x ``BLOCK_K`` {64, 128, 256} x (warps, stages) {(4, 3), (4, 4), (8, 4)},
vLLM's pre-2026 untuned default ``(64, 64, 32)`` (more tokens than experts) and ``(32, 64, 128)``; the untuned
default for fewer tokens than experts was ``(16, 32, 64)`` (``get_default_config``, ``M <= E``). vLLM 0.17.1 (NeMo RL
v0.6.0's pin) carries pull request 34846's batch-aware default (``BLOCK_M`` 16 at decode batches, ``BLOCK_K`` 64 / 128,
``BLOCK_N`` 64 up to 64 tokens: pull request 54741), whose tiles are inside the grid: the grid's best bounds it.

Measured on one H200 (HBM3e, 4.8 TB/s peak; torch 2.11, triton 3.6), 2026-12-04, TB/s of expert weights streamed
(share of 4.8 TB/s), w13 / w2 kernel times:

    shape (E, N per shard, K, top-k, tokens)       best of 29 configs                 (16, 32, 64)
    DeepSeek-V3 TP32 (256, 64, 7,168, 8, 64)       3.39 TB/s (71%) 112 / 75 us        3.01 (63%) 112 / 100 us
    DeepSeek-V3 TP16 (256, 128, 7,168, 8, 64)      3.88 TB/s (81%) 204 / 110 us       3.07 (64%) 259 / 123 us
    Qwen3-30B-A3B TP1 (128, 768, 2,048, 8, 64)     4.00 TB/s (83%) 193 / 105 us       3.89 (81%) 198 / 108 us
    Mixtral 8x7B TP2 (8, 7,168, 4,096, 2, 32)      4.06 TB/s (85%) 226 / 121 us       3.76 (78%) 254 / 121 us

((16, 32, 64) is the old untuned default where tokens <= experts, the first three shapes; Mixtral's, (64, 64, 32),
gave 2.72 TB/s, 57%.) The wide shapes reproduce the published kernel rates (vLLM pull request 24700: Mixtral TP2
at 85-86% of an H100's HBM; pull request 19049: Qwen3-30B-A3B TP1 at 82-83% of an A100's). At TP32 the first GEMM
streams its ~408 MB a layer (~222 of 256 experts touched) at 76% of peak, the second, whose reduction is only 64
deep, its ~204 MB at 43-57%, so the layer runs at 63-71% where wide shards run at 83-85%: 0.74-0.85 of the wide rate.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

DEVICE = "cuda"
BF16 = torch.bfloat16

#: (name, experts, shard width N, hidden K, top-k, tokens)
SHAPES = [("dsv3_tp32", 256, 64, 7168, 8, 64), ("dsv3_tp16", 256, 128, 7168, 8, 64),
          ("q30_tp1", 128, 768, 2048, 8, 64), ("mixtral_tp2", 8, 7168, 4096, 2, 32)]
#: (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages)
CONFIGS = ([(16, n, k, w, s) for n in (32, 64, 128) for k in (64, 128, 256) for (w, s) in ((4, 3), (4, 4), (8, 4))]
           + [(64, 64, 32, 4, 3), (32, 64, 128, 4, 3)])
SHOWN = [(16, 32, 64, 4, 3), (64, 64, 32, 4, 3), (32, 64, 128, 4, 3), (16, 128, 256, 8, 4)]


@triton.jit
def grouped_gemm(a_ptr, b_ptr, c_ptr, sorted_ptr, expert_ptr, weight_ptr, n_valid, N, K,
                 stride_a, stride_be, stride_bn, stride_c,
                 TOP_K: tl.constexpr, MUL_WEIGHT: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """C[pair] = A[pair // TOP_K] @ B[expert of pair]^T for one BLOCK_M x BLOCK_N tile of sorted pairs."""
    pid = tl.program_id(0)
    n_tiles = tl.cdiv(N, BLOCK_N)
    pid_m = pid // n_tiles
    pid_n = pid % n_tiles
    pair = tl.load(sorted_ptr + pid_m * BLOCK_M + tl.arange(0, BLOCK_M))
    valid = pair < n_valid
    expert = tl.load(expert_ptr + pid_m).to(tl.int64)
    offs_n = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
    offs_k = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + (pair[:, None] // TOP_K) * stride_a + offs_k[None, :]
    b_ptrs = b_ptr + expert * stride_be + offs_n[None, :] * stride_bn + offs_k[:, None]
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for i in range(0, tl.cdiv(K, BLOCK_K)):
        left = K - i * BLOCK_K
        a = tl.load(a_ptrs, mask=valid[:, None] & (offs_k[None, :] < left), other=0.0)
        b = tl.load(b_ptrs, mask=offs_k[:, None] < left, other=0.0)
        acc += tl.dot(a, b)
        a_ptrs += BLOCK_K
        b_ptrs += BLOCK_K
    if MUL_WEIGHT:
        acc *= tl.load(weight_ptr + pair, mask=valid, other=0.0)[:, None]
    offs_c = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    tl.store(c_ptr + pair[:, None] * stride_c + offs_c[None, :], acc.to(tl.bfloat16),
             mask=valid[:, None] & (offs_c[None, :] < N))


def align(ids: torch.Tensor, experts: int, block_m: int):
    """Pairs sorted by expert, each expert's run padded to ``block_m`` with the sentinel ``pairs`` (vLLM's
    ``moe_align_block_size``); returns (sorted pair ids, expert of each block, padded length)."""
    flat = ids.flatten()
    count = torch.bincount(flat, minlength=experts)
    padded = (count + block_m - 1) // block_m * block_m
    start = torch.cumsum(padded, 0) - padded
    order = torch.argsort(flat, stable=True)
    by_expert = flat[order]
    rank = torch.arange(flat.numel(), device=DEVICE) - (torch.cumsum(count, 0) - count)[by_expert]
    total = int(padded.sum())
    sorted_ids = torch.full((total,), flat.numel(), dtype=torch.int64, device=DEVICE)
    sorted_ids[start[by_expert] + rank] = order
    block_expert = torch.repeat_interleave(torch.arange(experts, device=DEVICE), padded // block_m)
    return sorted_ids, block_expert, total


def run(experts: int, n: int, k: int, top_k: int, tokens: int, cfg: tuple) -> tuple[float, float, float, float]:
    """(w13 us, w2 us, TB/s of touched expert weights, relative error of one w13 row) for one config."""
    bm, bn, bk, warps, stages = cfg
    w13 = torch.randn(experts, 2 * n, k, device=DEVICE, dtype=BF16) * 0.02
    w2 = torch.randn(experts, k, n, device=DEVICE, dtype=BF16) * 0.02
    x = torch.randn(tokens, k, device=DEVICE, dtype=BF16)
    ids = torch.stack([torch.randperm(experts, device=DEVICE)[:top_k] for _ in range(tokens)])
    weights = torch.rand(tokens * top_k, device=DEVICE)
    sorted_ids, block_expert, total = align(ids, experts, bm)
    pairs = tokens * top_k
    c1 = torch.zeros(pairs, 2 * n, device=DEVICE, dtype=BF16)
    c2 = torch.zeros(pairs, k, device=DEVICE, dtype=BF16)
    h = torch.randn(pairs, n, device=DEVICE, dtype=BF16)
    kw = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps, num_stages=stages)
    blocks = total // bm

    def gemm1():
        grouped_gemm[(blocks * triton.cdiv(2 * n, bn),)](
            x, w13, c1, sorted_ids, block_expert, weights, pairs, 2 * n, k, k, 2 * n * k, k, 2 * n,
            TOP_K=top_k, MUL_WEIGHT=False, **kw)

    def gemm2():
        grouped_gemm[(blocks * triton.cdiv(k, bn),)](
            h, w2, c2, sorted_ids, block_expert, weights, pairs, k, n, n, k * n, n, k,
            TOP_K=1, MUL_WEIGHT=True, **kw)

    gemm1()
    j = 5
    ref = x[j // top_k].float() @ w13[int(ids.flatten()[j])].float().T
    err = float((c1[j].float() - ref).abs().max() / ref.abs().max())
    t1 = triton.testing.do_bench(gemm1, rep=200)
    t2 = triton.testing.do_bench(gemm2, rep=200)
    streamed = int(torch.unique(ids).numel()) * 3 * n * k * 2
    return t1 * 1e3, t2 * 1e3, streamed / (t1 + t2) / 1e9, err


def main() -> None:
    """Every shape over every config: the shown configs and the three fastest."""
    print(torch.cuda.get_device_name())
    for name, experts, n, k, top_k, tokens in SHAPES:
        rows = []
        for cfg in CONFIGS:
            try:
                rows.append((run(experts, n, k, top_k, tokens, cfg), cfg))
            except Exception as ex:  # a config the compiler refuses (shared memory)
                print(name, cfg, "fail", str(ex)[:80])
        rows.sort(key=lambda r: -r[0][2])
        for r, cfg in [x for x in rows if x[1] in SHOWN] + rows[:3]:
            print(name, cfg, "us %.1f %.1f TB/s %.3f err %.3f" % r, flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
