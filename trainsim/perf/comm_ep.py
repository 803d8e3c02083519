"""Expert-parallel all-to-all: token dispatch and combine around every MoE layer.

Per MoE layer and micro-batch each chip sends its ``tokens / tp`` sequence-sharded tokens to the experts they
are routed to: ``top_k`` copies of ``hidden`` elements (dispatch at
:attr:`~trainsim.perf.context.StepContext.dispatch_bytes` per element: FP8 only where the stack quantises before
the dispatch, as DeepSeek-V3's does, sec. 3.3.2, BF16 in Megatron-Core; BF16 combine). Forward: dispatch +
combine; backward: the same two in reverse.
The copies spread evenly over the ep group, so the share crossing each network level follows the group's
placement (:func:`trainsim.perf.collectives.all_to_all_time`).

Deduplicated dispatch: node-limited routing (DeepSeek-V3 sec. 2.1.2: each token goes to at most M nodes, sent once
per node over the scale-out network and fanned out inside the node) and the node-aware dispatchers that do the same
without a routing limit (DeepEP's internode kernels, NVIDIA HybridEP; Megatron-Core's flex dispatcher,
``training.moe_dispatcher: deepep | hybridep``): with G = ep groups of w ranks in a scale-up domain, a token
reaches E[distinct domains] = G (1 - C(E - E/G, k) / C(E, k)) domains (k distinct experts of E, G blocks of
E / G: :func:`trainsim.perf.routing.expected_distinct_blocks`), at most M (the plan's node_limit, or
the router's topk_group under a stack that routes node-limited, :func:`node_cap`); the scale-out bytes are one
copy per remote domain hit, the scale-up bytes the copies delivered inside domains: k with Megatron's all-to-all
permutation (one copy per routed expert), but one per destination rank with DeepEP / HybridEP, whose dispatch
layout sends a token once to each rank holding any of its experts and whose combine returns one weighted sum per
rank (deepseek-ai/DeepEP ``get_dispatch_layout``: ``num_tokens_per_rank``, ``is_token_in_rank``): E[distinct ranks]
= ep (1 - C(E - E/ep, k) / C(E, k)) copies. HybridEP sends each copy with the token's routing-probability row
over the domain's experts (:func:`dispatch_prob_bytes`).

Group-limited routing (DeepSeek-V2 sec. 2.1.2, DeepSeek-V3 sec. 2.1.2; the model's ``n_group`` / ``topk_group``):
the experts form n_group groups of consecutive experts, each token is routed inside its topk_group best groups.
With experts laid out consecutively over the ep ranks a group spans ep / n_group ranks, i.e.
max(1, ceil(ep / (n_group w))) domains, so a token reaches at most topk_group x that many domains
(:func:`group_domain_limit`); DeepSeek-V3 at ep 64 on 8-GPU nodes: 8 groups of one node each, at most 4 nodes.
The same limit caps the ranks a deduplicating dispatcher delivers a token to (:func:`group_limited_ranks`:
DeepSeek-V2 at ep 8, one group per rank, 2.77 ranks instead of 4.46). Where each domain holds whole groups the
expected count of domains is below the balls-in-bins one (:func:`group_limited_domains`): DeepSeek-V3 at ep 32 on
4 nodes of 2 groups each reaches 3.14 nodes, not 3.60.

NeMo AutoModel's benchmark router (``training.moe_fake_balanced_gate``; Primus's ``moe_router_force_load_balancing``
routes the same way): each token takes k consecutive experts, so
the domains and ranks it reaches are :func:`trainsim.perf.routing.fake_balanced_blocks` of the experts per domain
and per rank instead of the uniform top-k expectations (DeepSeek-V3 at ep 64 on 8-GPU nodes: 1 node and 2 ranks
per token instead of min(5.29, 4) nodes and 7.68 ranks).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..model.arch import LayerKind
from ..parallel.placement import members_within
from .collectives import all_gather_time, all_to_all_time, exposed, level_bytes_time, reduce_scatter_time
from .context import BF16_BYTES, StepContext
from .routing import expected_distinct_blocks, fake_balanced_blocks
from .topology import a2a_factor
from .arrays import Num
from ..parallel.plan import Plans


def group_domain_limit(lk: LayerKind, ep: Num, w: Num) -> Num:
    """Most scale-up domains one token can reach under the layer's group-limited routing (module docstring):
    topk_group x max(1, ceil(ep / (n_group w))); unlimited (inf) for a router without groups."""
    moe = lk.moe
    if moe is None or moe.groups <= 1:
        return np.full(np.shape(ep), np.inf)
    span = np.maximum(np.ceil(ep / (moe.groups * np.maximum(w, 1.0))), 1.0)
    return moe.top_groups * span


def group_limited_domains(lk: LayerKind, g: Num) -> Num:
    """Expected scale-up domains one token reaches under the layer's group-limited routing where each of the ``g``
    domains of the ep group holds whole expert groups (n_group a multiple of g): the token's topk_group groups
    are a random subset of the n_group groups, and it reaches a domain when one of the domain's n_group / g groups
    is among them:

        E[domains] = g (1 - C(n_group - n_group / g, topk_group) / C(n_group, topk_group))

    Megatron-Core ``group_limited_topk`` (megatron/core/transformer/moe/moe_utils.py at Megatron-LM 2edffadb, the
    Megatron-Core of Megatron-Bridge v0.4.2 / NeMo 26.04.01) picks the topk_group groups with the highest sum of
    their top (top_k / topk_group) expert scores and then the top_k experts inside them; under the benchmarks'
    ``moe_router_force_load_balancing`` the logits are i.i.d. normal (router.py ``apply_random_logits``), so every
    subset of groups is equally likely (DeepSeek-V3 report sec. 2.1.2: the node-limited routing this
    generalises). It assumes each chosen group receives one of the top_k experts (a group is chosen for its best
    experts): a Monte Carlo of that router for DeepSeek-V3 (256 experts, n_group 8, topk_group 4, top_k 8) gives
    1.968 / 3.122 / 3.965 domains for g = 2 / 4 / 8 against 1.971 / 3.143 / 4.0 here, and the balls-in-bins
    g (1 - (1 - 1/g)^k) that ignores the groups 1.992 / 3.600 / 5.251. inf (no bound from this rule) for a
    router without groups, and where a domain holds a fraction of a group (:func:`group_domain_limit` bounds
    that case)."""
    moe = lk.moe
    g = np.asarray(g, dtype=np.float64)
    if moe is None or moe.groups <= 1:
        return np.full(np.shape(g), np.inf)
    n = float(moe.groups)
    per = n / g
    nested = (per >= 1.0) & (np.abs(per - np.round(per)) < 1e-9)
    # the hypergeometric count of perf/routing.py, with groups for experts and domains for blocks
    return np.where(nested, expected_distinct_blocks(float(moe.top_groups), n, g), np.inf)


def node_cap(lk: LayerKind, ctx: StepContext, p: Plans) -> Num:
    """Most scale-up domains (nodes) a token of this MoE layer is sent to, 0 for no limit: the plan's
    ``node_limit`` where it states one; else, under a stack with node-limited routing
    (:attr:`~trainsim.perf.context.StepContext.moe_node_limited_routing`: DeepSeek's HAI-LLM, DeepSeek-V3 sec.
    2.1.2, "each token will be sent to at most M nodes", M = 4 = the router's topk_group, sec. 4.2), the router's
    topk_group where it has groups; else 0. A limit also means the deduplicated dispatch of the module docstring
    (one scale-out copy per node reached, sec. 3.2.2)."""
    return stack_node_limit(lk, ctx.moe_node_limited_routing, p.node_limit)


def stack_node_limit(lk: LayerKind, limited_routing: bool, node_limit: Num) -> Num:
    """The rule of :func:`node_cap` for a plan's ``node_limit`` under a stack that does (``limited_routing``) or
    does not route node-limited: the stated limit where > 0, else the router's topk_group where the stack limits
    and the layer's router has groups, else 0 (no limit). Also what a plan prints as its node_limit
    (:func:`trainsim.plan_estimate.result_row`), so that a plan shows the limit the engine used."""
    nl = np.asarray(node_limit, dtype=np.float64)
    moe = lk.moe
    if not limited_routing or moe is None or moe.groups <= 1:
        return nl
    return np.where(nl > 0, nl, float(moe.top_groups))


def dispatched_rows_per_token(lk: LayerKind, ctx: StepContext, p: Plans) -> Num:
    """Rows one token becomes on the ranks the dispatcher delivers it to (module docstring): k with Megatron's
    all-to-all (one copy per routed expert); one per destination rank with DeepEP / HybridEP, E[distinct ranks]
    of k distinct experts over ep ranks of E / ep experts each, within the router's chosen groups where it limits
    them (:func:`group_limited_ranks`), or under NeMo AutoModel's FakeBalancedGate the blocks of E / ep consecutive
    experts its k consecutive experts touch (:func:`trainsim.perf.routing.fake_balanced_blocks`)."""
    moe = lk.moe
    if moe is None:
        raise ValueError(f"dispatched_rows_per_token: layer kind {lk.name!r} has no experts")
    k = float(moe.active_experts)
    ep = np.asarray(p.ep, dtype=np.float64)
    if ctx.moe_dispatcher == "alltoall":
        return k + 0.0 * ep
    if ctx.moe_fake_balanced_gate:
        return fake_balanced_blocks(moe.top_k, moe.experts, moe.experts / ep)
    return group_limited_ranks(lk, k, ep)


def group_limited_ranks(lk: LayerKind, k: float, ep: Num) -> Num:
    """Expected distinct EP ranks one token's ``k`` experts sit on, under the layer's group-limited routing.

    Without groups: k distinct experts uniform over E, ep blocks of E / ep (:func:`trainsim.perf.routing.
    expected_distinct_blocks`). Group-limited routing (DeepSeek-V2 sec. 2.1.2 "device-limited routing", DeepSeek-V3
    sec. 2.1.2; Megatron-Core ``moe_router_num_groups`` / ``moe_router_group_topk``, router.py ``group_limited_topk``:
    the expert scores are masked to the topk_group best of n_group groups of consecutive experts before the top-k,
    also under ``moe_router_force_load_balancing``, whose random logits pass through the same ``routing``, Megatron-LM
    847781764f router.py): where the groups tile the ranks (ep a multiple of n_group, each group on
    s = ep / n_group consecutive ranks, Megatron-Core's expert layout) a token's k experts are uniform over the
    topk_group x E / n_group experts of its chosen groups, held by topk_group x s ranks:

        E[ranks] = (topk_group s) (1 - C(E_sel - E / ep, k) / C(E_sel, k)),   E_sel = topk_group E / n_group.

    DeepSeek-V2 (160 experts, 8 groups, top 3 groups, top-6) at ep 8: 3 (1 - C(40, 6) / C(60, 6)) = 2.77 ranks
    against 4.43 without the limit. Where several groups share a rank (ep < n_group) or do not tile the ranks, the
    unlimited count stands (an upper bound)."""
    moe = lk.moe
    if moe is None:
        raise ValueError(f"group_limited_ranks: layer kind {lk.name!r} has no experts")
    ep = np.asarray(ep, dtype=np.float64)
    free = expected_distinct_blocks(k, moe.experts, ep)
    if moe.groups <= 1:
        return free
    n_g, top = float(moe.groups), float(moe.top_groups)
    tiled = (ep >= n_g) & (np.mod(ep, n_g) == 0)
    limited = expected_distinct_blocks(k, top * moe.experts / n_g, top * np.where(tiled, ep / n_g, 1.0))
    return np.where(tiled, limited, free)


def dispatch_prob_bytes(lk: LayerKind, ctx: StepContext, p: Plans, w: Num) -> Num:
    """Bytes of routing metadata that travel with each dispatched token copy: under HybridEP, the token's FP32
    routing-probability row over every expert of the receiving scale-up domain, 4 x (E / ep) x w bytes for w ep
    ranks per domain; 0 for the other dispatchers.

    HybridEP's forward dispatch kernel writes, beside each token it sends to a rank (and to each remote domain
    over RDMA), ``NUM_OF_EXPERTS_PER_RANK * NUM_OF_RANKS_PER_NODE`` floats of probabilities, its "node" being the
    NVLink domain (deepseek-ai/DeepEP branch hybrid-ep 94a9f8f, csrc/hybrid_ep/backend/hybrid_ep_backend.cuh,
    ``S2G_warp_group_device_function`` ``if constexpr(FORWARD_DISPATCH)``: ``remote_expert_output_prob``, and the
    RDMA path's prob WQE); its combine reads the same row back where it carries the probabilities' gradient
    (``BACKWARD_COMBINE``: ``remote_expert_input_prob``). Megatron-Core dispatches with the probabilities and
    combines their gradient in the backward (Megatron-LM d98e8a64 fused_a2a.py ``HybridEPDispatch.forward``
    ``dispatch_with_permute(..., probs=probs)``, ``backward`` ``combine_with_unpermute(..., probs=grad_probs)``)
    and combines / re-dispatches the hidden states without them (``HybridEPCombine``), so one of each direction's
    two transfers carries the row: the forward's dispatch here, the backward's combine in its mirror. DeepSeek-V4-
    Flash at ep 64 in one NVL72 domain: 256 x 4 = 1,024 bytes beside each 8,192-byte BF16 token (+12.5%).
    DeepEP's dispatch sends only the k top-k weights and indices (12 bytes each), not counted."""
    if ctx.moe_dispatcher != "hybridep" or lk.moe is None:
        return np.zeros(np.shape(w))
    return 4.0 * lk.moe.experts / np.asarray(p.ep, dtype=np.float64) * np.asarray(w, dtype=np.float64)


def ep_alltoall_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Forward dispatch + combine time of one MoE layer per micro-batch (0 for dense layers or ep = 1; 0 for the
    all-gather dispatcher, whose collectives :func:`etp_comm_fwd` costs)."""
    if lk.moe is None or ctx.moe_dispatcher == "allgather":
        return np.zeros_like(tokens)
    h = ctx.arch.hidden
    k = float(lk.moe.active_experts)
    tok = tokens / p.tp
    disp_b = ctx.dispatch_bytes
    per_copy = tok * h
    c = ctx.calib
    generic = (all_to_all_time(per_copy * k * disp_b, p.ep, p.etp, ctx.system, c.coll_eff, c.a2a_peer_s)
               + all_to_all_time(per_copy * k * BF16_BYTES, p.ep, p.etp, ctx.system, c.coll_eff, c.a2a_peer_s)
               + 2.0 * c.comm_launch_s)
    cap = node_cap(lk, ctx, p)
    dedup = (cap > 0) | (ctx.moe_dispatcher != "alltoall")
    if not np.any(dedup):
        return np.where(p.ep > 1, generic, 0.0)
    # node-limited, deduplicated routing on a two-level view: scale-up domain, then everything outside it
    w = members_within(p.ep, p.etp, ctx.system)[0].astype(np.float64)
    g = np.maximum(p.ep / w, 1.0)
    distinct = expected_distinct_blocks(k, lk.moe.experts, g)
    copies = dispatched_rows_per_token(lk, ctx, p)
    if ctx.moe_fake_balanced_gate:
        # k consecutive experts per token (perf/routing.py fake_balanced_blocks): E w / ep per scale-up domain
        e_rank = lk.moe.experts / p.ep.astype(np.float64)
        distinct = np.where(g > 1.0, fake_balanced_blocks(lk.moe.top_k, lk.moe.experts, e_rank * w), 1.0)
    distinct = np.where(cap > 0, np.minimum(distinct, cap), distinct)
    distinct = np.minimum(distinct, group_domain_limit(lk, p.ep.astype(np.float64), w))
    if not ctx.moe_fake_balanced_gate:   # AutoModel's benchmark gate ignores the groups
        distinct = np.minimum(distinct, group_limited_domains(lk, g))
    remote = distinct * (g - 1.0) / g
    inner = copies * (w - 1.0) / w
    # the wiring of each level slows this traffic as it slows a plain all-to-all (perf/topology.py)
    levels = ctx.system.levels
    f_in = a2a_factor(levels[0].topology, w, p.etp)
    f_out = a2a_factor(levels[1].topology, p.ep, p.etp) if len(levels) > 1 else 1.0
    nl: Num = 0.0
    # bytes per token copy: the dispatch (with HybridEP's probability row), then the BF16 combine
    for row_b in (h * disp_b + dispatch_prob_bytes(lk, ctx, p, w), h * BF16_BYTES):
        lv = [tok * inner * row_b * f_in, tok * remote * row_b * f_out] + [0.0] * (len(levels) - 2)
        nl = nl + level_bytes_time(lv, ctx.system, ctx.calib.coll_eff)
    nl = nl + 2.0 * sum(lv_.latency_s for lv_ in ctx.system.levels[:2])
    nl = nl + 2.0 * (c.comm_launch_s + c.a2a_peer_s * (p.ep - 1.0))
    return np.where(p.ep > 1, np.where(dedup, nl, generic), 0.0)


#: SMs the dispatch / combine kernels of each dispatcher occupy while they run: DeepEP's normal kernels
#: ``moe_deepep_num_sms = 20`` (Megatron-Core core_v0.14.0 transformer_config.py line 193, passed to DeepEP's
#: ``Buffer.set_num_sms``, fused_a2a.py ``set_deepep_num_sms``; DeepSeek-V3 report sec. 3.2.2: "only 20 SMs are
#: sufficient to fully utilize the bandwidths of IB and NVLink"). HybridEP's is a runtime setting of the run
#: (``training.moe_hybridep_num_sms``, :attr:`~trainsim.perf.context.StepContext.moe_hybridep_num_sms`: 16,
#: Megatron-Core's ``moe_hybridep_num_sms`` default at Megatron-LM cba6b0ed transformer_config.py line 231, or the
#: stack's: 32 in Megatron-Bridge's performance scripts). NCCL's all-to-all and all-gather also run on SMs, but no
#: source states how many for these messages, so they are not charged.
DISPATCHER_SMS = {"deepep": 20.0}


def dispatcher_sms(ctx: StepContext) -> float:
    """SMs the run's dispatch / combine kernels occupy (:data:`DISPATCHER_SMS`; HybridEP: the run's
    ``moe_hybridep_num_sms``); 0 for NCCL's all-to-all / all-gather dispatchers."""
    if ctx.moe_dispatcher == "hybridep":
        return float(ctx.moe_hybridep_num_sms)
    return DISPATCHER_SMS.get(ctx.moe_dispatcher, 0.0)


def routing_map_allgather_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """HybridEP's routing-map all-gather, once per MoE layer and forward dispatch: every rank of the ETP x EP group
    (ep x etp ranks, consecutive in Megatron-Core's expert rank order) all-gathers the bool routing map of its
    ``tokens / tp`` tokens over all E experts, 1 byte per entry, so the gathered buffer is
    ep x etp x (tokens / tp) x E bytes, at :func:`trainsim.perf.collectives.all_gather_time`; 0 for the other
    dispatchers, dense layers and a group of one.

    Megatron-Core's forward dispatch passes the routing map and no handle (Megatron-LM d98e8a64
    megatron/core/transformer/moe/fused_a2a.py ``HybridEPDispatch.forward`` ->
    ``HybridEPBuffer.dispatch_with_permute(routing_map=..., probs=...)``; token_dispatcher.py ``_HybridEPManager``:
    the group is "the ETPxEP group"), so HybridEP runs its metadata preprocessing, which first gathers the global
    routing map (deepseek-ai/DeepEP branch hybrid-ep 94a9f8f, deep_ep/hybrid_ep_buffer.py ``if handle is None:``
    ``self.runtime.metadata_preprocessing``; csrc/hybrid_ep/hybrid_ep.cu ``metadata_preprocessing`` ->
    csrc/hybrid_ep/executor/executor.cu ``Executor::allgather_routing_map``: ``torch.distributed.
    all_gather_into_tensor`` of a [tokens_per_rank x group_size, num_of_expert] bool tensor, NCCL across NVLink
    domains and, since 94a9f8f "Disable custom allgather by default", inside one too). The backward passes reuse
    the forward's handle (``HybridEPDispatch.backward`` ``combine_with_unpermute(handle=...)``,
    ``HybridEPCombine.backward`` ``dispatch_with_permute(handle=...)``): no gather. A recompute that reruns the MoE
    forward (full recompute, selective ``moe``) calls ``HybridEPDispatch.forward`` again and gathers again.
    DeepSeek-V4-Flash at ep 64, 4,096 tokens, E = 256: 64 x 4,096 x 256 = 67 MB gathered per layer."""
    if lk.moe is None or ctx.moe_dispatcher != "hybridep":
        return np.zeros_like(np.asarray(tokens, dtype=np.float64) * p.ep)
    n = (p.ep * p.etp).astype(np.float64)
    gathered = n * tokens / p.tp * float(lk.moe.experts)
    t = all_gather_time(gathered, n, np.ones_like(n), ctx.system, ctx.calib.coll_eff) + ctx.calib.comm_launch_s
    return np.where(n > 1, t, 0.0)


def paired_overlap_exposed(a2a_s: Sequence[tuple[Num, Num]], host_s: Sequence[Num], window_s: Num, f: Num,
                           ctx: StepContext) -> tuple[list[Num], list[Num]]:
    """Exposed parts of the expert-parallel transfers ``a2a_s`` (each (dispatch + combine, NCCL collectives of
    the same dispatch), :func:`ep_overlapped_exposed`) and host stalls ``host_s`` of one micro-batch when the
    schedule pairs its forward with another micro-batch's backward and hides them under one window ``window_s``,
    the pair's compute W = comp_f + comp_b (+ the compute a recompute reruns in the backward).

    Each cost x alone would hide f min(x, W / 2) (the one overlap rule, :func:`trainsim.perf.collectives.exposed`,
    behind half the pair: a forward transfer behind the other micro-batch's backward compute, a backward transfer
    behind the forward's, the host stall behind the compute queued before it); together they hide at most f W,
    the fraction ``f`` of the one window they share: where the costs' hidden parts alone, H = sum f min(x, W / 2),
    exceed f W, each is scaled by f W / H, so cost x is exposed x - f min(x, W / 2) min(1, f W / H) and the pair
    hides f min(H / f, W) <= f min(T, W) in all (T the sum of the costs). The hidden transfers take their
    dispatcher's SMs from the compute (:func:`ep_overlapped_exposed`); a host stall takes none. Where ``f`` = 0
    (no paired schedule) every cost is exposed in full.

    Why one window. Megatron-Core's merged forward-backward layer (``overlap_moe_expert_parallel_comm``,
    Megatron-Bridge ``moe_a2a_overlap``; NVIDIA/Megatron-LM d98e8a64
    megatron/core/models/common/model_chunk_schedule_plan.py ``TransformerLayerSchedulePlan.run``) runs
    ``comm_stream: combine_bwd | dispatch_fwd->dispatch_bwd | combine_fwd`` against
    ``comp_stream: pre_dispatch_fwd | mlp_bwd->mlp_bwd_dw->mlp_fwd | pre_dispatch_bwd``: the pair's four transfers
    (the forward's dispatch + combine, the backward's) run one after another on one stream beside the pair's
    compute, so together they hide behind comp_f + comp_b, not each behind a window of its own. The host stall
    sits in the same chain: the host issues ``b_layer.moe_combine.backward``,
    ``f_layer.pre_dispatch_computation.forward`` and ``b_layer.mlp.backward``, then ``f_layer.moe_dispatch.forward``,
    whose dispatcher waits on the device for the token counts (token_dispatcher.py ``_maybe_dtoh_and_synchronize``
    at ``cuda_sync_point``), and only after it launches the forward dispatch, ``mlp.backward_dw`` and
    ``moe_dispatch.backward``. A CPU-side stall blocks the launches, so it can hide only behind GPU work already
    queued (the other micro-batch's ``mlp.backward``, part of its backward: within the W / 2 each cost is given),
    and the forward dispatch cannot start before it ends: stall and transfers are in series against one stretch
    of compute and share its budget. DualPipe pairs chunks the same way (DeepSeek-V3 report, arXiv 2412.19437,
    sec. 3.2.1 and Figure 4: a forward chunk's dispatch and combine overlapped with a backward chunk's attention and
    MLP and vice versa, "overlap the computation and communication within a pair of individual forward and
    backward chunks"). A recompute's rerun forward runs inside the backward chunk (its compute joins the window,
    its transfers and stall the costs). Before this rule each direction and the stall hid up to f W / 2 apiece,
    up to 1.5 f W in all (1.35 W at f = 0.9)."""
    half = 0.5 * window_s
    costs = [ep + g for ep, g in a2a_s] + list(host_s)
    alone = [np.minimum(x, half) for x in costs]   # what each would hide alone, over f
    h = sum(alone, 0.0 * window_s)
    # the shared budget: all together hide at most f W (alone they hide f h)
    scale = np.divide(window_s, h, out=np.ones(np.broadcast(window_s, h).shape), where=h > window_s)
    work = [w * scale for w in alone]
    n = len(a2a_s)
    return ([ep_overlapped_exposed(ep, work[i], f, ctx, g) for i, (ep, g) in enumerate(a2a_s)],
            [exposed(x, work[n + j], f) for j, x in enumerate(host_s)])


def ep_overlapped_exposed(ep_s: Num, work_s: Num, f: Num, ctx: StepContext, nccl_s: Num = 0.0) -> Num:
    """Time the EP dispatch / combine adds to a micro-batch when a fraction ``f`` of it overlaps ``work_s`` of
    compute: the exposed part (:func:`trainsim.perf.collectives.exposed`) plus, for the part hidden, the compute
    the dispatcher's SMs take away: hidden x sms / SMs, with ``sms`` the SMs its kernels occupy
    (:func:`dispatcher_sms`) and SMs the chip's (``sm_count``: 132 on H100, 148 on B200; not the GEMM tile
    units). While the kernels run beside the GEMMs those
    have SMs - sms of the SMs, so the compute that would have filled the hidden time finishes hidden x sms / SMs
    later (DeepSeek-V3 report sec. 3.2.2: the 20 communication SMs are taken from the computation, "to reduce the
    SMs dedicated to communication"; DeepEP README: the normal kernels' "#SMs" column, and its V2 release "saving
    up to 4x SM count"). Not overlapped (f = 0), the kernels run alone and take nothing from the compute.
    ``nccl_s``: NCCL collectives of the same dispatch (HybridEP's routing-map all-gather,
    :func:`routing_map_allgather_fwd`), on the same stream and overlapped alike, but charged no dispatcher SMs:
    the hidden time's share ep_s / (ep_s + nccl_s) is."""
    total = ep_s + nccl_s
    out = exposed(total, work_s, f)
    share = np.divide(ep_s, total, out=np.zeros(np.broadcast(ep_s, total).shape), where=total > 0)
    return out + (total - out) * share * dispatcher_sms(ctx) / ctx.calib.sm_count


def etp_comm_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Expert tensor parallelism: the tokens an expert receives are all-gathered over its etp ranks before the
    expert GEMMs and the partial outputs reduce-scattered after (Megatron-Core MoE, expert-TP); per chip the
    gathered buffer is etp x (tokens / tp) x top-k x hidden x 2 bytes. Forward: one all-gather + one
    reduce-scatter.

    The all-gather dispatcher (``moe_dispatcher: allgather``; Megatron-LM core_r0.6.0
    megatron/core/transformer/moe/token_dispatcher.py MoEAllGatherTokenDispatcher, and MindSpeed's
    allgather_token_permutation / _unpermutation patch of it) instead all-gathers each chip's tokens / tp
    sequence-parallel tokens once, before routing copies them, over the tensor-and-expert-parallel group of
    ep x etp ranks (mappings.py ``_gather_along_first_dim_moe``: the group's ``get_tensor_and_expert_parallel_
    group``; etp = tp in that Megatron-Core), permutes locally, and reduce-scatters the combined BF16 outputs back
    (``reduce_scatter_to_sequence_parallel_region_from_moe``; MindSpeed accumulates them in fp32 and casts back
    to the hidden states' dtype first, NewIndePut): per chip a buffer of ep x etp x (tokens / tp) x hidden x 2
    bytes each way, one copy per token, not top-k."""
    if lk.moe is None:
        return np.zeros_like(tokens)
    if ctx.moe_dispatcher == "allgather":
        n = p.ep * p.etp
        gathered = n * tokens / p.tp * ctx.arch.hidden * BF16_BYTES
        one = reduce_scatter_time(gathered, n, np.ones_like(n), ctx.system, ctx.calib.coll_eff)
        return np.where(n > 1, 2.0 * one, 0.0)
    k = float(lk.moe.active_experts)
    gathered = p.etp * tokens / p.tp * k * ctx.arch.hidden * BF16_BYTES
    one = reduce_scatter_time(gathered, p.etp, np.ones_like(p.etp), ctx.system, ctx.calib.coll_eff)
    return np.where(p.etp > 1, 2.0 * one, 0.0)
