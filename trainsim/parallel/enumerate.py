"""Every valid plan for (model, chips, batch), built as arrays by expanding one dimension at a time.

Expansion order: (tp, cp, pp) x the chip counts they divide (all chips, or whole domains with some idle) ->
micro-batch -> (schedule, vpp) -> (ep, etp, node_limit) -> zero -> recompute. After each expansion the rows that
break a rule of :mod:`trainsim.parallel.validity` are dropped (counted by reason), so the space never holds the
full cartesian product. Zero and recompute stay grid axes of every base row (:class:`Space`); a stack's rule on
zero (``zero3_fsdp2``) is a mask of that grid. Fields fixed by a partial plan enter as single candidates.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import TrainsimError
from ..model.arch import Arch
from ..yamlload import safe_load, sourced_values
from .batch import chip_counts, lower_counts, plan_batch
from .plan import INT_FIELDS, RECOMPUTE, Plans
from .schedules import SCHEDULES, code, default_name, virtual_stages
from .validity import check, sharding_zeros, zero3_fsdp2_ok
from .divisors import divisors

Cols = dict[str, np.ndarray]   # plan columns while the space is expanded
POW2 = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

#: the rules of :func:`trainsim.parallel.validity.check` that read each expanded field (micro-batch: the batch
#: unit, interleaved and DualPipe micro-batch counts; schedule and vpp: layers per stage, vpp/schedule pairing,
#: interleaved batch, pipeline schedules, DualPipe; experts: ep, ep x etp, etp, node_limit)
RULES_OF = {"mb": {8, 10, 11}, "schedule_vpp": {3, 9, 10, 14, 11, 15, 17, 18, 21, 24},
            "ep_etp_nl": {4, 5, 6, 12, 17}}


def _divisors(n: int) -> list[int]:
    return divisors(n)


def _expand(cols: Cols, name: str, values: ArrayLike) -> Cols:
    """Cartesian product of the current rows with candidate ``values`` for column ``name``."""
    values = np.asarray(values, dtype=np.int64)
    n = len(next(iter(cols.values())))
    out = {k: np.repeat(v, len(values)) for k, v in cols.items()}
    out[name] = np.tile(values, n)
    return out


def _expand_pairs(cols: Cols, names: tuple[str, ...], rows: ArrayLike) -> Cols:
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, len(names))
    n = len(next(iter(cols.values())))
    out = {k: np.repeat(v, len(rows)) for k, v in cols.items()}
    for j, nm in enumerate(names):
        out[nm] = np.tile(rows[:, j], n)
    return out


def _filter(cols: Cols, keep: np.ndarray) -> Cols:
    return {k: v[keep] for k, v in cols.items()}


@lru_cache(maxsize=1)
def search_space() -> dict[str, Any]:
    """The search's candidate limits (``parallel/search_space.yaml``: each value with its source)."""
    doc = safe_load(resources.files("trainsim.parallel").joinpath("search_space.yaml").read_text())
    return sourced_values(doc, "search limit", "search_space.yaml")


