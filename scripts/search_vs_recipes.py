#!/usr/bin/env python3
"""How much faster than the experts' tuned recipe is the search's best plan? (issue: Fidelity II, item 3)

For every validation run taken from a tuned recipe (Megatron-Bridge / NeMo performance tables), the run's plan is
removed (its software stack, chips, batch and precision kept) and the whole plan space is searched; the best plan's
predicted tokens/s per chip is compared with the published tuned throughput. Prints one line per run and the
median and max ratio. Usage: python scripts/search_vs_recipes.py [--json]
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from trainsim.search import search
from trainsim.spec import PlanSpec, load_run
from trainsim.validate.reference import steady_reference

ROOT = Path(__file__).resolve().parents[1]
TUNED = ("megatron-bridge-", "nemo-2")


def rows():
    out = []
    for f in sorted((ROOT / "validation" / "runs").glob("*.yaml")):
        if not f.stem.startswith(TUNED):
            continue
        run = load_run(f)
        ref = steady_reference(run)
        if ref is None:
            continue
        free = replace(run, plan=PlanSpec(**{k: getattr(run.plan, k) for k in (
            "recompute_modules", "recompute_method", "recompute_num_layers", "pipeline_split",
            "offload_activation_layers")}))
        res = search(free, top=1, with_pareto=False)
        if res.best is None:
            continue
        stated = search(run, top=1, with_pareto=False).best
        out.append({"run": f.stem, "reported": ref.value, "search_best": res.best.tokens_per_s_per_chip,
                    "stated_plan": stated.tokens_per_s_per_chip if stated else None,
                    "ratio": res.best.tokens_per_s_per_chip / ref.value, "best_plan": res.best.plan})
    return out


def main() -> None:
    rs = rows()
    if "--json" in sys.argv:
        print(json.dumps(rs, indent=1, default=str))
        return
    for r in sorted(rs, key=lambda r: r["ratio"]):
        print(f"{r['run']:58s} {r['reported']:9.0f} stated {r['stated_plan'] or 0:9.0f} search {r['search_best']:9.0f}"
              f"  x{r['ratio']:.2f}")
    ratios = sorted(r["ratio"] for r in rs)
    print(f"{len(rs)} tuned recipes: search best / published median x{ratios[len(ratios) // 2]:.2f}, "
          f"max x{ratios[-1]:.2f}")


if __name__ == "__main__":
    main()
