"""The RL framework's training loop around the Megatron-Core passes the training engine times: its measured cost
per MoE layer of a pipeline stage and per micro-batch on a rank (``student.train_loop`` of a post-training spec;
values and sources in ``posttrain/data/train_loops.yaml``), added by :func:`.phases.train_time`."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import TrainsimError
from ..model.arch import Arch
from ..yamlload import load_data, sourced_values


@dataclass(frozen=True)
class TrainLoopCost:
    """An RL framework's training-loop cost beyond the Megatron-Core passes the engine times, seconds per MoE layer
    of a pipeline stage and per micro-batch on a rank: training (forward + backward) and forward-only log-prob
    micro-batches, each with the ``(low, high)`` spread of its sources (posttrain/data/train_loops.yaml)."""

    moe_layer_train_s: float
    moe_layer_logprob_s: float
    train_range_s: tuple[float, float]
    logprob_range_s: tuple[float, float]


@lru_cache(maxsize=1)
def _train_loops_doc() -> dict:
    text = resources.files("trainsim.posttrain").joinpath("data", "train_loops.yaml").read_text(encoding="utf-8")
    return load_data(text) or {}


def train_loops() -> tuple[str, ...]:
    """The training loops a post-training spec may name (``student.train_loop``)."""
    return tuple(sorted(_train_loops_doc()))


def train_loop_cost(loop: str | None) -> TrainLoopCost | None:
    """The measured per-MoE-layer, per-micro-batch cost of training loop ``loop`` (None: the engine's own loop, no
    cost). NeMo RL's Megatron trainer (``nemo-rl-megatron``): 6.50 ms a training and 4.63 ms a log-prob micro-batch
    and MoE layer, measured from NVIDIA-NeMo/RL pull request 3295 and the NeMo RL v0.3 announcement, mechanism
    unnamed (each value's source in posttrain/data/train_loops.yaml)."""
    if loop is None:
        return None
    doc = _train_loops_doc()
    if loop not in doc:
        raise TrainsimError(f"unknown training loop '{loop}'; expected one of {', '.join(train_loops())}",
                            field="student.train_loop")
    vals = sourced_values(doc[loop], "training-loop cost", f"posttrain/data/train_loops.yaml {loop}")
    tr, lp = doc[loop]["moe_layer_train_s"], doc[loop]["moe_layer_logprob_s"]
    return TrainLoopCost(float(vals["moe_layer_train_s"]), float(vals["moe_layer_logprob_s"]),
                         (float(tr["low"]), float(tr["high"])), (float(lp["low"]), float(lp["high"])))


def moe_layers_per_stage(arch: Arch, pp: int) -> int:
    """MoE layers one pipeline stage runs: ``ceil(MoE layers / pp)`` (the busiest stage of an even split; the
    recipes' uneven first / last stages hold the dense or fewer layers, e.g. DeepSeek-V3 at PP16: 58 MoE layers,
    4 a middle stage)."""
    return -(-arch.n_moe_layers // max(int(pp), 1))


def train_loop_s(cost_s: float, moe_layers: int, microbatches_per_rank: float, pp: int = 1) -> float:
    """Seconds a per-MoE-layer, per-micro-batch loop cost ``cost_s`` adds to one pass of a rank's
    ``microbatches_per_rank`` micro-batches over a pipeline stage of ``moe_layers`` MoE layers:
    ``cost_s x moe_layers x (m + pp - 1)``. Each micro-batch pays it on every stage it crosses, and a pipeline's
    step is ``m + pp - 1`` stage slots (1F1B, Narayanan et al., SC'21 sec. 2.2: fill and drain ``pp - 1``; a
    forward-only pass the same in forward slots), so the fill and drain pay it too. Example (hand): 4.63 ms, 48 MoE
    layers, 128 micro-batches, pp 1: 4.63e-3 x 48 x 128 = 28.4 s; 4 layers, 16 micro-batches, pp 16: x 31 slots."""
    return float(cost_s) * int(moe_layers) * (float(microbatches_per_rank) + max(int(pp), 1) - 1)
