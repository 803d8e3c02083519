#!/usr/bin/env python3
"""How much faster than the experts' tuned recipe is the search's best plan? (issue: Fidelity II, item 3)

For every validation run taken from a tuned recipe (Megatron-Bridge / NeMo performance tables), the run's plan is
removed (its software stack, chips, batch and precision kept) and the whole plan space is searched; the best plan's
predicted tokens/s per chip is compared with the published tuned throughput. Prints one line per run and the
median and max ratio. Usage: python scripts/search_vs_recipes.py [--json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainsim.validate.recipes import check_recipe, tuned_recipe_files

ROOT = Path(__file__).resolve().parents[1]


def rows():
    out = []
    for f in tuned_recipe_files(ROOT / "validation" / "runs"):
        c = check_recipe(f)
        if c is not None:
            out.append({"run": c.run, "reported": c.reported, "search_best": c.search_best,
                        "stated_plan": c.stated_plan, "ratio": c.over_published,
                        "over_recipe_plan": c.over_recipe_plan, "best_plan": c.best_plan})
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)   # --help and a mistyped flag exit here, before any search
    rs = rows()
    if args.json:
        print(json.dumps(rs, indent=1, default=str))
        return
    for r in sorted(rs, key=lambda r: r["ratio"]):
        rp = f"x{r['over_recipe_plan']:.2f}" if r["over_recipe_plan"] else "  -  "
        print(f"{r['run']:58s} {r['reported']:9.0f} stated {r['stated_plan'] or 0:9.0f} search {r['search_best']:9.0f}"
              f"  x{r['ratio']:.2f} of published, {rp} of the recipe's plan in the model")
    ratios = sorted(r["ratio"] for r in rs)
    print(f"{len(rs)} tuned recipes: search best / published median x{ratios[len(ratios) // 2]:.2f}, "
          f"max x{ratios[-1]:.2f}")


if __name__ == "__main__":
    main()
