"""No dead ends: when a plan search finds nothing, the nearest changes to the run that do have a plan.

When plans exist but none fits in memory, the smallest changes first: the single changes to the plan that needs
the least memory that make it fit (:func:`trainsim.fit_advice.fit_advice`: more recomputed modules, a higher ZeRO
stage, offloaded optimizer states, a smaller micro-batch, more pipeline stages), costed by the same engine. Then
three kinds of change, each with a full plan search of the changed run, and each reported with what its best plan
gives (step time, MFU, days, memory), so every alternative is valid when tried:

* a fixed plan field freed (``plan.tp: 8`` -> the value the search picks), one field at a time;
* the batch: the nearest batch some plan can split (searched with a wider tolerance, then stated exactly);
* the chip count: the nearest counts of whole scale-up domains below and above (multiples of domain x 2^j and
  powers of two), nearest first, until one below and one above have a plan; when none of those has a plan, the
  counts a factor 2^k away (chips / 2^k and chips x 2^k in whole domains, up to the largest count allowed), so a
  count far off also gets one: a batch of one sequence on 16,384 GPUs (no plan uses more than dp 1 x tp x pp x
  cp chips) gets the largest count below that has a plan, a chip with too little memory the smallest above;
* when none of these has a plan and the run states plan fields: the whole plan searched (at the run's chips, else
  with the batch and chip changes above), so a stated plan that is several changes from fitting still gets an
  answer.
"""
from __future__ import annotations

from dataclasses import replace

from .errors import NoPlanError
from .fit_advice import fit_advice
from .numfmt import gib, plan as plan_text
from .spec import PlanSpec, Run
from .search import search
from .types_checked import MAX_CHIPS

MAX_CHIP_PROBES = 8          # chip counts tried (each a plan search)
MAX_FAR_PROBES = 24          # counts a factor 2^k away tried when no near count has a plan (each a plan search)
WIDE_BATCH_TOLERANCE = 0.25  # how far the batch alternative may move the batch


def _summary(res) -> dict:
    e = res.best
    out = {"plan": {k: v for k, v in e.plan.items() if k != "placement"}, "step_time_s": e.step_time_s,
           "tokens_per_s_per_chip": e.tokens_per_s_per_chip, "mfu": e.mfu, "chips_used": e.used,
           "global_batch_seqs": e.run.training.batch_seqs, "memory_per_chip_bytes": e.memory_per_chip_bytes}
    if e.days is not None:
        out["days"] = e.days
    return out


