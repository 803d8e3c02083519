"""Honest calibration: fit the engine's few constants on the calibration runs, report leave-one-out errors.

Fitted parameters (everything else keeps its documented default in :class:`~trainsim.perf.calibration.Calib`):

* per chip family and GEMM precision with at least MIN_RUNS runs: ``gemm_eff`` (BF16 runs) or ``gemm_eff_fp8``
  (FP8 runs), the fraction of the dense peak of that precision a large GEMM reaches; the ``vendors`` entries hold
  one value per precision pooled over the runs of one vendor (the family's vendor part, catalog/load.py
  vendor_key: every ``nvidia-*`` family's runs), fitted where the vendor has MIN_RUNS runs of that precision, and
  the ``default`` entry one value per precision pooled over all runs of that precision; a family without its own
  fit takes its vendor's pool, else the global one (a constant is never fitted to one or two runs). The vendor
  level keeps one vendor's runs from setting another's rate: Blackwell BF16 (no BF16 runs) is priced from NVIDIA's
  BF16 runs, not from a pool that holds the 30 Ascend runs. Within a family, a chip model (SKU) with MIN_RUNS
  runs of its own gets its own value: SKUs of one architecture share a datasheet peak but not their power limit
  and clocks (GB200 1,200 W, GB300 1,400 W, both 5 PFLOP/s dense FP8), so the share of the peak they sustain
  differs. Chips of one silicon (hardware.yaml ``same_silicon_as``: the H800 SXM5 is the H100 SXM5's die at its
  clocks) are one chip model here, keyed by the silicon's chip id (catalog/load.py silicon_of). GEMM shape effects
  are not
  fitted: tile, wave and K-loop quantisation use hardware facts (perf/data/constants.yaml).
* ``gemm_eff_fp8_block_ratio``, one pooled value: the share of the FP8 peak block-scaled GEMMs (fp8_recipe mxfp8
  or blockwise) reach over what the chip's per-tensor FP8 GEMMs reach (:func:`_fit_block_ratio`).

Loss: the sum over runs of |log(predicted / reported)| tokens/s per chip (L1 on log errors: a median fit, so a
run the physics cannot explain does not drag the constants; it stays in the table with its error). Each run's
prediction is the fastest plan that fits within the fields its source states (the same search as ``estimate``).

Leave-one-out: for every run, refit with that run removed and predict it; those are the errors the README shows.
A family with a single run cannot be fitted without it: its held-out prediction uses the default constants.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import TrainsimError
from ..parallel.enumerate import enumerate_plans
from ..perf.calibration import Calib
from ..perf.step import evaluate
from ..spec import Run, load_run
from .reference import steady_reference
from .runner import expand_paths
from ..estimate import context
from ..frameworks import default_stages, framework_of, restrict_plan, run_plan_rules, runtime_settings
from ..perf.context import BLOCK_SCALED_RECIPES
from ..perf.calibration import calib_for
from ..catalog.load import same_silicon, silicon_of, vendor_key

MIN_RUNS = 3
PARAM = {"bf16": "gemm_eff", "fp8": "gemm_eff_fp8"}
EFF_BOUNDS = (0.35, 0.98)
RATIO_BOUNDS = (0.6, 1.2)   # gemm_eff_fp8_block_ratio: above 1 would say block scaling makes GEMMs faster


@dataclass
class CalRun:
    """A calibration run prepared for fast repeated evaluation (plans enumerated once)."""

    name: str
    run: Run
    family: str
    reported: float
    plans: object
    #: an FP8 run's BF16 GEMM efficiency (its output head runs in BF16: perf/compute.py head_gemm_fwd), set by
    #: :func:`_fit_level` from the BF16 runs fitted first, so that a fit never reads the stored calibration's value
    bf16_eff: float | None = None
    #: predictions made so far, by constants: :meth:`predict` is a pure function of the run, its plans and ``calib``,
    #: and the golden-section fits ask for the same ones again (each search starts at the same two points, a
    #: leave-one-out refit follows the full fit's path until the held-out run changes a comparison)
    _predicted: dict[Calib, float] = field(default_factory=dict, repr=False, compare=False)

    @property
    def precision(self) -> str:
        """The precision the run is fitted under: fp8 when it trains in FP8 on a chip with FP8 peak, else bf16."""
        fp8 = self.run.training.precision == "fp8" and self.run.system.chip.peak_flops.get("fp8")
        return "fp8" if fp8 else "bf16"

    @property
    def block_scaled(self) -> bool:
        """An FP8 run whose recipe (stated, else its stack's) is block-scaled: mxfp8 or blockwise."""
        return self.precision == "fp8" and \
            runtime_settings(self.run.training, self.framework)["fp8_recipe"] in BLOCK_SCALED_RECIPES

    @property
    def chip(self) -> str:
        """The run's chip model (SKU) as calibration keys it: its silicon (catalog/load.py silicon_of), so the runs
        of chips that share a die and clocks (H800 SXM5 and H100 SXM5) are one chip-model group."""
        return silicon_of(self.run.system.chip.id)

    @property
    def vendor(self) -> str | None:
        """The vendor pool the run belongs to: its family's vendor part (``nvidia`` of ``nvidia-hopper``), None for a
        family of no catalog vendor (``other``)."""
        return vendor_key(self.family)

    @property
    def chain(self) -> tuple[str, ...]:
        """Calibration groups from the most specific: the chip model, its architecture family, its vendor pool."""
        return (self.chip, self.family) + ((self.vendor,) if self.vendor else ())

    @property
    def key(self) -> tuple[str, str]:
        """(chip family, precision): the group the run's efficiency is fitted in."""
        return (self.family, self.precision)

    @property
    def framework(self) -> str:
        """The run's framework profile id."""
        return framework_of(self.run)

    @property
    def moe(self) -> bool:
        """A run whose model has routed experts (reported apart in the accuracy tables)."""
        return any(lk.moe is not None for lk in self.run.arch.layers)

    def predict(self, calib: Calib) -> float:
        """Predicted tokens/s per chip under ``calib``: that of the plan :meth:`chosen` picks (computed once per
        ``calib``; a repeat is read back)."""
        # a run whose GEMMs are not block-scaled never reads gemm_eff_fp8_block_ratio (StepContext.gemm_eff,
        # the one place it is read): its predictions at two ratios are the same one (the block-ratio profile fit)
        key = calib if self._reads_block_ratio else calib.with_(gemm_eff_fp8_block_ratio=1.0)
        got = self._predicted.get(key)
        if got is None:
            res = evaluate(context(self.run, calib), self.plans, detail=False)
            got = self._predicted[key] = float(res.tokens_per_s_per_chip[self.chosen(res)])
        return got

    @cached_property
    def _reads_block_ratio(self) -> bool:
        """Whether the engine reads ``gemm_eff_fp8_block_ratio`` for this run: its FP8 GEMMs are block-scaled
        (StepContext.fp8_block_scaled, a property of the run's precision, chip and recipe, not of the constants)."""
        return context(self.run).fp8_block_scaled

    def chosen(self, res) -> int:
        """Index into ``self.plans`` of the plan a prediction takes from their evaluation ``res`` (a
        :class:`~trainsim.perf.step.StepResult`): the fastest that fits in HBM (none fitting: the fastest of those
        needing the least memory, the rule of runner._estimate)."""
        mem = res.memory["total"]
        fits = mem <= self.run.system.chip.hbm_bytes
        if not fits.any():
            fits = mem <= mem.min() * (1.0 + 1e-9)
        return int(np.argmax(np.where(fits, res.tokens_per_s_per_chip, -np.inf)))


def prepare(paths=None) -> list[CalRun]:
    """The validation runs usable for fitting: those with a steady-state reference and at least one plan."""
    out = []
    for f in expand_paths(paths):
        try:
            run = load_run(f)
            ref = steady_reference(run)
        except TrainsimError:
            continue
        if ref is None:
            continue
        plans = _plans(run)
        if len(plans) == 0:
            continue
        out.append(CalRun(f.stem, run, run.system.chip.family, ref.value, plans))
    return out


def _plans(run: Run):
    """The plans a run's estimate chooses among, as :func:`trainsim.estimate.estimate` does: the unstated fields
    its software stack has defaults for take them (:func:`trainsim.frameworks.with_defaults`), unless no plan then
    fits, when they are searched in the order of :func:`trainsim.frameworks.default_stages`."""
    tr = run.training
    fw = framework_of(run)
    # each stage limited to what the stack offers, as the search limits it (trainsim/search.py restrict_plan):
    # else an unstated schedule enumerates every schedule of the registry (afab, zero-bubble, DualPipe) for any stack
    stages = [restrict_plan(p, fw) for p, _ in default_stages(run.plan, fw)]
    # and the uneven stages the engine sizes the ranks with, as the search reads them (search._enum_args)
    rules = dict(run_plan_rules(run, fw), first_stage_layers=run.plan.first_stage_layers,
                 last_stage_layers=run.plan.last_stage_layers)
    for p in stages[:-1]:
        plans, _ = enumerate_plans(run.arch, run.chips, tr.seq_len, tr.batch_seqs, p, **rules)
        if len(plans) and (evaluate(context(run), plans, detail=False).memory["total"]
                           <= run.system.chip.hbm_bytes).any():
            return plans
    plans, _ = enumerate_plans(run.arch, run.chips, tr.seq_len, tr.batch_seqs, stages[-1], **rules)
    return plans


def _golden(fn, lo: float, hi: float, tol: float = 0.004) -> float:
    """Minimise a unimodal function of one variable on [lo, hi] (golden-section search)."""
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = fn(c), fn(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = fn(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = fn(d)
    return (a + b) / 2.0


@dataclass
class Level:
    """One fitted constant per precision, at six levels of detail: pooled over every run of the precision, per
    vendor, per chip family, per chip family and software stack (framework profile), per chip model, per chip
    model and software stack; a level is fitted only on MIN_RUNS runs or more. ``eff`` is keyed by a group: a chip
    model id, a chip family or a vendor key (``nvidia``); ``fw_eff`` by a chip model or family with the stack (a
    vendor pool, like the global one, is not split by stack)."""

    params: dict[str, str]                                                  # precision -> Calib field
    pooled: dict[str, float] = field(default_factory=dict)                  # precision -> value
    eff: dict[tuple[str, str], float] = field(default_factory=dict)         # (group, precision) -> value
    fw_eff: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (group, precision, framework)

    def value(self, chain: tuple[str, ...], precision: str, framework: str | None, default: float) -> float:
        """The most specific fitted value along ``chain`` (chip model, family, vendor): (group, precision,
        framework), then (group, precision), for each group in turn; else the pooled value."""
        for g in chain:
            if (g, precision, framework) in self.fw_eff:
                return self.fw_eff[(g, precision, framework)]
            if (g, precision) in self.eff:
                return self.eff[(g, precision)]
        return self.pooled.get(precision, default)

    def apply(self, c: Calib, chain: tuple[str, ...], framework: str | None) -> Calib:
        """``c`` with each precision's constant set to its most specific fitted value."""
        return c.with_(**{f: self.value(chain, pr, framework, getattr(c, f)) for pr, f in self.params.items()})


@dataclass
class Fit:
    """The fitted GEMM efficiencies (one :class:`Level`), the MoE layer's host synchronisation time and the
    block-scaled FP8 GEMM ratio."""

    dense: Level
    host_s: float = 0.0
    loss: float = 0.0
    block_ratio: float = 1.0
    call_s: float = 0.0

    def calib(self, chain: tuple[str, ...], base: Calib | None = None, framework: str | None = None) -> Calib:
        """The calibration of a chip (model, family) and framework: the fitted efficiencies, MoE host times and
        block-scaled ratio on ``base``."""
        base = (base or Calib.defaults()).with_(moe_layer_host_s=self.host_s, gemm_eff_fp8_block_ratio=self.block_ratio,
                                                moe_expert_call_host_s=self.call_s)
        return self.dense.apply(base, chain, framework)


def _fit_params(runs: list[CalRun], param: str, bounds: tuple[float, float], base_of, tol: float = 0.004) -> float:
    """Golden-section minimum of the L1 log loss over ``runs`` of one constant; ``base_of(run)`` is the run's
    constants before this one is set."""
    bases = [base_of(r) for r in runs]

    def loss(x):
        return sum(abs(math.log(r.predict(b.with_(**{param: x})) / r.reported)) for r, b in zip(runs, bases))
    return _golden(loss, *bounds, tol=tol)


def _base(r: CalRun) -> Calib:
    c = calib_for(r.family)
    return c if r.bf16_eff is None else c.with_(gemm_eff=r.bf16_eff)


def _fit_level(runs: list[CalRun], params: dict[str, str], bounds, base_of) -> Level:
    lvl = Level(params)
    groups: dict[tuple, list[CalRun]] = {}
    for r in runs:
        groups.setdefault((r.precision, "*", None), []).append(r)
        for g in r.chain:
            groups.setdefault((r.precision, g, None), []).append(r)
            if g != r.vendor:   # vendor pools are not split by software stack
                groups.setdefault((r.precision, g, r.framework), []).append(r)
    # BF16 groups first: an FP8 run's output head takes the BF16 efficiency just fitted (CalRun.bf16_eff)
    order = sorted(groups, key=lambda k: k[0] != "bf16")
    # a group holding the same runs as one already fitted (a vendor with one family, a family with one chip
    # model) has the same minimum: fitted once
    done: dict[tuple, float] = {}
    for i, (pr, fam, fw) in enumerate(order):
        if pr != "bf16" and (i == 0 or order[i - 1][0] == "bf16"):
            _set_bf16_eff(runs, lvl)
        grp = groups[(pr, fam, fw)]
        same = (pr, tuple(sorted(id(r) for r in grp)))
        if fam != "*" and len(grp) < MIN_RUNS:
            continue
        if same not in done:
            done[same] = _fit_params(grp, params[pr], bounds, base_of)
        x = done[same]
        if fam == "*":
            lvl.pooled[pr] = x
        elif fw is None:
            lvl.eff[(fam, pr)] = x
        else:
            lvl.fw_eff[(fam, pr, fw)] = x
    return lvl


def _set_bf16_eff(runs: list[CalRun], lvl: Level) -> None:
    """Give each FP8 run of ``runs`` the BF16 efficiency ``lvl`` holds for its chip and stack (its output head
    runs in BF16); a level without BF16 values (an FP8-only refit) leaves the runs' values as they are."""
    if "bf16" not in lvl.pooled:
        return
    for r in runs:
        if r.precision == "fp8":
            r.bf16_eff = lvl.value(r.chain, "bf16", r.framework, lvl.pooled["bf16"])


def fit(runs: list[CalRun], base: Calib | None = None) -> Fit:
    """``gemm_eff`` (BF16 runs) and ``gemm_eff_fp8`` (FP8 runs), each by golden section on the L1 log loss (a
    median fit): pooled per precision, per chip family, per chip family and software stack wherever a group has
    MIN_RUNS runs or more. Each run depends only on its own group's constant. Non-fitted constants
    (perf/data/constants.yaml) stay as they are.

    Then ``moe_layer_host_s`` (perf/step.py :func:`~trainsim.perf.step.moe_host_sync_time`), one pooled value over
    the MoE runs with the efficiencies fixed, then ``moe_expert_call_host_s`` (perf/step.py
    :func:`~trainsim.perf.step.moe_launch_floor`, the host floor of an eager MoE layer; pooled over the MoE runs,
    only host-bound runs depend on it), then ``gemm_eff_fp8_block_ratio`` (:func:`_fit_block_ratio`, a
    profile fit over the FP8 runs), and the efficiencies once more with all three fixed (one round of coordinate
    descent; a second round moves the loss by under 0.1%).

    Tried and not kept (Dec 2026, fp8r): block-scaled FP8 runs as a precision of their own (gemm_eff_fp8_block
    per chip family, chip model and stack, like gemm_eff_fp8): the chip groups split in two, the GB300 per-tensor
    runs fell back to the Blackwell family value (-15% to -20% held out) and the leave-one-out median rose from
    5.9% to 6.3% (50 -> 45 runs within 5%). One pooled ratio keeps each chip's share of the FP8 peak fitted on
    all its FP8 runs. With the pooled ratio, the FP8 casts counted as before (every matrix's K, three passes:
    1.68x the casts Transformer Engine makes for Llama 3 8B) gave a lower median (5.6%, 53 within 5%, L1 loss
    8.63) than the per-Linear count of perf/compute.py fp8_cast_elems_per_token (5.8%, 54 within 5%, 8.96);
    the count follows the source, not the fit.

    Tried and not kept (Nov 2026): a second level fitting a grouped-expert-GEMM fraction on the MoE runs alone left
    the MoE leave-one-out median at 36% (35.6% without it) and drove the Hopper FP8 value to 0.24, near its bound:
    the MoE errors are not a kernel-efficiency offset. An additive host time per MoE layer and micro-batch is: the
    Megatron-Bridge MoE runs without whole-iteration CUDA graphs miss 3-8 ms per layer and micro-batch, those with
    them about 0.

    Tried and not kept (Dec 2026, moe7): the host time as launch work hidden behind the layer's device work,
    exposed = max(0, moe_layer_host_s - device time of the layer and micro-batch) (Megatron-Core MoE README, "CPU
    Overhead Bottleneck": "increase micro-batch size"). Fitted 10.9 ms; MoE leave-one-out median 9.0% -> 14.9%,
    max 113% -> 186%: the runs with long layers (DeepSeek-V3, 13-25 ms of device time per layer and micro-batch)
    still miss 2-5 ms per layer and micro-batch, as the 2-5 ms layers of Qwen3-30B-A3B do. What each dropless run
    without whole-iteration graphs implies (additive, at the full fit's efficiencies) does not fall with the
    layer's device time: Megatron-Bridge hybridep / deepep runs -2.0 to 4.8 ms (median 3.7), alltoall runs 5.7-6.3 ms
    (Qwen3-30B-A3B, 8 B200, mbs 1: the NeMo 25.11 run and the 26.02 archive row, see the run's notes) and
    11.3 ms (DeepSeek-V3, 256 B200, NeMo 25.11); the dispatchers differ
    in their pre-sync work (alltoall: an all-gather of the token counts over the EP group before the
    device-to-host copy, token_dispatcher.py preprocess at cba6b0ed), but the alltoall runs are also the
    25.11 / 26.02 containers, so the split is not made (and 16 H100 with alltoall at EP 16, Megatron-Bridge
    docs/training/cuda-graphs.md at 067f987d: 41.4 s per 1,024 x 4K BF16 step eager, is predicted at 49.6 s
    already). Hiding the host time under moe_a2a_overlap as under DualPipe (merged forward-backward of two
    micro-batches, "Matches DualPipe design", docs/training/moe-optimization.md) was tried too: MoE median
    10.4% either way, dense 5.5% -> 6.0% (the Hopper FP8 fit moves), the NeMo 25.11 Qwen3-30B-A3B 16 H100 row
    +113% -> +149%.

    Tried and not kept (Dec 2026, moe8): a host term per expert GEMM launch, 6 x local experts x 20.3 us per MoE
    layer and micro-batch (Transformer Engine's grouped GEMM issues one cuBLAS call per expert,
    multi_stream_cublas_gemm in TE v2.8 cublaslt_gemm.cu; 20.3 us the mean nvte_cublas_gemm host range in the
    nsys profile of yanring/Megatron-MoE-ModelZoo issue #7, Qwen3-30B-A3B on 8 B200): moe_layer_host_s refits to
    1.46 ms, MoE leave-one-out median 8.7% -> 10.9%, max 114% -> 129%. The only dropless all-to-all runs without
    whole-iteration graphs are the three NeMo 25.11 Megatron-Bridge rows and MindSpeed's Mixtral, so a separate
    alltoall host constant would be fitted on the rows it is meant to explain, from one container; scaling the
    alltoall host time by 1.5 / 2 (not fitted, a sensitivity only) gives MoE median 7.7% / 8.7%, max 98%.

    Tried and not kept (Dec 2026, b200moe): the forward of a dropless MoE layer held against its own launch work segment
    by segment. The dispatcher's device-to-host sync (alltoall ``before_ep_alltoall``; HybridEP's, inside
    hybrid_ep_dispatch while num_permuted_tokens is None, token_dispatcher.py at Megatron-LM d7288711) empties the
    queue, after which the host issues the dispatch, the sort and the experts' per-expert calls, so where no schedule
    queues another micro-batch behind the sync the forward takes max(0, local experts x forward calls x
    moe_expert_call_host_s - (experts' forward GEMMs + the sort + half the forward all-to-all)) more per MoE layer, and
    the backward alone is held against its floor (rather than forward + backward against the sum). Refit:
    moe_expert_call_host_s 44.4 -> 33.2 us, megatron-bridge-2026 B200 FP8 0.360 -> 0.427, H100 0.560 -> 0.659; full-fit
    L1 6.961 (6.729 at main's refit, 11828cc); leave-one-out median 4.60% -> 4.60%, 70 -> 71 runs within 5%, 8 -> 9 over
    20%, L1 8.99 -> 9.05. Right way: NeMo 25.11 DeepSeek-V3 256 B200 +31.4 -> +22.9%, the 26.04 PP 16 B200 / B300 rows
    +9.4 / +9.9 -> -0.2 / -2.1%, Qwen3-30B-A3B 8 B200 mbs 1 -11.5 -> -0.5%, and Megatron-Bridge PR #1869's same-recipe
    pairs (tests/test_dsv3_b200_ab.py, at the refit's constants): MXFP8 / BF16 1.125 -> 1.052 (measured 1.047), EP 16
    DeepEP / EP 8 0.90 -> 0.97 (measured 1.14). Wrong way: Qwen3-30B-A3B 16 H100 HybridEP EP 16 (26.02 -2.5 -> -13.2%,
    26.06 +1.3 -> -11.0%), 8 B200 mbs 4 (26.04.01) -5.6 -> -11.2%, and through the lower call time the 25.11 16 H100
    a2a-overlap row +16.1 -> +26.2%; the two rows of tests/test_moe_launch_floor.py then want 44.8 and 33.2 us per call
    (ratio 1.35, the test asks < 1.25).

    Measured, no mechanism found (Dec 2026, bwclk): the spread of the fitted Blackwell ``gemm_eff_fp8`` (GB300
    0.66, B300 0.53, GB200 0.47, B200 0.46 at equal catalog FP8 peaks per form factor) against the same recipe on
    sibling chips (trainsim/validate/siblings.py, scripts/sibling_ratios.py; Megatron-Bridge
    docs/performance-summary-archive.md at 067f987d). The GEMM share of a step (59% for Llama 3 8B, 75-83% for
    70B / 405B) turns a 1.2x step ratio into a 1.4x efficiency ratio. Published, one recipe: GB200 / B200 0.96-1.03
    (Llama 3 8B 25.11; Qwen3-30B-A3B, Nemotron 3 Nano 26.04.01) where NVIDIA's peaks (5.0 / 4.5 PF) predict
    1.09; B300 / B200 1.09-1.13 (DeepSeek-V3 26.04, GPT-OSS 120B BF16, Nemotron 3 Nano, Qwen3-30B-A3B 26.04.01)
    and GB300 / GB200 1.05-1.24 at equal stated peaks; GB300 / B300 1.03-1.06 (1.11 predicted). Not the
    Blackwell Ultra's doubled softmax exponential rate (SFU EX2 10.7 against 5 TeraExponentials/s; NVIDIA
    "Making Softmax More Efficient with NVIDIA Blackwell Ultra"): it bounds only the attention forward (the
    backward is shared-memory bound; FlashAttention-4, Zadouri et al. 2026, and its 71% of the B200 BF16 peak
    with the exponentials unbound against cuDNN 9.13's ~55% bound a forward gain at 1.3x), about 1.5% of a
    Llama 3 8B step; Nemotron 3 Nano (few attention layers) and GPT-OSS 120B (sliding window) gain as much as
    Llama, and even with the whole attention core twice as fast on Ultra the Llama 3 70B / 405B GB300 / GB200
    excess stays 1.16-1.19. Partly software per chip: the same Llama 3 70B FP8-CS FSDP recipe
    measured GB300 / GB200 1.048 in NeMo 25.11 (4,520 / 4,312) and 1.242 in 26.04.01 (5,248 / 4,224). No source
    gives sustained clocks under GEMM load per SKU, so nothing is added to the catalog or the engine. Dropping
    the chip-model level for Blackwell (one family value, 0.467; 0.457 / 0.516 by stack) costs leave-one-out
    median 4.84% -> 5.66% (62 -> 57 runs within 5%), Blackwell 5.32% -> 6.83%, GB300 rows -15% to -20%."""
    moe = [r for r in runs if r.moe]
    dense = _fit_level(runs, PARAM, EFF_BOUNDS, _with_host(0.0))
    h = _fit_host(moe, dense) if moe else 0.0
    call = _fit_call(moe, dense, h) if moe else 0.0
    ratio = _fit_block_ratio(runs, h, call)
    f = Fit(_fit_level(runs, PARAM, EFF_BOUNDS, _with_host(h, ratio, call)), h, block_ratio=ratio, call_s=call)
    f.loss = sum(abs(math.log(r.predict(f.calib(r.chain, _base(r), r.framework)) / r.reported)) for r in runs)
    return f


HOST_BOUNDS = (0.0, 0.02)


def _with_host(h: float, ratio: float = 1.0, call: float = 0.0):
    def base_of(r: CalRun) -> Calib:
        return _base(r).with_(moe_layer_host_s=h, gemm_eff_fp8_block_ratio=ratio, moe_expert_call_host_s=call)
    return base_of


def _fit_block_ratio(runs: list[CalRun], h: float, call: float = 0.0) -> float:
    """``gemm_eff_fp8_block_ratio``: block-scaled over per-tensor FP8 GEMM efficiency, one pooled value, the
    golden-section minimum of the FP8 runs' L1 log loss with every FP8 efficiency refitted at each trial ratio
    (a profile fit). Refitting matters: in a group of block-scaled runs alone the group's ``gemm_eff_fp8``
    absorbs any ratio, so the ratio is set by the groups that hold both kinds (Megatron-Bridge publishes the same
    configurations under current scaling and MXFP8). 1 (no difference) with fewer than MIN_RUNS block-scaled
    runs."""
    fp8 = [r for r in runs if r.precision == "fp8"]
    if sum(r.block_scaled for r in fp8) < MIN_RUNS:
        return 1.0

    def loss(x):
        lvl = _fit_level(fp8, PARAM, EFF_BOUNDS, _with_host(h, x, call))
        return sum(abs(math.log(r.predict(lvl.apply(_with_host(h, x, call)(r), r.chain, r.framework)) / r.reported))
                   for r in fp8)
    return _golden(loss, *RATIO_BOUNDS, tol=0.01)


def _held_out_ratio(held: CalRun, runs: list[CalRun], full: "Fit") -> float:
    """The block ratio without ``held`` (a block-scaled run), the full fit's efficiencies and host time fixed
    (as the held-out MoE host time is refitted): golden section over the other block-scaled runs."""
    rest = [r for r in runs if r.block_scaled and r is not held]
    if len(rest) < MIN_RUNS:
        return 1.0
    return _fit_params(rest, "gemm_eff_fp8_block_ratio", RATIO_BOUNDS,
                       lambda r: full.dense.apply(_with_host(full.host_s, call=full.call_s)(r), r.chain, r.framework))


def _fit_host(moe_runs: list[CalRun], dense: Level, ratio: float = 1.0, call: float = 0.0) -> float:
    """The pooled MoE host time per layer and micro-batch, the efficiencies of ``dense`` (and the block-scaled
    ratio and the per-expert call time) fixed."""
    return _fit_params(moe_runs, "moe_layer_host_s", HOST_BOUNDS,
                       lambda r: dense.apply(_base(r).with_(gemm_eff_fp8_block_ratio=ratio,
                                                            moe_expert_call_host_s=call), r.chain, r.framework))


#: bounds (s) and resolution of ``moe_expert_call_host_s``: 0 to 200 us, to 0.5 us
CALL_BOUNDS = (0.0, 2.0e-4)
CALL_TOL = 5.0e-7


def _fit_call(moe_runs: list[CalRun], dense: Level, h: float, ratio: float = 1.0) -> float:
    """The pooled host time per per-expert call of the experts' grouped GEMM (perf/step.py
    :func:`~trainsim.perf.step.moe_launch_floor`), the efficiencies of ``dense``, the MoE layer host time ``h``
    and the block-scaled ratio fixed. Only runs whose layers become host-bound somewhere within the bounds depend
    on it; the others add a constant to the loss and are left out of the search (the same minimum, fewer
    evaluations)."""
    def base_of(r: CalRun) -> Calib:
        return dense.apply(_base(r).with_(gemm_eff_fp8_block_ratio=ratio, moe_layer_host_s=h), r.chain, r.framework)
    dep = [r for r in moe_runs if r.predict(base_of(r).with_(moe_expert_call_host_s=CALL_BOUNDS[0]))
           != r.predict(base_of(r).with_(moe_expert_call_host_s=CALL_BOUNDS[1]))]
    if not dep:
        return CALL_BOUNDS[0]
    return _fit_params(dep, "moe_expert_call_host_s", CALL_BOUNDS, base_of, tol=CALL_TOL)


@dataclass
class LooRow:
    """One run's leave-one-out prediction against its reported tokens/s per chip."""

    name: str
    family: str
    reported: float
    predicted: float
    note: str = ""
    framework: str = ""
    moe: bool = False

    @property
    def error(self) -> float:
        """Relative error: predicted / reported - 1."""
        return self.predicted / self.reported - 1.0


@dataclass
class LooResult:
    """The leave-one-out rows of a calibration."""

    rows: list[LooRow] = field(default_factory=list)

    def summary(self, family: str | None = None, *, framework: str | None = None, moe: bool | None = None) -> dict:
        """Runs, median and max |error| and median signed error (bias) of the rows matching the filters
        (empty dict when none)."""
        sel = [r for r in self.rows if (family is None or r.family == family)
               and (framework is None or r.framework == framework) and (moe is None or r.moe == moe)]
        errs = np.array([abs(r.error) for r in sel])
        sgn = np.array([r.error for r in sel])
        if not len(errs):
            return {}
        return {"runs": int(len(errs)), "median_abs_error": float(np.median(errs)),
                "max_abs_error": float(errs.max()), "bias": float(np.median(sgn))}


def _held_out_value(held: CalRun, rest: list[CalRun], param: str, bounds, base_of) -> tuple[float, str]:
    """Refit one constant without ``held`` from the most specific group that still has MIN_RUNS runs: its chip
    model, its family (each with its software stack first), its vendor pool, the global pool."""
    same_pr = [r for r in rest if r.precision == held.precision]
    for i, (g, what) in enumerate(((held.chip, "chip model"), (held.family, "family"))):
        grp = [r for r in same_pr if g in r.chain]
        fw = [r for r in grp if r.framework == held.framework]
        if len(fw) >= MIN_RUNS:
            return _fit_params(fw, param, bounds, base_of), \
                "" if i == 0 else f"family {param} of {held.framework} (fewer than {MIN_RUNS} other {held.chip} runs)"
        if len(grp) >= MIN_RUNS:
            return _fit_params(grp, param, bounds, base_of), \
                f"{what} {param} (fewer than {MIN_RUNS} other {held.framework} runs)"
    vend = [r for r in same_pr if held.vendor is not None and r.vendor == held.vendor]
    if len(vend) >= MIN_RUNS:
        return _fit_params(vend, param, bounds, base_of), \
            f"fewer than {MIN_RUNS} such {held.precision} runs of its chip family: {held.vendor} pool {param}"
    if same_pr:
        return _fit_params(same_pr, param, bounds, base_of), \
            f"fewer than {MIN_RUNS} such {held.precision} runs of its chip family: pooled {param} of the others"
    return getattr(base_of(held), param), f"no other {held.precision} run: default {param}"


def leave_one_out(runs: list[CalRun], base: Calib | None = None, full: Fit | None = None) -> LooResult:
    """Refit without each run and predict it from the most specific group that still has MIN_RUNS runs:
    (chip family, precision, framework), then (chip family, precision), then the vendor's pool of the precision,
    then the pooled precision. Only that
    group depends on the held-out run, so only it is refitted; for a MoE run the pooled MoE host time is refitted
    without it first (on the full fit's efficiencies)."""
    full = full or fit(runs)
    moe = [r for r in runs if r.moe]
    out = LooResult()
    for held in runs:
        rest = [r for r in runs if r is not held]
        others = [r for r in moe if r is not held]
        h = _fit_host(others, full.dense, full.block_ratio, full.call_s) if held.moe else full.host_s
        call = _fit_call(others, full.dense, h, full.block_ratio) if held.moe else full.call_s
        ratio = _held_out_ratio(held, runs, full) if held.block_scaled else full.block_ratio
        x, note = _held_out_value(held, rest, PARAM[held.precision], EFF_BOUNDS, _with_host(h, ratio, call))
        cal = _with_host(h, ratio, call)(held).with_(**{PARAM[held.precision]: x})
        out.rows.append(LooRow(held.name, held.family, held.reported, held.predict(cal), note,
                               held.framework, held.moe))
    return out


def calibration_yaml(full: Fit, loo: LooResult, runs: list[CalRun]) -> str:
    """The one calibration data file, with provenance and the held-out accuracy."""
    import yaml

    fams = sorted({r.family for r in runs})
    n_dense = sum(1 for r in runs if not r.moe)
    default = {full.dense.params[pr]: round(v, 4) for pr, v in full.dense.pooled.items()}
    default["moe_layer_host_s"] = round(full.host_s, 5)
    default["moe_expert_call_host_s"] = round(full.call_s, 8)
    default["gemm_eff_fp8_block_ratio"] = round(full.block_ratio, 4)
    default.update(fitted_on=len(runs),
                   source=f"fitted by scripts/calibrate.py on validation/runs ({n_dense} dense and "
                          f"{len(runs) - n_dense} MoE runs): gemm_eff pooled over the BF16 runs, gemm_eff_fp8 "
                          f"over the FP8 runs, gemm_eff_fp8_block_ratio over the FP8 runs (profile fit), "
                          f"moe_layer_host_s and moe_expert_call_host_s over the MoE runs",
                   note="chip families and software stacks with fewer than 3 runs of a kind use their vendor's pool "
                        "(vendors), or these where the vendor has fewer than 3 too; other constants: "
                        "perf/data/constants.yaml, each with its source")
    vendors: dict = {}
    families: dict = {}
    chips: dict = {}
    fws: dict = {}
    family_of = {r.chip: r.family for r in runs}
    vendor_keys = {r.vendor for r in runs}
    for lvl in (full.dense,):
        for (g, pr), v in sorted(lvl.eff.items()):
            n = sum(1 for r in runs if g in r.chain and r.precision == pr)
            e = (chips if g in family_of else vendors if g in vendor_keys else families).setdefault(g, {})
            e[lvl.params[pr]] = round(v, 4)
            e[f"fitted_on_{lvl.params[pr]}"] = n
        for (g, pr, fw), v in sorted(lvl.fw_eff.items()):
            n = sum(1 for r in runs if g in r.chain and r.precision == pr and r.framework == fw)
            e = fws.setdefault(fw, {}).setdefault(g, {})
            e[lvl.params[pr]] = round(v, 4)
            e[f"fitted_on_{lvl.params[pr]}"] = n
    for v, e in vendors.items():
        e["source"] = (f"fitted by scripts/calibrate.py on the runs of every {v}-* chip family of validation/runs "
                       f"(counts in fitted_on_*): the pool a {v} family without a fit of its own takes")
    for fam, e in families.items():
        e["source"] = f"fitted by scripts/calibrate.py on the {fam} runs of validation/runs (counts in fitted_on_*)"
    for chip, e in chips.items():
        e["family"] = family_of[chip]
        others = [c for c in same_silicon(chip) if c != chip]
        e["source"] = (f"fitted by scripts/calibrate.py on the {chip} runs of validation/runs"
                       + (f" with those of the chips of its silicon ({', '.join(others)}: hardware.yaml "
                          f"same_silicon_as)" if others else "")
                       + " (counts in fitted_on_*): the chip model's own sustained share of its peak within its family")
    for fw, by_fam in fws.items():
        for fam, e in by_fam.items():
            e["source"] = f"fitted by scripts/calibrate.py on the {fam} runs of framework {fw} (counts in fitted_on_*)"
    fwk = sorted({r.framework for r in runs})
    doc = {
        "default": default,
        "vendors": vendors,
        "families": families,
        "chips": chips,
        "frameworks": fws,
        "accuracy": {"overall": loo.summary(),
                     "by_family": {fam: loo.summary(fam) for fam in fams},
                     "by_framework": {fw: loo.summary(framework=fw) for fw in fwk},
                     "dense": loo.summary(moe=False), "moe": loo.summary(moe=True),
                     "note": "leave-one-out |predicted/reported - 1| of tokens/s per chip (scripts/calibrate.py)"},
    }
    return ("# trainsim calibration constants: WRITTEN BY scripts/calibrate.py from validation/runs; do not edit.\n"
            + yaml.safe_dump(doc, sort_keys=False))


def write(path: Path, text: str) -> None:
    """Write ``text`` to ``path``."""
    path.write_text(text)


def _summary_rows(label: str, s: dict) -> str:
    return (f"| {label} | {s['runs']} | {s['median_abs_error']:.1%} | {s['max_abs_error']:.1%} | "
            f"{s['bias']:+.1%} |")


def loo_markdown(loo: LooResult, full: Fit) -> str:
    """The README's accuracy table: every calibration run with its held-out error, then the summaries per chip
    family, per software stack (framework profile) and dense vs MoE."""
    lines = ["| run | chip family | framework | kind | reported tok/s/chip | predicted (held out) | error | note |",
             "|---|---|---|---|---:|---:|---:|---|"]
    for r in sorted(loo.rows, key=lambda r: r.name):
        lines.append(f"| {r.name} | {r.family} | {r.framework} | {'MoE' if r.moe else 'dense'} | {r.reported:,.1f} "
                     f"| {r.predicted:,.1f} | {r.error:+.1%} | {r.note} |")
    head = ["| {0} | runs | median \\|error\\| | max \\|error\\| | bias (median signed) |", "|---|---:|---:|---:|---:|"]
    lines += ["", head[0].format("chip family"), head[1]]
    for fam in sorted({r.family for r in loo.rows}):
        lines.append(_summary_rows(fam, loo.summary(fam)))
    lines.append(_summary_rows("**all**", loo.summary()))
    lines += ["", head[0].format("software stack"), head[1]]
    for fw in sorted({r.framework for r in loo.rows}):
        lines.append(_summary_rows(fw, loo.summary(framework=fw)))
    lines += ["", head[0].format("model kind"), head[1]]
    for label, moe in (("dense", False), ("MoE", True)):
        s = loo.summary(moe=moe)
        if s:
            lines.append(_summary_rows(label, s))

    def consts(lvl: Level) -> str:
        parts = [f"pooled {lvl.params[pr]} = {v:.3f}" for pr, v in lvl.pooled.items()]
        parts += [f"{g} {'pool ' if vendor_key(g) == g else ''}{lvl.params[pr]} = {v:.3f}"
                  for (g, pr), v in sorted(lvl.eff.items())]
        parts += [f"{fw} on {fam} {lvl.params[pr]} = {v:.3f}" for (fam, pr, fw), v in sorted(lvl.fw_eff.items())]
        return ", ".join(parts)
    lines += ["", "Fitted constants: " + consts(full.dense) + f"; moe_layer_host_s = {full.host_s * 1e3:.2f} ms per "
              "MoE layer and micro-batch outside whole-iteration CUDA graphs (pooled over the MoE runs); "
              f"moe_expert_call_host_s = {full.call_s * 1e6:.1f} us per per-expert call of the experts' grouped GEMM "
              "(the host floor of an eager MoE layer, pooled over the MoE runs); "
              f"gemm_eff_fp8_block_ratio = {full.block_ratio:.3f} (block-scaled FP8 GEMMs, MXFP8 / blockwise, over "
              "per-tensor FP8 GEMMs on the same chip; pooled over the FP8 runs)."]
    return "\n".join(lines)


def replace_section(text: str, body: str, tag: str = "accuracy", opening: str = "begin") -> str:
    """Replace the text between <!-- tag:begin --> (``opening``: begin or start) and <!-- tag:end --> markers; the
    one README splice of the scripts and benchmarks that write generated tables."""
    begin, end = f"<!-- {tag}:{opening} -->", f"<!-- {tag}:end -->"
    if begin not in text or end not in text:
        raise TrainsimError(f"README has no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + body + "\n" + end + tail
