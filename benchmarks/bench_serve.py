"""Explorer answer times (issue 20): ``python benchmarks/bench_serve.py``.

Starts ``trainsim serve`` in the background and times whole HTTP requests (JSON in, JSON out) for the seed's
1.6T MoE on 65 CloudMatrix 384 pods (benchmarks/runs/longcat2-class-cm384x65.yaml, the page's default run):
the plan answer (a fresh plan search each time: every request edits the HBM bandwidth to a new value, so the
memo cannot answer it), the same question again (memoised), a what-if move (nominal memoised + one search),
sizing for a 60-day deadline, capacity of 65 pods for 90 days, and two plan requests at once. Target: the plan
answer in <= 1 s on a 2-core machine. Not a test (no timing asserts in tests)."""
from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.request
from pathlib import Path

import yaml

RUN = Path(__file__).parent / "runs" / "longcat2-class-cm384x65.yaml"


def main(repeats: int = 5) -> None:
    from trainsim.serve.app import background

    doc = yaml.safe_load(RUN.read_text())
    tr = doc["training"]
    spec = {"name": doc["name"], "model": doc["model"], "system": doc["system"], "chips": doc["chips"],
            "training": {"tokens": tr["tokens"], "seq_len": tr["seq_len"],
                         "global_batch_seqs": int(tr["global_batch_tokens"] // tr["seq_len"]),
                         "precision": tr["precision"]}}

    with background() as url:
        def post(path: str, body: dict) -> float:
            req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            t0 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=600) as r:
                json.loads(r.read())
            return time.perf_counter() - t0

        rows = []
        cold = post("/api/plan", {"spec": spec})
        rows.append(("plan, first request after start", 1, cold, cold))
        fresh = [post("/api/plan", {"spec": spec, "edits": {"hbm_bw": 3.2e12 * (0.95 - 0.05 * i)}})
                 for i in range(repeats)]
        rows.append(("plan, fresh search (HBM bandwidth edited)", repeats, statistics.median(fresh), max(fresh)))
        memo = [post("/api/plan", {"spec": spec}) for _ in range(repeats)]
        rows.append(("plan, same question again (memoised)", repeats, statistics.median(memo), max(memo)))
        wi = [post("/api/whatif", {"spec": spec, "edits": {"scale_up_bw": 392e9 * (0.9 - 0.1 * i)}, "top": 1})
              for i in range(repeats)]
        rows.append(("what-if move (nominal memoised + 1 search)", repeats, statistics.median(wi), max(wi)))
        sz = post("/api/size", {"spec": spec, "days": 60})
        rows.append(("size: chips for 60 days (a search per probe)", 1, sz, sz))
        cap = post("/api/capacity", {"system": "cloudmatrix-384", "units": 65, "days": 90})
        rows.append(("capacity: 65 pods, 90 days", 1, cap, cap))
        out: list[float] = []
        bodies = [{"spec": spec, "edits": {"hbm_bw": 2.0e12 + i * 1e11}} for i in range(2)]
        ts = [threading.Thread(target=lambda b=b: out.append(post("/api/plan", b))) for b in bodies]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        both = time.perf_counter() - t0
        rows.append(("two plan requests at once (wall, both done)", 2, both, max(out)))

    print("| request (1.6T MoE, 24,960 chips) | n | median s | max s |")
    print("|---|---:|---:|---:|")
    for name, n, med, mx in rows:
        print(f"| {name} | {n} | {med:.2f} | {mx:.2f} |")


if __name__ == "__main__":
    main()