def nearby_chip_counts(chips: int, domain: int) -> list[int]:
    """Chip counts near ``chips``, nearest first: multiples of domain x 2^j just below and above, and the powers
    of two either side."""
    domain = max(1, int(domain))
    cands = set()
    for j in range(0, 12):
        m = domain << j
        lo = (chips // m) * m
        cands.update(c for c in (lo, lo + m) if c > 0)
    p2 = 1 << max(0, chips.bit_length() - 1)
    cands.update((p2, 2 * p2))
    cands.discard(chips)
    return sorted(cands, key=lambda c: (abs(c - chips), c))


def far_chip_counts(chips: int, domain: int) -> list[int]:
    """Chip counts a factor 2^k from ``chips``, alternately below and above (k = 1, 2, ...): chips / 2^k rounded
    down to whole scale-up domains (a power of two under one domain), down to one chip, and chips x 2^k rounded up
    to whole domains, up to :data:`~trainsim.types_checked.MAX_CHIPS`."""
    domain = max(1, int(domain))
    below, above = [], []
    for k in range(1, MAX_CHIPS.bit_length() + 1):
        lo = chips >> k
        if lo >= domain:
            below.append(lo // domain * domain)
        elif lo >= 1:
            below.append(1 << (lo.bit_length() - 1))
        hi = -(-(chips << k) // domain) * domain
        if hi <= MAX_CHIPS:
            above.append(hi)
    out: list[int] = []
    for i in range(max(len(below), len(above))):
        out += [c for c in (below[i:i + 1] + above[i:i + 1]) if c != chips and c not in out]
    return out


def memory_fixes(run: Run, least) -> list[dict]:
    """The single changes that make ``least`` (the estimate of the plan needing the least memory) fit, as
    alternatives, fastest first (:func:`trainsim.fit_advice.fit_advice`)."""
    where = plan_text(least.plan)
    return [{"change": "plan (least memory)", "from": where, "to": f["change"],
             "text": f"{f['change']} ({gib(f['memory_per_chip_bytes'])})",
             **{k: v for k, v in f.items() if k != "change"}} for f in fit_advice(run, least.plan)]


def _same_answer(a: dict) -> tuple:
    """What an alternative leads to: its plan, batch, chips, step time and memory (a memory fix and a freed plan
    field that reach the same plan on the same run give the same numbers)."""
    return (tuple(sorted((a.get("plan") or {}).items())), a.get("global_batch_seqs"), a.get("chips_used"),
            round(float(a.get("step_time_s") or 0.0), 9), round(float(a.get("memory_per_chip_bytes") or 0.0)))


def dedupe(alts: list[dict]) -> list[dict]:
    """``alts`` with every alternative that leads to the same answer as an earlier one left out (the earlier, a
    smaller change, is kept): e.g. the least-memory plan's "full recompute" fix and "plan.recompute: full instead
    of selective" when the search picks that same plan."""
    seen: set = set()
    out = []
    for a in alts:
        k = _same_answer(a)
        if k not in seen:
            seen.add(k)
            out.append(a)
    return out


def no_plan(res, run: Run, fixed: PlanSpec | None = None, field: str = "plan") -> NoPlanError:
    """The "no answer" (exit 1) of a search ``res`` of ``run`` that found no plan: its nearest alternatives
    (:func:`alternatives`, from its least-memory plan) put in ``res.alternatives`` and in the one-line message, as
    ``trainsim estimate`` and ``plan`` print them; for every command that reaches a run without a plan (compare,
    report, sensitivity, a post-training job's trainer), which said only 'no plan fits' (or, sensitivity, exit 2
    'nothing to vary'). ``field``: what the message names (a post-training spec's ``student.train_plan``)."""
    res.alternatives = alternatives(run, fixed if fixed is not None else run.plan, least=res.least_memory)
    return NoPlanError(res.no_plan_message(), res, field=field)


def alternatives(run: Run, fixed: PlanSpec | None = None, *, calib=None, least=None,
                 keep: frozenset[str] = frozenset()) -> list[dict]:
    """Changes to ``run`` (and its fixed plan fields) under which the plan search finds a plan that fits; with
    ``least`` (the search's least-memory plan when none fits), the changes that make that plan fit come first.
    ``keep``: plan fields a software stack fixes (``--framework``: :func:`trainsim.frameworks.restrict_plan`, e.g.
    ep = 1 for a stack without expert parallelism), never freed: a plan that stack cannot run is no alternative."""
    fixed = fixed if fixed is not None else run.plan
    out: list[dict] = memory_fixes(run, least) if least is not None else []

    def attempt(r: Run, f: PlanSpec):
        return search(r, f, calib=calib, top=1, with_pareto=False)

    # 1. a fixed field freed
    for name, val in fixed.model_dump(exclude_none=True).items():
        if name in keep:
            continue
        res = attempt(run, fixed.model_copy(update={name: None}))
        if res.best is not None:
            got = res.best.plan.get(name)
            out.append({"change": f"plan.{name}", "from": val, "to": got,
                        "text": f"plan.{name}: {got} instead of {val}", **_summary(res)})
    # 2. the batch: the nearest one a plan splits
    tr = run.training
    if tr.batch_tol < WIDE_BATCH_TOLERANCE:
        wide = replace(run, training=tr.model_copy(update={"batch_tolerance": WIDE_BATCH_TOLERANCE}))
        res = attempt(wide, fixed)
        if res.best is not None:
            b = res.best.run.training.batch_seqs
            if b != tr.batch_seqs:
                exact = replace(run, training=tr.model_copy(update={"global_batch_seqs": b, "global_batch_tokens": None,
                                                                    "batch_tolerance": 0.0}))
                res = attempt(exact, fixed)
                if res.best is not None:
                    out.append({"change": "training.global_batch_seqs", "from": tr.batch_seqs, "to": b,
                                "text": f"training.global_batch_seqs: {b:,} ({b / tr.batch_seqs - 1:+.1%})",
                                **_summary(res)})
    # 3. the chip count: nearest valid below and above
    below = above = None
    near = nearby_chip_counts(run.chips, run.system.scale_up_size)[:MAX_CHIP_PROBES]
    far = far_chip_counts(run.chips, run.system.scale_up_size)[:MAX_FAR_PROBES]
    for i, c in enumerate(near + [c for c in far if c not in near]):
        if (c < run.chips and below is not None) or (c > run.chips and above is not None):
            continue
        if i >= len(near) and (below is not None or above is not None):
            break                     # a near count has a plan: the far ones are for a dead end only
        res = attempt(replace(run, chips=c), fixed)
        if res.best is None:
            continue
        dom = run.system.scale_up_size
        unit = f" ({c // dom:,} x {dom})" if dom > 1 and c % dom == 0 else ""
        alt = {"change": "chips", "from": run.chips, "to": c, "text": f"chips: {c:,}{unit}", **_summary(res)}
        if c < run.chips:
            below = alt
        else:
            above = alt
        if below is not None and above is not None:
            break
    out += [a for a in (below, above) if a is not None]
    # 4. nothing one change away from a stated plan: the whole plan searched (then the batch and chips with it)
    stated = fixed.model_dump(exclude_none=True)
    freed = [k for k in stated if k not in keep]
    if not out and freed:
        free = PlanSpec(**{k: v for k, v in stated.items() if k in keep})
        res = attempt(run, free)
        if res.best is not None:
            out.append({"change": "plan", "from": stated, "to": None,
                        "text": f"plan searched ({', '.join(freed)} not fixed)", **_summary(res)})
        else:
            out += [{**a, "text": f"{a['text']}, plan searched"}
                    for a in alternatives(run, free, calib=calib, keep=keep)]
    return dedupe(out)
