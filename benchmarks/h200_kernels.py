"""Time real kernels on one GPU (written for an H200) to check trainsim's kernel model: BF16 and FP8 GEMMs by shape,
causal SDPA attention by sequence length, HBM copy bandwidth. Writes one JSON.

    python3 benchmarks/h200_kernels.py --out h200.json          # on the GPU (about a minute)
    python3 benchmarks/h200_kernels.py --dry-run --out x.json   # tiny shapes on the CPU: checks the script only

Method (as the device notes' METHOD.md): random normal inputs (never zeros), warm-up calls first, each call timed
alone with CUDA events, the median of the repetitions reported (with min and max). Inputs that would fit in the
60 MB L2 are rotated among several copies so that each call reads them from HBM. GEMMs run as the frameworks'
linear layers do: y = x @ W^T with x (M x K) and W (N x K) row-major (torch.nn.functional.linear: cuBLAS's TN
layout); M is the tokens, N x K the weight. FLOPs 2 M N K. Attention FLOPs as trainsim counts them
(perf/compute.py attention_fwd): causal forward = half of the full 4 s^2 d h, i.e. 2 s^2 d h with h the query
heads; backward = 2.5 x the forward FLOPs (perf/compute.py ATTN_BWD_FLOPS_RATIO; as NVIDIA's cudnn-frontend
sdpa benchmark counts them), timed as (forward + backward) - forward.
"""
from __future__ import annotations

import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from _device import env, gpu_state, setup

GIB = 1024 ** 3
L2_BYTES = 60e6   # H200 L2 (torch reports it: props.L2_cache_size)


class Timer:
    """Per-call timing: CUDA events on a GPU, perf_counter on the CPU (dry run)."""

    def __init__(self, device: str):
        self.cuda = device == "cuda"

    def time(self, fns, warmup: int, reps: int) -> dict:
        """Time each call of a rotating list of closures ``fns``; returns median/min/max seconds per call."""
        for i in range(warmup):
            fns[i % len(fns)]()
        if self.cuda:
            torch.cuda.synchronize()
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
            for i in range(reps):
                starts[i].record()
                fns[i % len(fns)]()
                ends[i].record()
            torch.cuda.synchronize()
            ts = [s.elapsed_time(e) * 1e-3 for s, e in zip(starts, ends)]
        else:
            ts = []
            for i in range(reps):
                t0 = time.perf_counter()
                fns[i % len(fns)]()
                ts.append(time.perf_counter() - t0)
        return {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "reps": reps}


def kernel_time(fn, reps: int) -> dict:
    """Device time of the CUDA kernels ``fn`` launches, per call, from the torch profiler's kernel records (no host
    time: at short lengths an SDPA call's host work outlasts its kernels, and event timing then counts the GPU's
    wait for the host, which a training step's run-ahead host hides). Kernel names: the backend's."""
    from torch.profiler import ProfilerActivity, profile
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    ev = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    tot_us = sum(getattr(e, "self_device_time_total", 0.0) for e in ev)
    top = sorted(ev, key=lambda e: -getattr(e, "self_device_time_total", 0.0))[:4]
    return {"kernel_s": tot_us * 1e-6 / reps, "reps": reps,
            "kernels": [(e.key[:120], e.count, getattr(e, "self_device_time_total", 0.0)) for e in top]}


