"""Time a Llama-3.1-8B-shaped BF16 decode step on one GPU (written for an H200) to check trainsim's serving decode
model (weights and KV cache read once per step). Writes one JSON.

    python3 benchmarks/h200_decode.py --out h200_decode.json          # on the GPU (under a minute)
    python3 benchmarks/h200_decode.py --dry-run --out x.json          # tiny shapes on the CPU: checks the script only

The step, in plain PyTorch: for each of 32 layers RMSNorm, fused QKV GEMM (4096 -> 6144), the new token's K and V
written at position L - 1 of the cache, attention of 1 query per sequence over the L cached keys (GQA 32 query / 8
KV heads of 128), O GEMM (4096 -> 4096), residual add, RMSNorm, fused gate/up GEMM (4096 -> 28672), SiLU x up, down
GEMM (14336 -> 4096), residual add; then the final RMSNorm and the LM head (4096 -> 128256). No RoPE (an elementwise
pass over B x 48 x 128 values per layer, negligible here), no embedding lookup (B rows), no sampling. Shapes from
meta-llama/Llama-3.1-8B's config.json as trainsim's catalog holds it (catalog/data/models.yaml llama-3.1-8b).

Attention, two ways (both reported): 'sdpa' = torch.nn.functional.scaled_dot_product_attention(q (B, 32, 1, 128),
K / V (B, 8, L, 128), enable_gqa=True), PyTorch's default backend choice; 'bmm' = the GQA group folded into the
query rows (B, 8, 4, 128) @ K^T, softmax in FP32, @ V: each cached byte read once by a plain batched GEMM.

Method (as the device notes' METHOD.md): random normal weights and cache (never zeros), every layer its own weights
(14 GiB of them: nothing is served from the 60 MB L2 across layers), the whole step captured in one CUDA graph
(torch.cuda.CUDAGraph) so the host's launch work is out of the timing, warm-up replays, then each replay timed alone
with CUDA events; median (min, max) of the replays. Per point the NVML SM clock and power right after it (the card
power-caps under sustained load). Bytes per step: weights = every GEMM weight and norm vector (the embedding table
is not read by decode); KV read = 2 (K, V) x 32 layers x 8 heads x 128 x 2 bytes x L x B. Effective HBM rate =
(weights + KV) / step time. A graph of the attention alone (32 layers) and one of everything but attention give the
split. The torch profiler's per-kernel device time of a few eager steps names the kernels and their shares.
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
KV_LIMIT_BYTES = 60 * GIB     # skip (B, L) whose cache exceeds this (weights 15 GB + cache on a 141 GB card)


def shapes(dry: bool) -> dict:
    if dry:
        return {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "head_dim": 16, "ffn": 96, "vocab": 256,
                "batches": [1, 2], "lengths": [16, 32], "profile": [(2, 32)], "eps": 1e-5}
    return {"layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 8, "head_dim": 128, "ffn": 14336,
            "vocab": 128256, "batches": [1, 8, 32, 64, 128, 256], "lengths": [1024, 4096],
            "profile": [(1, 1024), (64, 1024), (64, 4096)], "eps": 1e-5}


class Model:
    """Weights of the decode step (every layer its own) and the step itself, attention pluggable."""

    def __init__(self, s: dict, device: str):
        self.s, dt = s, torch.bfloat16
        h, d, nq, nkv, f = s["hidden"], s["head_dim"], s["heads"], s["kv_heads"], s["ffn"]

        def w(*shape):
            return torch.randn(*shape, device=device, dtype=dt) * 0.02

        self.layers = [{"ln1": torch.ones(h, device=device, dtype=dt), "qkv": w((nq + 2 * nkv) * d, h),
                        "o": w(h, nq * d), "ln2": torch.ones(h, device=device, dtype=dt),
                        "gate_up": w(2 * f, h), "down": w(h, f)} for _ in range(s["layers"])]
        self.ln_f = torch.ones(h, device=device, dtype=dt)
        self.lm_head = w(s["vocab"], h)

    def weight_bytes(self) -> int:
        n = sum(t.numel() for lay in self.layers for t in lay.values()) + self.ln_f.numel() + self.lm_head.numel()
        return 2 * n

    def step(self, x, caches, attn, pos: int, do_attn: bool = True):
        """One decode step for x (B, hidden); caches[i] = (K, V), each (B, kv_heads, L, head_dim). With
        ``do_attn`` False the attention output is the query itself (everything but the cache read)."""
        s = self.s
        b, d, nq, nkv, f = x.shape[0], s["head_dim"], s["heads"], s["kv_heads"], s["ffn"]
        for lay, (kc, vc) in zip(self.layers, caches):
            y = F.rms_norm(x, (s["hidden"],), lay["ln1"], s["eps"])
            qkv = F.linear(y, lay["qkv"])
            q, k, v = qkv.split([nq * d, nkv * d, nkv * d], dim=-1)
            kc[:, :, pos] = k.view(b, nkv, d)
            vc[:, :, pos] = v.view(b, nkv, d)
            a = attn(q.reshape(b, nq, d), kc, vc) if do_attn else q.reshape(b, nq * d)
            x = x + F.linear(a, lay["o"])
            y = F.rms_norm(x, (s["hidden"],), lay["ln2"], s["eps"])
            gu = F.linear(y, lay["gate_up"])
            x = x + F.linear(F.silu(gu[:, :f]) * gu[:, f:], lay["down"])
        return F.linear(F.rms_norm(x, (s["hidden"],), self.ln_f, s["eps"]), self.lm_head)


def attn_sdpa(q, kc, vc):
    """q (B, nq, d): SDPA with one query row per sequence, GQA native (PyTorch's default backend choice)."""
    b, nq, d = q.shape
    o = F.scaled_dot_product_attention(q.unsqueeze(2), kc, vc, enable_gqa=True)   # (B, nq, 1, d)
    return o.reshape(b, nq * d)


def attn_bmm(q, kc, vc):
    """q (B, nq, d): the nq / nkv query heads of a group as rows of one batched GEMM over the group's cache."""
    b, nq, d = q.shape
    nkv = kc.shape[1]
    qg = q.view(b, nkv, nq // nkv, d)
    sc = torch.matmul(qg, kc.transpose(-1, -2)).float() * (d ** -0.5)          # (B, nkv, g, L)
    p = torch.softmax(sc, dim=-1).to(q.dtype)
    return torch.matmul(p, vc).reshape(b, nq * d)


ATTN = {"sdpa": attn_sdpa, "bmm": attn_bmm}


def time_fn(fn, device: str, warmup: int, reps: int) -> dict:
    """Each call of ``fn`` (a graph replay on the GPU, an eager step on the CPU) timed alone; median / min / max."""
    for _ in range(warmup):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        for a, b in ev:
            a.record()
            fn()
            b.record()
        torch.cuda.synchronize()
        ts = [a.elapsed_time(b) * 1e-3 for a, b in ev]
    else:
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    out = {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "reps": reps}
    if device == "cuda":
        out["state"] = gpu_state()
    return out


def graphed(fn, device: str):
    """``fn`` captured in a CUDA graph (warmed up on a side stream first, as PyTorch's docs say); eager on the CPU."""
    if device != "cuda":
        return fn, None
    st = torch.cuda.Stream()
    st.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(st):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(st)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay, g


def kernel_profile(fn, device: str, reps: int = 3) -> dict:
    """Per-kernel device time of ``reps`` eager steps (torch profiler), top kernels by time, and the total."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    fn()
    with profile(activities=acts) as prof:
        for _ in range(reps):
            fn()
        if device == "cuda":
            torch.cuda.synchronize()
    ev = [e for e in prof.key_averages() if (e.device_type.name == "CUDA") == (device == "cuda")]
    key = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    tot = sum(getattr(e, key, 0.0) for e in ev)
    top = sorted(ev, key=lambda e: -getattr(e, key, 0.0))[:10]
    return {"total_s_per_step": tot * 1e-6 / reps,
            "kernels": [{"name": e.key[:140], "calls_per_step": e.count / reps,
                         "s_per_step": getattr(e, key, 0.0) * 1e-6 / reps} for e in top]}


def bench_copy(device: str, warm: int, reps: int) -> dict:
    """The HBM ceiling on this card now: a 4 GiB BF16 device-to-device copy, bytes read + written."""
    n = 2 * GIB // 2 if device == "cuda" else 1 << 16
    src = torch.randn(n, device=device, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    r = time_fn(lambda: dst.copy_(src), device, warm, reps)
    r["gbps_read_plus_write"] = 2 * n * 2 / r["median_s"] / 1e9
    return r


def bench_point(model: Model, B: int, L: int, device: str, warm: int, reps: int, guard, profiles: list) -> dict:
    """One (batch, KV length) point: the whole step with each attention, the attention alone (32 layers), the step
    without attention, each as a CUDA graph; kernel profiles at the shape's profile points."""
    s = model.s
    nl, nkv, d = s["layers"], s["kv_heads"], s["head_dim"]
    wbytes, kv_bytes = model.weight_bytes(), 2 * nl * nkv * d * 2 * L * B
    caches = [(torch.randn(B, nkv, L, d, device=device, dtype=torch.bfloat16),
               torch.randn(B, nkv, L, d, device=device, dtype=torch.bfloat16)) for _ in range(nl)]
    x = torch.randn(B, s["hidden"], device=device, dtype=torch.bfloat16)
    q = torch.randn(B, s["heads"], d, device=device, dtype=torch.bfloat16)
    pt: dict = {"batch": B, "kv_len": L, "weight_bytes": wbytes, "kv_read_bytes": kv_bytes}

    def timed(label: str, fn):
        rep, g = guard(f"graph {label} B={B} L={L}", graphed, fn, device) or (None, None)
        t = guard(f"{label} B={B} L={L}", time_fn, rep, device, warm, reps) if rep else None
        del g
        return t

    for name, attn in ATTN.items():
        t = timed(f"step {name}", lambda attn=attn: model.step(x, caches, attn, L - 1))
        if t:
            t["hbm_gbps"] = (wbytes + kv_bytes) / t["median_s"] / 1e9
            pt[f"step_{name}"] = t
        t = timed(f"attn {name}", lambda attn=attn: [attn(q, kc, vc) for kc, vc in caches])
        if t:
            t["kv_gbps"] = kv_bytes / t["median_s"] / 1e9
            pt[f"attn_{name}"] = t
    t = timed("no-attn", lambda: model.step(x, caches, attn_sdpa, L - 1, do_attn=False))
    if t:
        t["weight_gbps"] = wbytes / t["median_s"] / 1e9
        pt["step_no_attn"] = t
    if (B, L) in s["profile"]:
        for name, attn in ATTN.items():
            pr = guard(f"profile {name}", kernel_profile, lambda attn=attn: model.step(x, caches, attn, L - 1),
                       device)
            if pr:
                profiles.append({"batch": B, "kv_len": L, "attn": name, **pr})
    return pt


def main(argv=None) -> int:
    got = setup(__doc__, argv)
    if isinstance(got, int):
        return got
    args, device = got
    s = shapes(args.dry_run)
    res: dict = {"env": env(device), "shape": s, "points": [], "profiles": [], "errors": []}
    t_start = time.time()
    warm, reps = (1, 3) if args.dry_run else (5, 20)
    nkv, d, nl = s["kv_heads"], s["head_dim"], s["layers"]

    def guard(name, fn, *a):
        try:
            return fn(*a)
        except Exception as e:   # noqa: BLE001 (one refused point must not lose the others)
            res["errors"].append(f"{name}: {type(e).__name__}: {str(e)[:300]}")
            print("ERROR", res["errors"][-1], flush=True)
            return None

    res["hbm_copy"] = bench_copy(device, warm, reps)
    print("copy", json.dumps(res["hbm_copy"]), flush=True)
    model = Model(s, device)
    res["weight_bytes"] = wbytes = model.weight_bytes()
    for L in s["lengths"]:
        for B in s["batches"]:
            if 2 * nl * nkv * d * 2 * L * B > KV_LIMIT_BYTES:
                continue
            pt = bench_point(model, B, L, device, warm, reps, guard, res["profiles"])
            res["points"].append(pt)
            sd, sb = pt.get("step_sdpa", {}), pt.get("step_bmm", {})
            print(f"B={B:4d} L={L:5d}: sdpa {sd.get('median_s', 0) * 1e3:.3f} ms ({sd.get('hbm_gbps', 0):.0f} GB/s)"
                  f" bmm {sb.get('median_s', 0) * 1e3:.3f} ms; attn sdpa "
                  f"{pt.get('attn_sdpa', {}).get('median_s', 0) * 1e3:.3f} bmm "
                  f"{pt.get('attn_bmm', {}).get('median_s', 0) * 1e3:.3f}; no-attn "
                  f"{pt.get('step_no_attn', {}).get('median_s', 0) * 1e3:.3f} ms; {sd.get('state')}", flush=True)
            if device == "cuda":
                torch.cuda.empty_cache()
    res["elapsed_s"] = time.time() - t_start
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"elapsed {res['elapsed_s']:.1f} s; errors {len(res['errors'])}; weights {wbytes / 1e9:.3f} GB")
    for pr in res["profiles"]:
        print(pr["batch"], pr["kv_len"], pr["attn"], f"{pr['total_s_per_step'] * 1e3:.3f} ms:",
              "; ".join(f"{k['name'][:60]} {k['s_per_step'] * 1e3:.3f}" for k in pr["kernels"][:5]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
