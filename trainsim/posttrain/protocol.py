"""A discrete-event run of NeMo RL v0.6.0's asynchronous GRPO protocol: a check of the closed form the timeline
uses for it (:func:`.phases.overlapped_decode_steps`), not part of the engine.

What it follows, from ``nemo_rl/algorithms/async_utils.py`` and ``nemo_rl/algorithms/grpo.py``
(``async_grpo_train``), NVIDIA-NeMo/RL tag v0.6.0 (commit 5fb58893), with ``max_trajectory_age_steps`` k (1 in
the one-step-off recipes, 8 in ``grpo-qwen3-30ba3b-24n8g-async-8off.yaml``) and ``in_flight_weight_updates`` true
as the performance recipes set them:

* the collector keeps at most ``k x prompts`` prompt groups in flight (``_inflight_sema`` =
  ``num_prompts_per_step x max_trajectory_age_steps``) and submits the groups of one target step in prompt order,
  target after target; from weight version 0 it generates for targets 0 ... k, from version v > 0 for
  v + 1 ... v + k (``_calculate_target_weights``), and it starts no new group during a refit (``prepare_for_refit``);
* each sample of a group is sent to the next rollout server in turn (``VllmGeneration._async_generate_base``:
  round-robin over the data-parallel shards, one request per sample, ``run_async_multi_turn_rollout``); a server
  runs at most ``max_seqs`` sequences, first come first served (vLLM's scheduler), and a decode step with ``n``
  running sequences takes ``a + b n`` seconds (:func:`.phases.generation_s`);
* a group is pushed to the replay buffer when all its samples are done, and training step j starts when all
  ``prompts`` groups of target j are in (``ReplayBuffer.sample`` returns nothing before) and step j - 1 is over;
* a training step takes ``train_s`` (log-probs and update), then the refit takes ``refit_s``, during which the
  servers stall (vLLM V1 runs the weight update between engine steps) and no group starts; after it the weight
  version is j + 1.

Python event loop over samples and decode steps: for checks on small cases and for ``scripts/rl_async_protocol.py``.
"""
from __future__ import annotations

import heapq
import random
from collections import deque
from typing import Callable


def simulate_one_step_off(servers: int, max_seqs: int, a_s: float, b_s: float, prompts: int, group: int,
                          lengths: Callable[[random.Random, int], int], train_s: float, refit_s: float,
                          steps: int = 10, seed: int = 0, age: int = 1) -> list[float]:
    """Start times (s) of ``steps`` training steps under the protocol above, ``age`` = ``max_trajectory_age_steps``
    (1: one step off).

    ``lengths(rng, i)``: generated tokens of the ``i``-th sample of its group. Example: 1 server, 2 slots, 1 prompt
    of 2 samples, lengths 3 and 1, ``a_s`` 1, ``b_s`` 0, no training time: each step's group takes 3 decode steps,
    so steps start 3 s apart once the pipeline is full."""
    rng = random.Random(seed)
    running: list[dict[int, int]] = [dict() for _ in range(servers)]
    waiting: list[deque] = [deque() for _ in range(servers)]
    busy = [False] * servers
    epoch = [0] * servers          # invalidates a server's scheduled step when a refit delays it
    due = [0.0] * servers
    events: list[tuple[float, int, str, int, int]] = []
    order = [0]

    def push(t: float, kind: str, x: int, y: int = 0) -> None:
        order[0] += 1
        heapq.heappush(events, (t, order[0], kind, x, y))

    state = {"inflight": 0, "version": 0, "paused": False, "stall_until": 0.0, "trainer_free": 0.0,
             "next_server": 0, "next_sample": 0, "next_group": 0}
    submitted: dict[int, int] = {}
    sample_group: dict[int, int] = {}
    group_left: dict[int, int] = {}
    group_target: dict[int, int] = {}
    target_left: dict[int, int] = {}
    target_done: dict[int, float] = {}
    starts: list[float] = []

    def run_server(s: int, t: float) -> None:
        while waiting[s] and len(running[s]) < max_seqs:
            sid, n = waiting[s].popleft()
            running[s][sid] = n
        if running[s]:
            busy[s] = True
            epoch[s] += 1
            due[s] = max(t, state["stall_until"]) + a_s + b_s * len(running[s])
            push(due[s], "step", s, epoch[s])
        else:
            busy[s] = False

    def submit(t: float) -> None:
        if state["paused"]:
            return
        idle = [s for s in range(servers) if not busy[s]]
        _submit(t)
        for s in idle:          # an idle server starts once every request of this instant has arrived
            run_server(s, t)

    k = max(int(age), 1)

    def _submit(t: float) -> None:
        v = state["version"]
        for target in range(v + 1 + k):      # version 0: targets 0 ... k; version v: up to v + k
            while submitted.get(target, 0) < prompts and state["inflight"] < k * prompts:
                submitted[target] = submitted.get(target, 0) + 1
                state["inflight"] += 1
                g = state["next_group"]
                state["next_group"] += 1
                group_left[g], group_target[g] = group, target
                target_left.setdefault(target, prompts)
                for i in range(group):
                    sid = state["next_sample"]
                    state["next_sample"] += 1
                    sample_group[sid] = g
                    s = state["next_server"] % servers
                    state["next_server"] += 1
                    waiting[s].append((sid, max(int(lengths(rng, i)), 1)))
            if submitted.get(target, 0) < prompts:
                return

    def train_if_ready(t: float) -> None:
        j = len(starts)
        if j < steps and j in target_done and state["trainer_free"] <= t and state["version"] == j:
            starts.append(t)
            state["trainer_free"] = float("inf")
            push(t + train_s, "refit", j)

    submit(0.0)
    while events and len(starts) < steps:
        t, _, kind, x, y = heapq.heappop(events)
        if kind == "step":
            if y != epoch[x]:
                continue
            done = []
            for sid in list(running[x]):
                running[x][sid] -= 1
                if running[x][sid] <= 0:
                    del running[x][sid]
                    done.append(sid)
            for sid in done:
                g = sample_group.pop(sid)
                group_left[g] -= 1
                if group_left[g] == 0:
                    target = group_target.pop(g)
                    del group_left[g]
                    state["inflight"] -= 1
                    target_left[target] -= 1
                    if target_left[target] == 0:
                        target_done[target] = t
            run_server(x, t)
            submit(t)
            train_if_ready(t)
        elif kind == "refit":
            state["paused"] = True
            state["stall_until"] = t + refit_s
            for s in range(servers):
                if busy[s]:
                    epoch[s] += 1
                    due[s] = max(due[s], t) + refit_s
                    push(due[s], "step", s, epoch[s])
            push(t + refit_s, "refit_end", x)
        else:   # refit_end: weight version x + 1, collection resumes, the trainer is free
            state["paused"] = False
            state["version"] = x + 1
            state["trainer_free"] = t
            submit(t)
            train_if_ready(t)
    return starts


def steady_period_s(starts: list[float], skip: int = 3) -> float:
    """Mean time between training-step starts after the first ``skip`` periods (the pipeline's fill)."""
    gaps = [b - a for a, b in zip(starts, starts[1:])][skip:]
    if not gaps:
        raise ValueError(f"need more than {skip + 1} step starts, got {len(starts)}")
    return sum(gaps) / len(gaps)