def copies_for(bytes_one: float) -> int:
    """How many copies of a call's inputs to rotate so the set is at least 4x the L2 (1 when one already is)."""
    return max(1, min(16, int(-(-4 * L2_BYTES // max(bytes_one, 1.0)))))


def bench_gemm(timer, device, m, n, k, dtype, warmup, reps) -> dict:
    el = 1 if dtype == "fp8" else 2
    ncopy = copies_for((m * k + n * k) * el)
    sets = []
    for _ in range(ncopy):
        x = torch.randn(m, k, device=device, dtype=torch.bfloat16)
        w = torch.randn(n, k, device=device, dtype=torch.bfloat16)
        sets.append((x, w))
    if dtype == "bf16":
        fns = [lambda x=x, w=w: F.linear(x, w) for x, w in sets]
    else:
        one = torch.ones((), device=device, dtype=torch.float32)
        f8 = [(x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)) for x, w in sets]
        del sets
        # _scaled_mm wants A row-major (M x K) and B column-major (K x N): W^T of a row-major N x K W is that
        fns = [lambda x=x, w=w: torch._scaled_mm(x, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
               for x, w in f8]
    r = timer.time(fns, warmup, reps)
    if timer.cuda:
        r["state"] = gpu_state()
    t = r["median_s"]
    r.update({"m": m, "n": n, "k": k, "dtype": dtype, "copies": ncopy,
              "tflops": 2.0 * m * n * k / t / 1e12,
              "weight_gbps": n * k * el / t / 1e9,
              "all_bytes_gbps": ((m * k + n * k) * el + m * n * 2) / t / 1e9})
    return r


def bench_attention(timer, device, seq, heads, kv_heads, d, backend_name, warmup, reps) -> dict:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    dt = torch.bfloat16
    q = torch.randn(1, heads, seq, d, device=device, dtype=dt, requires_grad=True)
    k = torch.randn(1, kv_heads, seq, d, device=device, dtype=dt, requires_grad=True)
    v = torch.randn(1, kv_heads, seq, d, device=device, dtype=dt, requires_grad=True)
    backends = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
    gqa = "enable_gqa"

    def call(kk, vv, **kw):
        with sdpa_kernel([backends[backend_name]]):
            return F.scaled_dot_product_attention(q, kk, vv, is_causal=True, **kw)

    try:   # GQA as the kernel takes it natively; else K and V expanded to the query heads (same FLOPs)
        call(k, v, enable_gqa=True)
        kv, kw = (k, v), {"enable_gqa": True}
    except Exception as e:   # noqa: BLE001 (any refusal of the backend: record it and fall back)
        gqa = f"expanded ({type(e).__name__})"
        rep = heads // kv_heads
        kx = k.detach().repeat_interleave(rep, dim=1).requires_grad_(True)
        vx = v.detach().repeat_interleave(rep, dim=1).requires_grad_(True)
        kv, kw = (kx, vx), {}
    grad = torch.randn(1, heads, seq, d, device=device, dtype=dt)

    def fwd():
        with torch.no_grad():
            call(*kv, **kw)

    def fwd_bwd():   # autograd.grad: no accumulation into .grad (no extra add kernels in the timing)
        out = call(*kv, **kw)
        torch.autograd.grad(out, (q, *kv), grad)

    rf = timer.time([fwd], warmup, reps)
    rfb = timer.time([fwd_bwd], warmup, reps)
    flops_fwd = 2.0 * seq * seq * d * heads      # causal: half of 4 s^2 d h
    t_bwd = rfb["median_s"] - rf["median_s"]
    extra = {}
    if timer.cuda:
        kf, kfb = kernel_time(fwd, reps), kernel_time(fwd_bwd, reps)
        kb = kfb["kernel_s"] - kf["kernel_s"]
        extra = {"kernel_fwd": kf, "kernel_fwd_bwd": kfb, "state": gpu_state(),
                 "kernel_fwd_tflops": flops_fwd / kf["kernel_s"] / 1e12,
                 "kernel_bwd_tflops": 2.5 * flops_fwd / kb / 1e12 if kb > 0 else None}
    return {**extra, "seq": seq, "heads": heads, "kv_heads": kv_heads, "head_dim": d, "backend": backend_name,
            "gqa": gqa, "fwd": rf, "fwd_bwd": rfb, "flops_fwd": flops_fwd,
            "fwd_tflops": flops_fwd / rf["median_s"] / 1e12,
            "bwd_tflops": 2.5 * flops_fwd / t_bwd / 1e12 if t_bwd > 0 else None}


def default_attention_kernels(device, seq, heads, kv_heads, d) -> list[str]:
    """Kernel names the default SDPA dispatch runs (torch profiler), to name the backend it picks."""
    from torch.profiler import ProfilerActivity, profile
    q = torch.randn(1, heads, seq, d, device=device, dtype=torch.bfloat16)
    k = torch.randn(1, kv_heads, seq, d, device=device, dtype=torch.bfloat16)
    F.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=True)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=acts) as prof:
        F.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=True)
        if device == "cuda":
            torch.cuda.synchronize()
    names = sorted({e.key for e in prof.key_averages() if e.device_type.name == "CUDA"} if device == "cuda"
                   else {e.key for e in prof.key_averages()})
    return names[:12]


def bench_copy(timer, device, nbytes, warmup, reps) -> dict:
    n = int(nbytes // 2)
    src = torch.randn(n, device=device, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    r = timer.time([lambda: dst.copy_(src)], warmup, reps)
    r.update({"bytes_each_way": n * 2, "gbps_read_plus_write": 2 * n * 2 / r["median_s"] / 1e9})
    a, b = src, torch.randn(n, device=device, dtype=torch.bfloat16)
    r2 = timer.time([lambda: torch.add(a, b, out=dst)], warmup, reps)
    r2.update({"bytes_each_tensor": n * 2, "gbps_2read_1write": 3 * n * 2 / r2["median_s"] / 1e9})
    return {"copy": r, "add": r2}


def grids(dry: bool) -> dict:
    if dry:
        return {"bf16": [(64, 64, 64), (32, 64, 128)], "decode": [(1, 64, 64)], "fp8": [(64, 64, 64)],
                "attn_seqs": [128, 256], "attn": (8, 2, 32), "copy_bytes": 8e6}
    k_sweep = [(8192, 8192, k) for k in (512, 1024, 2048, 4096, 8192, 16384)]
    m_sweep = [(m, 8192, 8192) for m in (128, 256, 512, 1024, 2048, 4096, 16384)]
    # Llama 3.1 70B (hidden 8192, 64 q / 8 kv heads of 128, FFN 28672) and 8B (4096, 32 / 8, 14336) layer GEMMs
    # at 8192 tokens, whole (TP 1) and one TP 8 rank's share: qkv, out proj, fused gate+up, down
    llama = [(8192, 10240, 8192), (8192, 57344, 8192), (8192, 8192, 28672),
             (8192, 1280, 8192), (8192, 8192, 1024), (8192, 7168, 8192), (8192, 8192, 3584),
             (8192, 6144, 4096), (8192, 4096, 4096), (8192, 28672, 4096), (8192, 4096, 14336)]
    # wave quantisation probe: 8 rows of 128-row tiles x 16 / 17 / 18 columns = 128 / 136 / 144 tiles on 132 SMs
    waves = [(1024, 2048, 8192), (1024, 2176, 8192), (1024, 2304, 8192), (1024, 4224, 8192)]
    decode = [(m, n, 8192) for n in (8192, 28672) for m in (1, 2, 4, 8, 16, 32, 64, 128, 256)]
    fp8 = k_sweep + [(m, 8192, 8192) for m in (512, 2048)] + [(8192, 57344, 8192), (8192, 8192, 28672)] \
        + [(m, 8192, 8192) for m in (1, 16, 128)]
    return {"bf16": k_sweep + m_sweep + llama + waves, "decode": decode, "fp8": fp8,
            "attn_seqs": [1024, 2048, 4096, 8192, 16384, 32768], "attn": (64, 8, 128), "copy_bytes": 4 * GIB}


def main(argv=None) -> int:
    got = setup(__doc__, argv)
    if isinstance(got, int):
        return got
    args, device = got
    timer, g = Timer(device), grids(args.dry_run)
    res: dict = {"env": env(device), "bf16_gemm": [], "fp8_gemm": [], "decode_gemm": [],
                 "attention": [], "errors": []}
    t_start = time.time()
    w, r = (1, 3) if args.dry_run else (5, 30)

    def step(name, fn, *a):
        try:
            out = fn(*a)
            print(name, json.dumps(out)[:300], flush=True)
            return out
        except Exception as e:   # noqa: BLE001 (one refused point must not lose the others)
            res["errors"].append(f"{name}: {type(e).__name__}: {str(e)[:300]}")
            print("ERROR", res["errors"][-1], flush=True)
            return None

    res["hbm"] = step("copy", bench_copy, timer, device, g["copy_bytes"], w, r)
    for m, n, k in g["bf16"]:
        x = step(f"bf16 {m}x{n}x{k}", bench_gemm, timer, device, m, n, k, "bf16", w, r)
        if x:
            res["bf16_gemm"].append(x)
    for m, n, k in g["decode"]:
        x = step(f"decode {m}x{n}x{k}", bench_gemm, timer, device, m, n, k, "bf16", w, r)
        if x:
            res["decode_gemm"].append(x)
    if device == "cuda":
        for m, n, k in g["fp8"]:
            x = step(f"fp8 {m}x{n}x{k}", bench_gemm, timer, device, m, n, k, "fp8", w, r)
            if x:
                res["fp8_gemm"].append(x)
            elif len(res["errors"]) > 3 and not res["fp8_gemm"]:
                break   # FP8 refused: skip the rest
    h, hkv, d = g["attn"]
    res["attention_default_kernels"] = step("default sdpa kernels", default_attention_kernels, device,
                                            4 * 1024 if device == "cuda" else 128, h, hkv, d)
    aw, ar = (1, 2) if args.dry_run else (3, 7)
    for backend in (["cudnn", "flash"] if device == "cuda" else ["math"]):
        for s in g["attn_seqs"]:
            x = step(f"attn {backend} {s}", bench_attention, timer, device, s, h, hkv, d, backend, aw, ar)
            if x:
                res["attention"].append(x)
            torch.cuda.empty_cache() if device == "cuda" else None
    res["elapsed_s"] = time.time() - t_start
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    # short table last (the device reply carries the end of the output)
    print(f"\nelapsed {res['elapsed_s']:.1f} s; errors {len(res['errors'])}")
    if res.get("hbm"):
        print(f"HBM copy {res['hbm']['copy']['gbps_read_plus_write']:.0f} GB/s, add "
              f"{res['hbm']['add']['gbps_2read_1write']:.0f} GB/s")
    for key in ("bf16_gemm", "fp8_gemm"):
        for x in res[key]:
            print(f"{key} {x['m']}x{x['n']}x{x['k']}: {x['tflops']:.0f} TFLOP/s (min time: "
                  f"{2 * x['m'] * x['n'] * x['k'] / x['min_s'] / 1e12:.0f}) {x.get('state')}")
    for x in res["decode_gemm"]:
        print(f"decode {x['m']}x{x['n']}x{x['k']}: {x['tflops']:.1f} TFLOP/s, weights {x['weight_gbps']:.0f} GB/s")
    for x in res["attention"]:
        print(f"attn {x['backend']} {x['seq']} ({x['gqa']}): fwd {x['fwd_tflops']:.0f} bwd "
              f"{x['bwd_tflops'] or float('nan'):.0f} TFLOP/s; kernels fwd {x.get('kernel_fwd_tflops', 0):.0f} "
              f"bwd {x.get('kernel_bwd_tflops') or 0:.0f}; {x.get('state')}")
    print("default kernels:", res.get("attention_default_kernels"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
