"""The search against the experts: for every validation run taken from a tuned recipe (the Megatron-Bridge / NeMo
performance tables), remove the plan (keep the software stack, chips, batch, precision and the recipe's recompute
modules, offload and pipeline split), search the whole plan space the stack offers, and compare the best plan's
predicted tokens/s per chip with (a) the published tuned throughput and (b) the recipe's own plan in the same
model. (b) isolates what the search finds that the recipe's authors did not (a free cost in the model, or a real
gain); (a) adds the model's error on the recipe itself (issue 14 item 3)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..search import search
from ..spec import PlanSpec, load_run
from .reference import steady_reference

TUNED_PREFIXES = ("megatron-bridge-", "nemo-2")
KEPT = ("recompute_modules", "recompute_method", "recompute_num_layers", "pipeline_split", "offload_activation_layers")


@dataclass
class RecipeCheck:
    """A tuned recipe's published throughput against the search's best plan and the recipe's own plan."""

    run: str
    reported: float                 # published tokens/s per chip
    search_best: float              # the search's best plan, predicted
    stated_plan: float | None       # the recipe's own plan, predicted (None: it fits nowhere in the model)
    best_plan: dict

    @property
    def over_published(self) -> float:
        """Search's best predicted / published tokens/s per chip."""
        return self.search_best / self.reported

    @property
    def over_recipe_plan(self) -> float | None:
        """Search's best / the recipe's own plan, both predicted (``None`` when the recipe's plan fits nowhere)."""
        return None if self.stated_plan is None else self.search_best / self.stated_plan


def tuned_recipe_files(runs_dir: Path) -> list[Path]:
    """The run specs in ``runs_dir`` that are tuned framework recipes (names starting with a tuned prefix)."""
    return [f for f in sorted(runs_dir.glob("*.yaml")) if f.stem.startswith(TUNED_PREFIXES)]


def check_recipe(path: Path) -> RecipeCheck | None:
    """One recipe: None when it has no steady-state throughput or no plan fits even with the plan removed."""
    run = load_run(path)
    ref = steady_reference(run)
    if ref is None:
        return None
    free = replace(run, plan=PlanSpec(**{k: getattr(run.plan, k) for k in KEPT}))
    res = search(free, top=1, with_pareto=False)
    if res.best is None:
        return None
    stated = search(run, top=1, with_pareto=False).best
    return RecipeCheck(path.stem, ref.value, res.best.tokens_per_s_per_chip,
                       stated.tokens_per_s_per_chip if stated else None, res.best.plan)