def ep_domains(ep: int, etp: int, domain: int) -> int:
    """Scale-up domains (nodes) an expert-parallel group of ``ep`` ranks, ``etp`` apart, spans on ``domain``-chip
    domains: ceil(ep / w), w = min(ep, max(1, domain // etp)) members per domain (the engine's placement,
    :func:`trainsim.parallel.placement.members_within`)."""
    w = min(ep, max(1, domain // max(etp, 1)))
    return -(-ep // w)


def node_limit_ok(ep: int, etp: int, node_limit: int, domain: int) -> bool:
    """Whether a plan may route with ``node_limit`` (0: no limit): a limit needs ep > 1 and at most the domains the
    EP group spans (:func:`ep_domains`). Megatron-Core's node-limited routing sets ``--moe-router-num-groups`` to
    'the number of nodes in EP group' and picks ``--moe-router-group-topk`` of them per token with
    ``torch.topk(group_scores, k=group_topk)`` (megatron/core/transformer/moe/moe_utils.py ``group_limited_topk``,
    transformer_config.py ``moe_router_num_groups``), which fails for more groups than there are; DeepSeek-V3
    limits each token to M = 4 of the 8 nodes its EP 64 spans (arXiv 2412.19437 sec. 2.1.2, 3.2)."""
    return node_limit == 0 or (ep >= 2 and node_limit <= ep_domains(ep, etp, domain))


def candidate_values(arch: Arch, chips: int, seq_len: int, batch_seqs: int, fixed: Any,
                     even_vpp: bool = False, pps: list[int] | None = None, domain: int = 1,
                     counts: list[int] | None = None) -> dict[str, Any]:
    """Candidate values per field (powers of two where frameworks use them; divisors for pp), within the limits of
    :func:`search_space`. ``even_vpp`` (a stack that splits layers evenly, :func:`~trainsim.parallel.validity.
    even_vpp_ok`): vpp also takes every divisor of the layers per stage of every pp candidate, the values
    ``--num-layers-per-virtual-pipeline-stage`` N = 1, 2, ... gives (vpp = layers per stage / N). ``pps``: the pp
    candidates, when the caller has them (the divisors of the chip counts a plan may use). ``domain``: chips per
    scale-up domain; a stated node_limit keeps only the (ep, etp) whose group spans at least that many domains
    (:func:`node_limit_ok`), and none left is an input error (one line). ``counts``: the chip counts a plan may
    use (default: ``chips``); tp takes the powers of two that divide one of them (100 H100: tp 8 on 96 of them)."""
    L = arch.n_layers
    lim = search_space()
    moe = [lk.moe for lk in arch.layers if lk.moe is not None]

    def f(name: str) -> Any:  # allowed values of a field named by the partial plan, else None
        return fixed.values(name) if fixed is not None else None

    cand = {
        "tp": f("tp") or [v for v in POW2 if v <= lim["tp_max"] and any(n % v == 0 for n in counts or [chips])],
        "cp": f("cp") or [v for v in POW2 if v <= lim["cp_max"] and seq_len % (2 * v) == 0 or v == 1],
        "pp": f("pp") or pps or [d for d in _divisors(chips) if d <= L and d <= lim["pp_max"]],
        "mb": f("micro_batch") or [v for v in POW2 if v <= lim["micro_batch_max"]],
        "zero": f("zero") if f("zero") is not None else [0, 1, 2, 3],
        "recompute": [RECOMPUTE.index(r) for r in f("recompute")] if f("recompute") else [0, 1, 2],
    }
    vpps = f("vpp") or list(lim["vpp"])
    if even_vpp and not f("vpp"):
        vpps = sorted(set(vpps) | {d for pp in cand["pp"] if L % pp == 0 for d in _divisors(L // pp) if d > 1})
    scheds = [code(x) for x in f("schedule")] if f("schedule") else list(range(len(SCHEDULES)))
    sv = [(s, v) for s in scheds for v in vpps if bool(virtual_stages(s)) == (v > 1)]
    cand["sched_vpp"] = sv or [(scheds[0], vpps[0])]
    if moe:
        e = min(m.experts for m in moe)
        eps = f("ep") or [v for v in POW2 if e % v == 0 and v <= chips]
        etps = f("etp") or [v for v in lim["etp"] if all(m.expert_ffn % v == 0 for m in moe)]
        nls = f("node_limit") if f("node_limit") is not None else [0]
        cand["ep_etp_nl"] = [(a, b, c) for a in eps for b in etps for c in nls if node_limit_ok(a, b, c, domain)]
        if not cand["ep_etp_nl"]:
            spans = sorted({ep_domains(a, b, domain) if a >= 2 else 0 for a in eps for b in etps})
            raise TrainsimError(
                f"node_limit {', '.join(map(str, nls))} routes each token to at most that many scale-up domains, "
                f"but with ep {', '.join(map(str, eps))} the expert-parallel group spans "
                f"{', '.join(map(str, spans))} domain(s) of {domain} chips (0: ep 1, no expert parallelism); expected "
                f"0 (no limit), or ep > 1 and a limit of at most the domains spanned (Megatron-Core's "
                f"--moe-router-group-topk picks among the EP group's nodes)", field="plan.node_limit")
    else:
        cand["ep_etp_nl"] = [(1, 1, 0)]
    return cand


def _neutral(cols: Cols) -> Plans:
    """Partial rows as plans: fields not expanded yet take their most permissive values (see ``check``)."""
    n = len(next(iter(cols.values())))
    base = dict(vpp=1, ep=1, etp=1, zero=0, recompute=0, mb=1, schedule=code(default_name(1)), node_limit=0, zgroup=0,
                swap=0)
    return Plans(**{k: cols[k] if k in cols else np.full(n, base[k], dtype=np.int64) for k in INT_FIELDS})


def enumerate_space(arch: Arch, chips: int, seq_len: int, batch_seqs: float, fixed: Any = None, *,
                    batch_tol: float = 0.0, domain: int = 1, use_all: bool = True,
                    even_vpp: bool = False, dualpipev_fb_overlap: bool = False,
                    zero3_fsdp2: bool = False, microbatch_groups: bool = False,
                    vpp_min_pp3: bool = False, first_stage_layers: int | None = None,
                    last_stage_layers: int | None = None, shard_zero: tuple[int, ...] = (),
                    shard_levels: int = 0, unit: int | None = None,
                    unfused_attention: bool = False, even_pp: bool = False,
                    zero_shard_group: int = 0, swap_zero: tuple[int, ...] = (),
                    split_units: tuple[int, int] = (0, 0),
                    stage_flags: str = "layout") -> tuple["Space", Counter[int]]:
    """All valid plans (a :class:`Space`: base rows x (zero, recompute) pairs, with the global batch each base
    row uses) and the rejected candidates by reason code.

    Chip counts: all ``chips``, and unless ``use_all`` the whole-domain counts of
    :func:`trainsim.parallel.batch.chip_counts` (dp = count / (tp pp cp)). The rules of ``check`` run after each
    expansion on the fields known so far, so a row is dropped as soon as it can no longer become valid; a
    rejected row counts once per plan it would have expanded into. The last expansion, (ep, etp, node_limit), is
    :meth:`Parents.expand` of :func:`enumerate_parents`, which the plan search may apply to some parents only.
    ``even_vpp``, ``dualpipev_fb_overlap``, ``zero3_fsdp2``, ``vpp_min_pp3``: the stack's own rules (those of ``check``;
    :func:`trainsim.frameworks.plan_rules` gives a stack's). ``first_stage_layers`` / ``last_stage_layers``: the
    run's uneven pipeline stages, the plan options the engine sizes its ranks with (``StepContext``), which rule
    out the pp values that cannot hold them (``check`` rule 19). ``shard_zero``, ``shard_levels``: the searched
    ZeRO sharding groups, ``swap_zero`` the stages with a swapped-optimizer variant (:func:`enumerate_parents`).
    ``unfused_attention``: the run's attention kernel is the
    unfused core, which runs only at cp 1 (``check`` rule 20; :func:`trainsim.frameworks.run_plan_rules`).
    ``even_pp``: the stack has no uneven stages, so pp x vpp divides the layers (``check`` rule 21).
    ``zero_shard_group``: the run's stated ZeRO sharding group, which dp x cp must hold whole (``check`` rule 22).
    ``split_units``: the embedding / loss units of the balanced split, so that every model chunk holds at least one
    unit (``check`` rule 3). ``stage_flags``: how the stack writes uneven stages (``check`` rules 23 and 24)."""
    par = enumerate_parents(arch, chips, seq_len, batch_seqs, fixed, batch_tol=batch_tol, domain=domain,
                            use_all=use_all, even_vpp=even_vpp, dualpipev_fb_overlap=dualpipev_fb_overlap,
                            zero3_fsdp2=zero3_fsdp2, microbatch_groups=microbatch_groups, vpp_min_pp3=vpp_min_pp3,
                            first_stage_layers=first_stage_layers, last_stage_layers=last_stage_layers,
                            shard_zero=shard_zero, shard_levels=shard_levels, unit=unit,
                            unfused_attention=unfused_attention, even_pp=even_pp, split_units=split_units,
                            zero_shard_group=zero_shard_group, swap_zero=swap_zero, stage_flags=stage_flags)
    space, rej = par.expand()
    rejected = par.rejected.copy()
    for c, k in rej.items():
        rejected[c] += k
    return space, rejected


def enumerate_parents(arch: Arch, chips: int, seq_len: int, batch_seqs: float, fixed: Any = None, *,
                      batch_tol: float = 0.0, domain: int = 1, use_all: bool = True,
                      even_vpp: bool = False, dualpipev_fb_overlap: bool = False,
                      zero3_fsdp2: bool = False, microbatch_groups: bool = False,
                      vpp_min_pp3: bool = False, first_stage_layers: int | None = None,
                      last_stage_layers: int | None = None, shard_zero: tuple[int, ...] = (),
                      shard_levels: int = 0, unit: int | None = None,
                      unfused_attention: bool = False, even_pp: bool = False,
                      zero_shard_group: int = 0, swap_zero: tuple[int, ...] = (),
                      split_units: tuple[int, int] = (0, 0), stage_flags: str = "layout",
                      lower: int = 0) -> "Parents":
    """The valid rows of every field but (ep, etp, node_limit) (expansion order of the module docstring), with the
    candidates of the last expansion and the rejections so far: :func:`enumerate_space` without its last step.

    ``shard_zero``, ``shard_levels``: the ZeRO stages for which the stack offers a sharding group smaller than
    dp x cp (HSDP / MiCS: the profile's ``zero_shard_groups``) and the network levels below the outermost: each
    such zero candidate comes once more per level l = 1 .. shard_levels with ``zgroup`` l, the states sharded
    inside one level-(l-1) domain (Plans, perf/context.py ``shard_ranks``), the zero axis carrying (zero, zgroup)
    pairs. A partial plan that fixes the zero stage keeps its groups searched. ``unit``: the product of the degrees
    the plan states (:func:`stated_unit`), whose whole-domain multiples are tried as chip counts too
    (:func:`trainsim.parallel.batch.chip_counts`; the search asks for them only when the usual counts leave the
    stated plan no valid completion). ``zero_shard_group``: the run's stated ZeRO sharding group, which dp x cp
    must hold whole (``check`` rule 22) and which only a zero stage >= 1 shards over: zero 0 is not a candidate
    beside it (:func:`trainsim.parallel.validity.sharding_zeros`, the rule ``estimate`` of a stated plan applies).
    ``swap_zero``: the ZeRO stages at which the stack can keep the optimizer states in host memory between steps
    (MindSpeed ``--swap-optimizer``: the profile's ``swap_optimizer``, :func:`trainsim.frameworks.swap_search`):
    each such zero candidate comes once more with ``swap`` 1, the zero axis carrying (zero, zgroup, swap); a
    partial plan's ``swap_optimizer`` (true or false) keeps only the candidates that match it. ``lower`` (> 0):
    the chip counts are instead the whole-domain counts from ``lower`` up to below ``chips`` that the usual ones
    lack (:func:`trainsim.parallel.batch.lower_counts`: the search's best-plan pass over fewer chips)."""
    counts = chip_counts(chips, domain, use_all, unit, batch_seqs, batch_tol)
    if lower:
        counts = lower_counts(chips, domain, counts, lower)
    pps = None
    if fixed is None or fixed.values("pp") is None:
        # the pp values <= min(layers, 128) that divide some count (the lower counts can be thousands)
        d = np.arange(1, min(arch.n_layers, 128) + 1, dtype=np.int64)
        nc = np.asarray(counts, dtype=np.int64)
        pps = [int(v) for v in d[(nc[None, :] % d[:, None] == 0).any(axis=1)]]
    cand = candidate_values(arch, chips, seq_len, int(round(batch_seqs)), fixed, even_vpp, pps, domain, counts)
    zeros = list(cand["zero"])
    if zero_shard_group:
        # a stated sharding group shards the ZeRO states, and zero 0 shards nothing: the search offers only the
        # stages that shard (zero >= 1), the rule estimate of a stated plan applies (validity.sharding_zeros); a
        # caller that skipped spec.check_shard_group (a sweep's framework axis) gets its one-line refusal here
        zeros = sharding_zeros(zero_shard_group, zeros,
                               how=f"the search may use zero {', '.join(map(str, zeros))} only")
    zgroups = [0] * len(zeros) + [lv for z in zeros if z in shard_zero for lv in range(1, shard_levels + 1)]
    cand["zero"] = zeros + [z for z in zeros if z in shard_zero for _ in range(shard_levels)]
    stated_swap = fixed.values("swap_optimizer") if fixed is not None and hasattr(fixed, "swap_optimizer") else None
    swap_on = [z for z in zeros if z in swap_zero] if stated_swap is None or True in stated_swap else []
    keep_off = stated_swap is None or False in stated_swap
    swaps = ([0] * len(cand["zero"]) if keep_off else []) + [1] * len(swap_on)
    zgroups = (zgroups if keep_off else []) + [0] * len(swap_on)
    cand["zero"] = (cand["zero"] if keep_off else []) + swap_on
    rejected: Counter[int] = Counter()
    later = len(cand["mb"]) * len(cand["sched_vpp"]) * len(cand["ep_etp_nl"]) * len(cand["zero"]) * \
        len(cand["recompute"])
    args = (arch, chips, seq_len, batch_seqs, batch_tol, use_all)

    def drop(cols: Cols, code: np.ndarray, mult: int) -> Cols:
        return _drop(cols, code, mult, rejected)

    def rules(cols: Cols, only: Collection[int] | None = None) -> np.ndarray:
        return check(_neutral(cols), *args, only, even_vpp=even_vpp, dualpipev_fb_overlap=dualpipev_fb_overlap,
                     microbatch_groups=microbatch_groups, vpp_min_pp3=vpp_min_pp3,
                     # the run's uneven stages (plan options, not searched) rule out the pp that cannot hold them
                     first_stage_layers=first_stage_layers, last_stage_layers=last_stage_layers,
                     unfused_attention=unfused_attention, even_pp=even_pp, split_units=split_units,
                     zero_shard_group=zero_shard_group, stage_flags=stage_flags)

    cols = {"tp": np.asarray(cand["tp"], dtype=np.int64)}
    cols = _expand(cols, "cp", cand["cp"])
    cols = _expand(cols, "pp", cand["pp"])
    g = cols["tp"] * cols["cp"] * cols["pp"]
    nc = np.asarray(counts, dtype=np.int64)
    divides = (nc[None, :] % g[:, None]) == 0
    none = ~divides.any(axis=1)
    rejected[1] += int(none.sum()) * later
    cols = _expand(cols, "dp", nc)
    cols["dp"] = cols["dp"] // (cols["tp"] * cols["cp"] * cols["pp"])
    cols = _filter(cols, divides.reshape(-1))
    if fixed is not None and fixed.dp is not None:
        keep = cols["dp"] == fixed.dp
        rejected[1] += int((~keep).sum()) * later
        cols = _filter(cols, keep)
    cols = drop(cols, rules(cols), later)
    later //= len(cand["mb"])
    # after each expansion only the rules that read the new fields can fail (the rest passed on these rows with
    # the same values), and the first broken rule is the first of those: check just them
    cols = _expand(cols, "mb", cand["mb"])
    cols = drop(cols, rules(cols, RULES_OF["mb"]), later)
    later //= len(cand["sched_vpp"])
    cols = _expand_pairs(cols, ("schedule", "vpp"), cand["sched_vpp"])
    cols = drop(cols, rules(cols, RULES_OF["schedule_vpp"]), later)
    later //= len(cand["ep_etp_nl"])
    return Parents(cols, np.asarray(cand["ep_etp_nl"], dtype=np.int64).reshape(-1, 3),
                   np.asarray(cand["zero"], dtype=np.int64), np.asarray(cand["recompute"], dtype=np.int64),
                   rejected, later, args, dualpipev_fb_overlap, zero3_fsdp2, microbatch_groups,
                   np.asarray(zgroups, dtype=np.int64), np.asarray(swaps, dtype=np.int64))


def unit_rows(arch: Arch, chips: int, seq_len: int, batch_seqs: float, fixed: Any = None, *, domain: int = 1,
              even_vpp: bool = False, **_: Any) -> tuple[Plans, np.ndarray]:
    """Every (tp, cp, micro-batch, schedule) a plan of the search may take on any chip count below ``chips`` (tp:
    every power of two up to the limit), as plan rows at pp = dp = vpp = 1, and the candidate (ep, etp,
    node_limit) rows: what :func:`trainsim.perf.bound.chip_seconds_per_seq_floor` bounds. Takes
    :func:`enumerate_parents`'s keywords (the rest unused)."""
    cand = candidate_values(arch, chips, seq_len, int(round(batch_seqs)), fixed, even_vpp, [1], domain,
                            [POW2[-1]])
    grid = np.array(np.meshgrid(cand["tp"], cand["cp"], cand["mb"], sorted({s for s, _ in cand["sched_vpp"]}),
                                indexing="ij")).reshape(4, -1)
    rows = Plans.from_columns(tp=grid[0], cp=grid[1], mb=grid[2], schedule=grid[3], pp=1, vpp=1, dp=1, ep=1,
                              etp=1, node_limit=0, zero=0, recompute=0)
    return rows, np.asarray(cand["ep_etp_nl"], dtype=np.int64).reshape(-1, 3)


def stated_unit(fixed: Any) -> int | None:
    """The product of the degrees (tp, pp, cp, dp) that ``fixed`` pins to one value, None when it pins none: the
    chips those degrees need a multiple of (:func:`trainsim.parallel.batch.chip_counts`)."""
    if fixed is None:
        return None
    vals = [fixed.scalar(k) for k in ("tp", "pp", "cp", "dp")]
    if all(v is None for v in vals):
        return None
    return int(np.prod([int(v) for v in vals if v is not None]))


def _drop(cols: Cols, code: np.ndarray, mult: int, rejected: Counter[int]) -> Cols:
    """``cols`` without the rows whose reason ``code`` is not 0, each counted in ``rejected`` ``mult`` times."""
    _count_rejected(code, mult, rejected)
    return _filter(cols, code == 0)


def _count_rejected(code: np.ndarray, mult: int, rejected: Counter[int]) -> None:
    """Count the rows whose reason ``code`` is not 0 in ``rejected``, ``mult`` times each, in code order (codes are
    small non-negative integers: counted by ``bincount``, no sort)."""
    counts = np.bincount(code) if len(code) else np.zeros(0, np.int64)
    for c in np.flatnonzero(counts[1:]) + 1:
        rejected[int(c)] += int(counts[c]) * mult


#: parent rows per block of :meth:`Parents.valid_cells` (the expanded columns of one block are held at a time)
CELL_BLOCK = 4096


@dataclass
class Parents:
    """The rows of :func:`enumerate_parents` (plan columns but ep, etp, node_limit), the candidate (ep, etp,
    node_limit) rows ``experts`` of the last expansion, zero and recompute, the rejections so far, the plans one
    rejected row of the last expansion stands for (``later``) and the arguments of the validity check."""

    cols: Cols
    experts: np.ndarray
    zero: np.ndarray
    recompute: np.ndarray
    rejected: Counter[int]
    later: int
    args: tuple[Any, ...]
    #: the stack's DualPipe needs etp 1 and cp 1 (parallel/validity.py dualpipev_fb_overlap_ok)
    dualpipev_fb_overlap: bool = False
    #: the stack runs ZeRO-3 only at pp 1 and etp 1 (parallel/validity.py zero3_fsdp2_ok): a mask of the zero axis
    zero3_fsdp2: bool = False
    #: the stack runs the interleaved schedule in micro-batch groups (parallel/schedules.py microbatch_group)
    microbatch_groups: bool = False
    #: the sharding group of each zero candidate (Plans.zgroup; left out: 0 for all, __post_init__)
    zgroup: np.ndarray = None  # type: ignore[assignment]
    #: the swapped optimizer of each zero candidate (Plans.swap; left out: 0 for all, __post_init__)
    swap: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        for f in ("zgroup", "swap"):
            if getattr(self, f) is None:
                setattr(self, f, np.zeros_like(self.zero))

    def __len__(self) -> int:
        return len(self.cols["tp"])

    def plans(self) -> Plans:
        """The parent rows as plans (ep = etp = 1, node_limit 0, zero and recompute 0)."""
        return _neutral(self.cols)

    def zero_ok(self, zero: np.ndarray, pp: np.ndarray, etp: np.ndarray) -> np.ndarray | None:
        """Which cells of a grid of ``zero`` candidates x plans (``pp``, ``etp``; broadcast together) the stack's rule
        on zero allows (rule 16 of :func:`trainsim.parallel.validity.check`, :func:`~trainsim.parallel.validity.
        zero3_fsdp2_ok`); None when the stack has no such rule (every cell is a plan). The one place the search's
        passes (:class:`Space`, ``search.MemoryPass``) take the mask from."""
        return zero3_fsdp2_ok(zero, pp, etp) if self.zero3_fsdp2 else None

    def batch(self) -> np.ndarray:
        """The global batch (sequences) each parent row's plans use (it does not depend on the experts)."""
        c = self.cols
        return plan_batch(self.args[3], c["dp"], c["mb"], c["pp"], c["schedule"], self.microbatch_groups)

    def _cells(self, idx: ArrayLike | None) -> tuple[Cols, np.ndarray]:
        """The rows of parent rows ``idx`` (all when None) x ``experts``, each with its ``_rank`` (position in the
        whole space's order: parent, then candidate), and each row's reason code under the experts' rules (0:
        valid)."""
        cols = self.cols if idx is None else _filter(self.cols, np.asarray(idx, dtype=np.int64))
        e = len(self.experts)
        parent = np.arange(len(self)) if idx is None else np.asarray(idx, dtype=np.int64)
        cols = dict(cols, _rank=parent)
        cols = _expand_pairs(cols, ("ep", "etp", "node_limit"), self.experts)
        cols["_rank"] = cols["_rank"] * e + np.tile(np.arange(e, dtype=np.int64), len(parent))
        arch, chips, seq_len, batch_seqs, batch_tol, use_all = self.args
        code = check(_neutral(cols), arch, chips, seq_len, batch_seqs, batch_tol, use_all, RULES_OF["ep_etp_nl"],
                     dualpipev_fb_overlap=self.dualpipev_fb_overlap, microbatch_groups=self.microbatch_groups)
        return cols, code

    def _zero_refused(self, pp: np.ndarray, etp: np.ndarray, rejected: Counter[int]) -> np.ndarray | None:
        """The zero rule's mask (rows, Z) of base rows with ``pp`` and ``etp`` (:meth:`zero_ok`), its refused
        cells counted in ``rejected`` (each stands for its recompute choices)."""
        zok = self.zero_ok(self.zero[None, :], pp[:, None], etp[:, None])
        if zok is not None:
            # the last rule, on the zero axis: each refused (row, zero) cell stands for its recompute choices
            refused = int(np.count_nonzero(~zok))
            if refused:
                rejected[16] += refused * len(self.recompute)
        return zok

    def expand(self, idx: ArrayLike | None = None) -> tuple["Space", Counter[int]]:
        """The valid plans of the parent rows ``idx`` (all when None, in order) x ``experts`` as a :class:`Space`
        whose ``rank`` is each base row's position in the order of the whole space (parent, then candidate), and
        this expansion's rejections by reason code."""
        rejected: Counter[int] = Counter()
        cols, code = self._cells(idx)
        cols = _drop(cols, code, self.later, rejected)
        n = len(cols["tp"])
        base = Plans(**{k: cols[k] if k in cols else np.zeros(n, np.int64) for k in INT_FIELDS})
        batch = plan_batch(self.args[3], base.dp, base.mb, base.pp, base.schedule, self.microbatch_groups)
        zok = self._zero_refused(base.pp, base.etp, rejected)
        return Space(base, self.zero, self.recompute, batch, cols["_rank"] if idx is not None else None,
                     zok, self.zgroup, self.swap), rejected

    def valid_cells(self) -> tuple[np.ndarray, Counter[int], int]:
        """What :meth:`expand` of every parent row tells, without its rows: which (parent row, expert choice) cells
        are its base rows ((P, E) mask, in the order of the whole space), its rejections by reason code and its
        plans. The rules run a block of :data:`CELL_BLOCK` parent rows at a time (each row's code is its own), so
        the whole expansion's columns are never held at once: :meth:`take_cells` expands the rows a caller
        needs."""
        P, e = len(self), len(self.experts)
        codes = [self._cells(np.arange(s, min(P, s + CELL_BLOCK)))[1] for s in range(0, P, CELL_BLOCK)]
        code = np.concatenate(codes) if codes else np.zeros(0, np.int64)
        rejected: Counter[int] = Counter()
        _count_rejected(code, self.later, rejected)
        valid = (code == 0).reshape(P, e)
        zok = self._zero_refused(np.broadcast_to(self.cols["pp"][:, None], (P, e))[valid],
                                 np.broadcast_to(self.experts[:, 1][None, :], (P, e))[valid], rejected)
        rows = int(np.count_nonzero(valid))
        plans = rows * len(self.zero) * len(self.recompute) if zok is None else \
            int(np.count_nonzero(zok)) * len(self.recompute)
        return valid, rejected, plans

    def take_cells(self, rank: np.ndarray) -> "Space":
        """The base rows of the whole expansion whose ``rank`` (position in the whole space; valid cells,
        ascending) is given, as :meth:`expand` of every parent row then ``take`` gives them: the parents they come
        from expanded, in order."""
        rank = np.asarray(rank, dtype=np.int64)
        parents = rank // len(self.experts)      # ascending: each once (not np.unique, which loads numpy.ma)
        sp, _ = self.expand(parents[np.r_[True, parents[1:] != parents[:-1]]] if len(parents) else parents)
        assert sp.rank is not None    # a part of the space: each row knows its rank
        return sp.take(np.searchsorted(sp.rank, rank))


@dataclass
class Space:
    """The valid plans as a grid of base rows (every field but zero and recompute) x zero x recompute: cell i is
    base row i // K with zero (i % K) // R and recompute i % R (K = Z R). ``batch``: the global batch (sequences)
    each base row uses. ``zero_ok`` (rows, Z): which zero candidates each base row's stack allows
    (:meth:`Parents.zero_ok`); None: all, every cell is a valid plan. A refused cell is not a plan: it is not
    counted (``len``), listed (:meth:`plans`) nor marked by :meth:`ok`, though the grid's costs are computed for
    it (they broadcast over the zero axis) and then left unread."""

    base: Plans
    zero: np.ndarray
    recompute: np.ndarray
    batch: np.ndarray
    #: each base row's position in the order of the whole space of the search (None: these rows are that space)
    rank: np.ndarray | None = None
    zero_ok: np.ndarray | None = None
    #: the sharding group of each zero candidate (Plans.zgroup, along the zero axis; left out: 0 for all)
    zgroup: np.ndarray = None  # type: ignore[assignment]
    #: the swapped optimizer of each zero candidate (Plans.swap, along the zero axis; left out: 0 for all)
    swap: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        for f in ("zgroup", "swap"):
            if getattr(self, f) is None:
                setattr(self, f, np.zeros_like(self.zero))

    def __len__(self) -> int:
        """The valid plans (the grid's cells less those ``zero_ok`` refuses)."""
        if self.zero_ok is None:
            return self.cells
        return int(np.count_nonzero(self.zero_ok)) * len(self.recompute)

    @property
    def cells(self) -> int:
        """The grid's cells: base rows x K (the range of the flat plan index)."""
        return len(self.base) * self.k

    def ok(self, sl: slice = slice(None)) -> np.ndarray | None:
        """Which cells of base rows ``sl`` are valid plans, flat in the plan index's order (base row, zero,
        recompute); None when all are."""
        if self.zero_ok is None:
            return None
        z = self.zero_ok[sl]
        return np.repeat(z, len(self.recompute), axis=1).reshape(-1)

    def take(self, rows: ArrayLike) -> "Space":
        """The space of base rows ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        return Space(self.base.take(rows), self.zero, self.recompute, self.batch[rows],
                     None if self.rank is None else self.rank[rows],
                     None if self.zero_ok is None else self.zero_ok[rows], self.zgroup, self.swap)

    @staticmethod
    def concat(spaces: list["Space"]) -> "Space":
        """The base rows of ``spaces`` (same zero and recompute candidates, each with ``rank``) one after another."""
        s0 = spaces[0]
        masks = [s.zero_ok if s.zero_ok is not None else np.ones((len(s.base), len(s.zero)), bool) for s in spaces]
        return Space(Plans.concat([s.base for s in spaces]), s0.zero, s0.recompute,
                     np.concatenate([s.batch for s in spaces]), np.concatenate([s.rank for s in spaces]),
                     None if all(s.zero_ok is None for s in spaces) else np.concatenate(masks), s0.zgroup,
                     s0.swap)

    @property
    def k(self) -> int:
        """K = Z x R: the plans per base row (zero options x recompute options)."""
        return len(self.zero) * len(self.recompute)

    def grid(self, sl: slice) -> Plans:
        """Base rows ``sl`` as (rows, 1, 1), zero as (1, Z, 1), recompute as (1, 1, R): costs broadcast, so a
        cost that does not depend on zero or recompute is computed once per base row."""
        b = self.base
        z = {"zero": self.zero[None, :, None], "zgroup": self.zgroup[None, :, None], "swap": self.swap[None, :, None]}
        return Plans(**{f: (z[f] if f in z else self.recompute[None, None, :]
                            if f == "recompute" else getattr(b, f)[sl, None, None]) for f in INT_FIELDS})

    def grid_last(self, sl: slice) -> Plans:
        """As :meth:`grid` with the axes reversed: zero (Z, 1, 1), recompute (1, R, 1), base rows ``sl`` (1, 1, rows).
        The same values; numpy's loops then run along the long axis of base rows, not the short recompute axis
        (``np.moveaxis(x, 2, 0)`` gives the (rows, Z, R) order of the flat plan index)."""
        b = self.base
        z = {"zero": self.zero[:, None, None], "zgroup": self.zgroup[:, None, None], "swap": self.swap[:, None, None]}
        return Plans(**{f: (z[f] if f in z else self.recompute[None, :, None]
                            if f == "recompute" else getattr(b, f)[None, None, sl]) for f in INT_FIELDS})

    def plans(self, idx: ArrayLike | None = None) -> Plans:
        """Plans ``idx`` (flat indices; every valid plan when None) as ordinary 1-D columns."""
        if idx is None:
            ok = self.ok()
            idx = np.arange(self.cells) if ok is None else np.nonzero(ok)[0]
        idx = np.asarray(idx, dtype=np.int64)
        r, j = idx // self.k, idx % self.k
        p = self.base.take(r)
        p.zero, p.recompute = self.zero[j // len(self.recompute)], self.recompute[j % len(self.recompute)]
        p.zgroup, p.swap = self.zgroup[j // len(self.recompute)], self.swap[j // len(self.recompute)]
        return p

    def batch_of(self, idx: ArrayLike) -> np.ndarray:
        """The global batch (sequences) of the plans at flat indices ``idx``."""
        return self.batch[np.asarray(idx, dtype=np.int64) // self.k]


def enumerate_plans(arch: Arch, chips: int, seq_len: int, batch_seqs: int,
                    fixed: Any = None, **rules: Any) -> tuple[Plans, Counter[int]]:
    """All valid plans that use every chip and exactly the batch (Megatron's rules and the stack's ``rules``, the
    keywords of :func:`trainsim.frameworks.plan_rules`), with rejections by reason."""
    space, rejected = enumerate_space(arch, chips, seq_len, batch_seqs, fixed, **rules)
    return space.plans(), rejected
