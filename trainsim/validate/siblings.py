"""The same published recipe on sibling chips: validation runs that differ only in their chip model.

A publisher that runs one recipe (model, container, chip count, batch, precision and FP8 recipe, parallel plan) on
two chips of one architecture family (Megatron-Bridge's performance summary: DGX-B200, DGX-B300, DGX-GB200,
DGX-GB300) measures the chips' ratio with the software held fixed. The model predicts the same ratio from the
catalog (peaks, HBM, links) under ONE calibration; what is left, published ratio / predicted ratio, is what the
per-chip-model calibration level (:mod:`trainsim.validate.calibrate`) has to absorb. An excess near 1 says the
catalog and the engine carry the chips' difference; far from 1 it says a chip property (or a per-chip software
difference the run specs do not state) is missing. ``scripts/sibling_ratios.py`` prints the table.

The container is the run spec's ``framework_version`` (free text, as the source states it); runs without one are
not paired. Activation offload (``plan.offload_activation_layers``) is left out of the recipe key: Megatron-Bridge
sets it per chip to fit HBM (Llama 3 70B FP8-CS: 40 layers on GB200, 20 on GB300, tag v0.4.2
``llama3_workload_base_configs.py``) and the engine prices it from each run's own value.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Callable, Iterable

from ..io.yamlsafe import load_yaml
from ..perf.calibration import Calib
from ..spec import Run
from .calibrate import CalRun

#: plan fields that may differ between sibling rows of one recipe (see the module docstring)
PER_CHIP_PLAN_FIELDS = ("offload_activation_layers",)


def container_of(run: Run) -> str | None:
    """The run spec's ``framework_version`` (the container or release the source names), else None."""
    if run.path is None:
        return None
    spec = load_yaml(Path(run.path).read_text(), where=str(run.path))
    v = spec.get("framework_version") if isinstance(spec, dict) else None
    return str(v) if v else None


def recipe_key(run: Run, container: str | None) -> tuple | None:
    """Everything that defines a published recipe except the chip model: container, stack, model, chip count,
    training settings (sequence, batch, precision, FP8 recipe and the stated kernels / overlaps), the stated plan
    (less :data:`PER_CHIP_PLAN_FIELDS`) and optimizer precisions, and the chip family. None without a container."""
    if container is None:
        return None
    plan = run.plan.model_dump(exclude=set(PER_CHIP_PLAN_FIELDS))
    return (container, run.framework, run.arch.name, run.chips, run.system.chip.family,
            repr(sorted(run.training.model_dump().items())), repr(sorted(plan.items())),
            repr(sorted(run.optimizer.model_dump().items())))


def sibling_pairs(runs: Iterable[CalRun], containers: dict[str, str | None] | None = None) \
        -> list[tuple[CalRun, CalRun]]:
    """Pairs of runs with one recipe key (:func:`recipe_key`) and different chip models, ordered by name within
    each pair. ``containers`` maps a run name to its container (default: read from each run's spec file)."""
    groups: dict[tuple, list[CalRun]] = {}
    for r in runs:
        c = containers[r.name] if containers is not None else container_of(r.run)
        k = recipe_key(r.run, c)
        if k is not None:
            groups.setdefault(k, []).append(r)
    out = []
    for grp in groups.values():
        for a, b in combinations(sorted(grp, key=lambda r: r.name), 2):
            if a.chip != b.chip:
                out.append((a, b))
    return sorted(out, key=lambda p: (p[0].name, p[1].name))


@dataclass(frozen=True)
class SiblingRatio:
    """One sibling pair: published and predicted tokens/s per chip of ``other`` over ``base``."""

    base: str
    other: str
    base_chip: str
    other_chip: str
    published: float
    predicted: float

    @property
    def excess(self) -> float:
        """published / predicted: the part of the chips' measured ratio the catalog and engine do not carry."""
        return self.published / self.predicted


def compare(pairs: Iterable[tuple[CalRun, CalRun]], calib_of: Callable[[CalRun], Calib]) -> list[SiblingRatio]:
    """Each pair's published and predicted ratio; ``calib_of(run)`` gives the calibration a run is predicted
    under (one shared calibration isolates the catalog; the fitted per-chip one shows what the fit absorbed)."""
    out = []
    for a, b in pairs:
        out.append(SiblingRatio(a.name, b.name, a.chip, b.chip, b.reported / a.reported,
                                b.predict(calib_of(b)) / a.predict(calib_of(a))))
    return out
