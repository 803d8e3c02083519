"""What a serving evaluation needs besides the plans: model, system, numerics, MTP and constants."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..catalog.types import System
from ..errors import TrainsimError
from ..model.arch import Arch
from .calib import InferCalib, default_calib, int8_peak
from .stacks import budget_counts_decode, default_max_batched_tokens, stack_of

PRECISIONS = ("bf16", "fp8", "int8", "fp4")
#: bytes per weight (or cached element). FP4 is NVFP4/MXFP4: 4-bit values plus one 8-bit scale per 16-element block
#: (NVFP4, NVIDIA Blackwell tuning guide; MXFP4 uses 32-element blocks, 0.53 B) -> 0.5 + 1/16 = 0.5625 B.
BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5625}
#: bytes per activation fed to a GEMM or dispatched to experts: FP4 GEMMs quantise activations on the fly but
#: token dispatch stays FP8 (DeepEP low-latency dispatch; SGLang GB200 part II), so FP4 activations count 1 byte.
ACT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 1.0}


def speculative_tokens_per_step(draft_tokens: int, acceptance: float) -> float:
    """Expected tokens one sequence gains per decode step with ``draft_tokens`` (``d``) drafted tokens, each
    accepted with probability ``acceptance`` (``a``) given that the ones before it were: the verification stops
    at the first rejected draft and always adds the main model's own token, so

        tokens per step = 1 + a + a^2 + ... + a^d = (1 - a^(d+1)) / (1 - a)   (d + 1 at a = 1)

    (Leviathan, Kalman & Matias 2023, "Fast Inference from Transformers via Speculative Decoding", ICML, eq. (1):
    E(# generated tokens) = (1 - alpha^(gamma+1)) / (1 - alpha), alpha the acceptance rate, gamma the drafts).
    For ``d = 1`` it is ``1 + a``: DeepSeek-V3's MTP (tech report sec. 5.4.3: the second token accepted 85-90% of
    the time, 1.8x the tokens per second). ``1 + d x a``, which this replaces, counted a draft after a rejected one
    as accepted: a = 0.8, d = 3 gave 3.4 tokens per step, not 1 + 0.8 + 0.64 + 0.512 = 2.952.

    ``acceptance`` is that per-token conditional rate. A source that reports a mean acceptance *length* (tokens
    per step, e.g. EAGLE's tau) gives this function's value directly: state the ``a`` that yields it, or ``d = 1``
    with ``a = tau - 1`` where ``tau <= 2``."""
    d = max(int(draft_tokens), 0)
    a = float(acceptance)
    if a >= 1.0:
        return float(d + 1)
    if d > 1024:    # the closed form; below it the sum itself (Horner), exact where 1 + a is (d = 1)
        return (1.0 - a ** (d + 1)) / (1.0 - a)
    tokens = 1.0
    for _ in range(d):
        tokens = 1.0 + a * tokens
    return tokens


@dataclass(frozen=True)
class ServeSetup:
    """Model + system + numerics of one serving deployment.

    ``precision``: weights and GEMM inputs (W8A8 for fp8/int8: 1 byte per weight and per activation fed to a GEMM;
    the output head and the router stay BF16). ``kv_precision``: bytes per cached element. ``mtp_draft`` draft tokens
    per decode step verified by the main model (multi-token prediction / speculative decoding) and ``mtp_accept``
    the acceptance rate of each draft token given the ones before it were accepted: a step then yields
    :func:`speculative_tokens_per_step` tokens per sequence.
    """

    arch: Arch
    system: System
    precision: str = "bf16"
    kv_precision: str = "bf16"
    mtp_draft: int = 0
    mtp_accept: float = 0.0
    calib: InferCalib = field(default_factory=default_calib)
    expert_precision: str | None = None
    #: the serving stack's profile (:func:`trainsim.inference.stacks.profile`); None: the chip vendor's usual stack
    stack: dict | None = None
    #: the deployment's stated token budget per step and scheduler (``serving.max_batched_tokens``); None: the
    #: stack's default (:attr:`token_budget`)
    max_batched_tokens: int | None = None

    def __post_init__(self):
        for name in ("precision", "kv_precision", "expert_precision"):
            if name == "expert_precision" and self.expert_precision is None:
                continue
            if getattr(self, name) not in PRECISIONS:
                raise TrainsimError(f"expected one of {', '.join(PRECISIONS)}, got {getattr(self, name)!r}",
                                    field=name)

    @property
    def chip(self):
        """The system's chip."""
        return self.system.chip

    @property
    def stack_profile(self) -> dict:
        """The serving stack's profile: the one given, else the chip vendor's usual stack's
        (:func:`trainsim.inference.stacks.stack_of`)."""
        return self.stack if self.stack is not None else stack_of(None, None, self.system.chip)

    @property
    def token_budget(self) -> int | None:
        """Tokens one scheduler (data-parallel replica) runs in one step: the stated ``max_batched_tokens``, else
        the stack's default on this chip (:func:`trainsim.inference.stacks.default_max_batched_tokens`, at least
        the model's context where the stack's rule says so); None: no budget (the stack publishes none)."""
        if self.max_batched_tokens is not None:
            return int(self.max_batched_tokens)
        return default_max_batched_tokens(self.stack_profile, self.system.chip, self.arch.max_context)

    @property
    def budget_counts_decode(self) -> bool:
        """Whether the running decodes' tokens count against :attr:`token_budget` first (the stack's rule,
        :func:`trainsim.inference.stacks.budget_counts_decode`)."""
        return self.token_budget is not None and budget_counts_decode(self.stack_profile)

    @property
    def w_bytes(self) -> float:
        """Bytes per weight at the serving precision."""
        return BYTES[self.precision]

    @property
    def act_bytes(self) -> float:
        """Bytes per activation element at the serving precision."""
        return ACT_BYTES[self.precision]

    @property
    def expert_prec(self) -> str:
        """Numerics of the routed experts (e.g. NVFP4 MoE with FP8 attention); default: ``precision``."""
        return self.expert_precision or self.precision

    @property
    def expert_w_bytes(self) -> float:
        """Bytes per expert weight at the expert precision."""
        return BYTES[self.expert_prec]

    @property
    def expert_mem_eff(self):
        """Fraction of HBM bandwidth the routed-expert GEMMs stream their weights at (the chip family's measured
        kernel rate at the expert precision, else ``mem_eff``: :meth:`InferCalib.expert_mem_eff`)."""
        return self.calib.expert_mem_eff(self.chip, self.expert_prec)

    @property
    def expert_gemm_peak(self) -> float:
        """The chip's dense peak (FLOP/s) for expert GEMMs at the expert precision."""
        return _peak(self.chip, self.expert_prec)

    @property
    def kv_bytes(self) -> float:
        """Bytes per KV-cache element at the KV precision."""
        return BYTES[self.kv_precision]

    @property
    def gemm_peak(self) -> float:
        """Dense rate of the GEMMs: BF16, FP8, FP4 (each falling back to the next wider rate the chip has) or INT8
        (see calib.int8_peak)."""
        return _peak(self.chip, self.precision)

    @property
    def attn_peak(self) -> float:
        """Attention cores run in BF16 (FlashMLA, FlashAttention; CloudMatrix keeps MLA in BF16)."""
        return self.chip.flops("bf16")

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens each sequence gains per decode step (:func:`speculative_tokens_per_step`)."""
        return speculative_tokens_per_step(self.mtp_draft, self.mtp_accept)

    def peak_note(self) -> str:
        """Which of the chip's peak rates the serving precision runs at, as a note for reports."""
        if self.precision == "int8":
            return int8_peak(self.chip)[1]
        if self.precision == "fp8" and not self.chip.peak_flops.get("fp8"):
            return "chip has no FP8 rate: BF16 rate (FP8 weights still halve the bytes)"
        if self.precision == "fp4" and not self.chip.peak_flops.get("fp4"):
            used = "FP8" if self.chip.peak_flops.get("fp8") else "BF16"
            return f"chip has no FP4 rate: its {used} rate (FP4 weights still cut the bytes)"
        return f"chip {self.precision.upper()} dense rate"


def _peak(chip, precision: str) -> float:
    """Dense GEMM rate at ``precision``: INT8 from calib.int8_peak; FP4 -> FP8 -> BF16 fallback (a chip without FP4
    tensor cores dequantises FP4 weights and runs at its 8-bit or 16-bit rate)."""
    if precision == "int8":
        return int8_peak(chip)[0]
    for p in {"fp4": ("fp4", "fp8", "bf16"), "fp8": ("fp8", "bf16")}.get(precision, (precision,)):
        if chip.peak_flops.get(p):
            return chip.peak_flops[p]
    return chip.flops("bf16")
