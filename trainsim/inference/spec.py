"""The serving spec (format v1): one YAML file describing a deployment to evaluate with ``trainsim infer``.

Written in the run-spec style (../design/run-spec.md): unknown keys are errors; ``model`` and ``system`` take the
same values as in a run spec (catalog id, file path relative to the spec, or inline mapping)::

    name: cloudmatrix384-deepseek-r1-decode
    model: deepseek-v3                 # catalog id | path to config.json / model YAML | inline mapping
    system: cloudmatrix-384            # catalog id | inline mapping ({base: ..., ...})
    chips: 160                         # chips per serving instance (one model replica); absent -> searched
    serving:
      phase: decode                    # prefill | decode | both (default both)
      input_len: 4096                  # prompt tokens per request ("4K" = 4,096: lengths take binary K, M)
      output_len: 1024                 # generated tokens per request (default 1: the one token comes from the
                                       #   prefill, no decode step, so phase decode needs at least 2)
      context_len: 4096                # decode: KV length per sequence at the measured step
                                       #   (default input_len + output_len (1 + output_len_cv^2) / 2, the
                                       #   mean over decode steps)
      output_len_cv: 1.25              # optional: coefficient of variation of the output lengths (default 0:
                                       #   every request generates output_len tokens)
      batch_per_chip: 96               # decode sequences per chip, or `batch:` per instance; absent -> searched
      prefill_tokens_per_chip: 16384   # prompt tokens per chip per prefill round; absent -> searched
      precision: int8                  # bf16 | fp8 | int8 | fp4 (any case): weights and GEMM inputs (W8A8; fp4 = NVFP4/MXFP4)
      expert_precision: fp4            # optional: routed experts' numerics when they differ (NVFP4 MoE)
      kv_precision: bf16               # bf16 | fp8 | int8 | fp4 (its own input)
      mtp: {draft_tokens: 1, acceptance: 0.7}   # optional multi-token prediction / speculative decoding (a step
                                       #   yields 1 + a + ... + a^draft_tokens tokens, a = acceptance, at most
                                       #   output_len: setup.speculative_tokens_per_step)
      expert_imbalance: 1.18           # optional: busiest / mean expert load (default: the constant, 1.0 = EPLB;
                                       #   at most experts / top-k, every token on the busiest expert)
      two_batch_overlap: true          # optional (default true): each step runs as two micro-batches whose
                                       #   communication overlaps the other's compute; false where the source
                                       #   runs without it (SGLang on GB200 NVL72, part I)
      stack: tensorrt-llm              # optional: the serving stack, an id of inference/data/serving_stacks.yaml
                                       #   (vllm, sglang, tensorrt-llm, vllm-ascend, cloudmatrix-infer): where its
                                       #   custom all-reduce runs, its default running-request cap and host loop;
                                       #   absent: the chip vendor's usual stack (vLLM's rules on GPUs)
      stack_version: "0.4.3"           # optional: the stack's release, where its defaults changed between
                                       #   releases (vLLM before 0.8.0: the V0 engine); absent: the newest rule
      host_overlap: true               # optional (default: the stack's): the engine overlaps its per-step host
                                       #   work with the GPU (SGLang overlap scheduler, vLLM V1, TensorRT-LLM);
                                       #   false for a synchronous loop (vLLM V0), which adds per-sequence host
                                       #   time each step
      max_batch: 256                   # optional: the server's cap on running sequences per instance, decode
                                       #   batch and prompts per prefill round alike (vLLM max_num_seqs;
                                       #   SGLang --max-running-requests); absent: the stack's default per
                                       #   data-parallel replica where the batch is searched (vLLM: 1,024 on
                                       #   GPUs of 70 GiB or more but A100, else 256; serving_stacks.yaml)
      max_batched_tokens: 16384        # optional: tokens one scheduler (data-parallel replica) runs per step
                                       #   (vLLM --max-num-batched-tokens, SGLang --chunked-prefill-size per
                                       #   rank, TensorRT-LLM max_num_tokens): a prefill of P tokens runs in
                                       #   ceil(P / budget) steps; absent: the stack's default
                                       #   (serving_stacks.yaml: vLLM's API server 8,192 on GPUs of 70 GiB or
                                       #   more but A100, else 2,048)
      max_output_len: 20000            # optional: the stack reserves KV for input_len + max_output_len per
                                       #   running request (TensorRT-LLM's GUARANTEED_NO_EVICT); absent: KV
                                       #   is paged at the mean context (vLLM, SGLang)
    latency:                           # optional bounds the searched plan must meet
      tpot_ms: 50                      # time per output token
      tpot_stat: p99                   # which per-request TPOT statistic tpot_ms bounds: mean (default) | p99
                                       #   (MLPerf Server / Interactive)
      ttft_ms: 2000                    # time to first token (one prefill round)
    plan: {tp: 1, pp: 1, ep: 160}      # optional, partial allowed; dp = chips / (tp pp), etp = chips / (pp ep)
    uncertain: {input_len: [200, 400]} # optional: inputs the source leaves open, as [low, high]; the validation
                                       #   table reports the predicted range (one input at a time, with the
                                       #   nominal); each end a valid value of its field, the stated one inside
    reported:                          # only for published deployments (validation)
      decode_tokens_per_s_per_chip: 1943
      prefill_tokens_per_s_per_chip: null
      output_tokens_per_s_per_chip: null   # aggregated serving (phase both: prefill and decode on the same
                                           #   chips, e.g. MLPerf Offline): generated tokens/s per chip
      tpot_ms: 49.4
      ttft_ms: null
      source: "arXiv 2506.12708 v3 Table 3"
      stack: "CloudMatrix-Infer (vendor stack), 2025-06"   # serving stack and version
      notes: "..."
      measurement: saturated           # saturated (default) | production_average (a fleet's time average
                                       #   under varying load: shown, not counted in the accuracy statistics)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from ..catalog.types import System
from ..errors import TrainsimError, from_validation
from ..spec import SpecHead
from ..model.arch import Arch
from ..types_checked import (MAX_SEQ_LEN, Chips, lower_case, FiniteFloat, NonNegFloat, NonNegInt, PosFloat, PosInt,
                             SeqLen)
from ..spec import chips_as_stated, resolve_model_and_system
from .stacks import check_stack
from ..io import load_spec_file, yaml_shape
from .setup import speculative_tokens_per_step


class MTPSpec(BaseModel):
    """Multi-token prediction (speculative decoding): draft tokens per step and each one's acceptance rate (0-1),
    given the drafts before it were accepted (:func:`~trainsim.inference.setup.speculative_tokens_per_step`)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    draft_tokens: NonNegInt = 1
    acceptance: FiniteFloat = Field(ge=0.0, le=1.0)


class ServingPart(BaseModel):
    """A serving file's workload: phase, input / output / context lengths (tokens), batch, precisions
    (weights, experts, KV cache), MTP, expert imbalance, two-batch and host overlap and maximum batch."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    phase: Literal["prefill", "decode", "both"] = "both"
    input_len: SeqLen
    output_len: SeqLen = 1
    context_len: SeqLen | None = None
    output_len_cv: NonNegFloat = 0.0
    batch_per_chip: PosFloat | None = None
    batch: PosInt | None = None
    prefill_tokens_per_chip: PosFloat | None = None
    precision: Annotated[Literal["bf16", "fp8", "int8", "fp4"], BeforeValidator(lower_case)] = "bf16"
    expert_precision: Annotated[Literal["bf16", "fp8", "int8", "fp4"], BeforeValidator(lower_case)] | None = None
    kv_precision: Annotated[Literal["bf16", "fp8", "int8", "fp4"], BeforeValidator(lower_case)] = "bf16"
    mtp: MTPSpec | None = None
    expert_imbalance: FiniteFloat | None = Field(None, ge=1.0)
    #: two-micro-batch overlap of communication with computation (DeepSeek's dual micro-batch, SGLang
    #: ``--enable-two-batch-overlap``, CloudMatrix-Infer's microbatch pipeline): the model then hides
    #: ``comm_overlap`` of the shorter of the two per layer; ``False`` where the source states the deployment
    #: runs without it (SGLang GB200 NVL72 part I: "This allows two-batch overlap to be disabled",
    #: lmsys.org/blog/2025-06-16-gb200-part-1), so communication adds to the step in full
    two_batch_overlap: StrictBool = True
    #: the engine overlaps its per-step host work (scheduling, input preparation, sampling, output processing) with
    #: GPU execution; ``False`` for a synchronous engine loop (vLLM V0 before multi-step scheduling), whose GPU
    #: waits ``sync_host_s_per_seq`` per running sequence every step (:mod:`trainsim.inference.step`)
    host_overlap: StrictBool | None = None
    #: the serving stack (an id of ``inference/data/serving_stacks.yaml``, checked in :func:`parse_serving`) and
    #: its release; None: the chip vendor's usual stack (:func:`trainsim.inference.stacks.stack_of`)
    stack: str | None = None
    stack_version: Annotated[str, Field(pattern=r"^v?[0-9]+(\.[0-9]+)*([+.-][0-9A-Za-z.+-]*)?$")] | None = None
    max_batch: PosInt | None = None
    #: the deployment's per-step token budget of one scheduler (:attr:`~trainsim.inference.setup.ServeSetup.
    #: token_budget`); None: the stack's default (inference/data/serving_stacks.yaml ``max_batched_tokens``)
    max_batched_tokens: PosInt | None = None
    max_output_len: SeqLen | None = None

    @field_validator("output_len_cv")
    @classmethod
    def _cv_context(cls, v: float, info: ValidationInfo) -> float:
        """The mean decode context ``input_len + output_len (1 + cv^2) / 2`` (:attr:`decode_context`) must be a
        length like any other (at most MAX_SEQ_LEN tokens): ``output_len_cv: 1e200`` overflowed it (a traceback);
        ``cv x cv``, not ``cv ** 2``, so a huge value is inf, refused here, not an OverflowError."""
        d = info.data
        if "input_len" in d and "output_len" in d:
            ctx = d["input_len"] + d["output_len"] * (1.0 + v * v) / 2.0
            if not ctx <= MAX_SEQ_LEN:
                raise ValueError(f"output_len_cv {v:g} makes the mean decode context input_len + output_len x "
                                 f"(1 + cv^2) / 2 = {ctx:.3g} tokens; expected at most {MAX_SEQ_LEN:,}")
        return v

    @field_validator("context_len")
    @classmethod
    def _context_holds_the_prompt(cls, v: int | None, info: ValidationInfo) -> int | None:
        """A stated ``context_len`` (the KV length of a decode step) holds at least the prompt, ``input_len``: the
        cache keeps every prompt token's K and V from the prefill on (Kwon et al., SOSP'23). ``context_len: 10``
        with a 4,096-token prompt timed decode against 10 tokens of KV (qa21)."""
        d = info.data
        if v is not None and d.get("phase") != "prefill" and "input_len" in d and v < d["input_len"]:
            raise ValueError(f"context_len {v:,} is less than input_len {d['input_len']:,}: a decode step's KV cache "
                             "holds the whole prompt; expected at least input_len")
        return v

    @field_validator("max_output_len")
    @classmethod
    def _max_holds_the_mean(cls, v: int | None, info: ValidationInfo) -> int | None:
        """A stated ``max_output_len`` (the output the stack reserves KV for at admission) is at least the mean
        ``output_len``: ``max_output_len: 10`` with ``output_len: 1024`` reserved KV for 10 of the 1,024 tokens a
        request generates (qa21)."""
        d = info.data
        if v is not None and "output_len" in d and v < d["output_len"]:
            raise ValueError(f"max_output_len {v:,} is less than output_len {d['output_len']:,} (the mean generated "
                             "tokens); expected at least output_len")
        return v

    @model_validator(mode="after")
    def _one_batch(self):
        if self.batch is not None and self.batch_per_chip is not None:
            raise ValueError("give at most one of batch (per instance) or batch_per_chip")
        return self

    @model_validator(mode="after")
    def _mtp_within_output(self):
        """A decode step yields :func:`~trainsim.inference.setup.speculative_tokens_per_step` tokens per sequence,
        which no step can exceed the request's ``output_len``: mtp ``{draft_tokens: 100000,
        acceptance: 1}`` with ``output_len: 100`` was timed as 100,001 tokens per step (a 47.7 ms 'TPOT' for a
        step of 2,450 s)."""
        if self.mtp is not None and self.phase != "prefill":
            per_step = speculative_tokens_per_step(self.mtp.draft_tokens, self.mtp.acceptance)
            if per_step > self.output_len:
                raise ValueError(f"mtp yields (1 - acceptance^(draft_tokens+1)) / (1 - acceptance) = {per_step:g} "
                                 "tokens per decode step, "
                                 f"more than output_len {self.output_len:,} (the tokens a request generates)")
        return self

    @property
    def decode_context(self) -> int:
        """Mean context (tokens) of a decode step: ``context_len`` if given, else
        ``input_len + output_len x (1 + output_len_cv^2) / 2``.

        Under continuous batching every decode step of every request is one sample, so a request generating ``L``
        tokens contributes ``L`` steps at contexts ``in + 0.5 .. in + L - 0.5``: the mean over steps is
        ``E[in] + E[L^2] / (2 E[L]) = E[in] + E[L] (1 + cv^2) / 2`` -- length-biased sampling (the inspection
        paradox: Feller, *An Introduction to Probability Theory and Its Applications* vol. II, sec. I.4 and
        XI.4): long requests hold more of the steps. With fixed lengths (cv 0) it is the request's mean context
        ``in + L / 2``. The same mean gives the KV cache held by a full batch. The correlation of input and output
        lengths (``cov(in, L) / E[L]``) is left out (MLPerf DeepSeek-R1 set: -172 of 5,826 tokens; OpenOrca:
        -23 of 377, from ``scripts/dataset_lengths.py``).
        """
        if self.context_len is not None:
            return self.context_len
        return self.input_len + int(round(self.output_len * (1.0 + self.output_len_cv ** 2) / 2.0))

    @property
    def kv_reserved_context(self) -> int:
        """Tokens of KV cache each running request holds for the batch-capacity check: ``input_len +
        max_output_len`` when the stack reserves a request's blocks to its maximum length at admission, else the
        mean decode context (paged KV grows as tokens are generated: Kwon et al., SOSP'23).

        TensorRT-LLM's default capacity scheduler policy ``GUARANTEED_NO_EVICT`` admits a request only if the KV
        blocks for its prompt plus its maximum output fit, so that a started request is never paused
        (TensorRT-LLM docs, performance tuning guide, "Useful Runtime Options: Capacity Scheduler Policy";
        ``SchedulerConfig.capacity_scheduler_policy`` default); ``MAX_UTILIZATION`` packs by current length.
        """
        if self.max_output_len is not None:
            return self.input_len + self.max_output_len
        return self.decode_context


class LatencyPart(BaseModel):
    """Latency bounds: time per output token and time to first token, in ms, and which statistic of the
    requests' TPOT the bound constrains."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    tpot_ms: PosFloat | None = None
    ttft_ms: PosFloat | None = None
    #: the statistic of the per-request TPOT (each request's (latency - TTFT) / (output tokens - 1)) that
    #: ``tpot_ms`` bounds: ``mean`` (default; the model's step time is the mean) or ``p99`` (MLPerf Inference's
    #: Server and Interactive scenarios: "99th percentile" TPOT, mlcommons/inference_policies
    #: inference_rules.adoc, LLM latency constraints), which the model converts to a bound on the mean with the
    #: stacks' logged p99 / mean ratio (:func:`trainsim.inference.calib.tpot_p99_over_mean`)
    tpot_stat: Literal["mean", "p99"] = "mean"


class ServePlanPart(BaseModel):
    """A fixed serving plan: any of tp, pp, ep, dp (unset ones are searched)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    tp: PosInt | None = None
    pp: PosInt | None = None
    ep: PosInt | None = None
    dp: PosInt | None = None


class ServeReported(BaseModel):
    """A published serving measurement: tokens/s per chip (decode, prefill, output), TPOT and TTFT (ms),
    with its source, software stack and notes."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    decode_tokens_per_s_per_chip: NonNegFloat | None = None
    prefill_tokens_per_s_per_chip: NonNegFloat | None = None
    output_tokens_per_s_per_chip: NonNegFloat | None = None
    tpot_ms: NonNegFloat | None = None
    ttft_ms: NonNegFloat | None = None
    source: str = ""
    stack: str = ""
    notes: str = ""
    #: ``saturated``: the deployment measured at full load (a benchmark, an offline run, a server run at its
    #: latency bound) -- what the model predicts, counted in the accuracy statistics and the fit;
    #: ``production_average``: a fleet's average over hours of varying load (throughput per busy node diluted by
    #: idle and partly filled batches), shown in the table but not counted
    measurement: Literal["saturated", "production_average"] = "saturated"


UNCERTAIN_FIELDS = ("input_len", "output_len", "context_len", "batch_per_chip", "expert_imbalance", "max_batch")
#: the uncertain inputs that are whole numbers (tokens, sequences): an end is rounded to one
UNCERTAIN_INTS = ("input_len", "output_len", "context_len", "max_batch")


def uncertain_serving(part: ServingPart, field: str, value: float) -> ServingPart:
    """The workload with the uncertain input ``field`` at one end of its range, ``value`` (whole numbers rounded;
    a batch per chip replaces a batch per instance), validated by the same rules as the stated input -- so an
    end the spec could not state (``max_batch`` 0.5 -> 0, an ``input_len`` of 1e12 tokens) is refused at load,
    not evaluated (:func:`trainsim.inference.validate.predicted_range` used ``model_copy``, which checks
    nothing)."""
    v = int(round(value)) if field in UNCERTAIN_INTS else float(value)
    doc = {**part.model_dump(exclude_none=True), field: v}
    if field == "batch_per_chip":
        doc.pop("batch", None)
    return ServingPart.model_validate(doc)


class ServingFile(SpecHead):
    """A serving (inference) spec file: model, system and chips, workload, uncertain inputs, latency bounds,
    fixed plan and, for validation points, the reported figures."""

    model_config = ConfigDict(extra="forbid", defer_build=True)   # built on first use, not at import

    chips: Chips | None = None
    serving: ServingPart
    uncertain: dict[str, tuple[FiniteFloat, FiniteFloat]] = {}
    latency: LatencyPart = Field(default_factory=LatencyPart)
    plan: ServePlanPart = Field(default_factory=ServePlanPart)
    reported: ServeReported | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Serving:
    """A resolved serving spec."""

    name: str
    arch: Arch
    system: System
    chips: int | None
    serving: ServingPart
    latency: LatencyPart
    plan: ServePlanPart
    reported: ServeReported | None
    path: Path | None = None
    uncertain: dict = None  # serving field -> (low, high): inputs the source does not pin down


def parse_serving(doc: Any, *, base_dir: Path | None = None, where: str = "serving spec") -> Serving:
    """Validate a serving-spec mapping and resolve its model and system."""
    if not isinstance(doc, dict):
        raise TrainsimError(f"expected a mapping of serving-spec keys, got {yaml_shape(doc)}", where=where)
    if isinstance(doc.get("chips"), str):      # "1 pod", "2 systems": whole scale-up domains per instance
        doc = {**doc, "chips": chips_as_stated(doc["chips"], doc.get("system"), base_dir, where)}
    try:
        spec = ServingFile.model_validate(doc)
    except ValidationError as exc:
        raise from_validation(exc, where, ServingFile) from None
    _check_phase_fields(spec, where)
    check_stack(spec.serving.stack, spec.serving.stack_version, "serving.stack", where)
    arch, system = resolve_model_and_system(spec.model, spec.system, base_dir, where)
    _check_dense(spec, arch, where)
    _check_kv_format(spec.serving, system, where)
    p = spec.plan
    if spec.chips is None and p.dp is not None:   # the search sizes instances by chips, never by dp: it was dropped
        raise TrainsimError(f"dp {p.dp} needs chips: the instance is dp x tp x pp chips; state chips (per instance) "
                            "with it, or leave dp out", field="plan.dp", where=where)
    if spec.chips is not None and p.dp is not None:
        tp, pp = p.tp or 1, p.pp or 1
        if p.dp * tp * pp != spec.chips:
            raise TrainsimError(f"dp {p.dp} x tp {tp} x pp {pp} != chips {spec.chips}", field="plan.dp", where=where)
    _check_plan_divides(spec, arch, where)
    for k, (lo, hi) in spec.uncertain.items():
        if k not in UNCERTAIN_FIELDS:
            raise TrainsimError(f"unknown field '{k}'; expected one of {', '.join(UNCERTAIN_FIELDS)}",
                                field=f"uncertain.{k}", where=where)
        if not 0 < lo <= hi:
            raise TrainsimError(f"expected 0 < low <= high, got [{lo:g}, {hi:g}]", field=f"uncertain.{k}",
                                where=where)
        stated = getattr(spec.serving, k)
        if stated is not None and not lo <= stated <= hi:
            raise TrainsimError(f"the range [{lo:g}, {hi:g}] leaves out the stated serving.{k} {stated:g}; expected "
                                "a range around it", field=f"uncertain.{k}", where=where)
        for end, v in (("low", lo), ("high", hi)):
            try:
                uncertain_serving(spec.serving, k, v)
            except ValidationError as exc:
                e = exc.errors()[0]
                raise TrainsimError(f"the {end} end {v:g} is not a valid serving.{k}: {e['msg']}",
                                    field=f"uncertain.{k}", where=where) from None
    _check_imbalance(spec, arch, where)
    _check_context(spec.serving, arch, where)
    for k in ("input_len", "output_len", "context_len"):   # a token range's high end is evaluated as stated ones are
        if k in spec.uncertain:
            _check_context(uncertain_serving(spec.serving, k, spec.uncertain[k][1]), arch, where, f"uncertain.{k}")
    return Serving(name=spec.name or where, arch=arch, system=system, chips=spec.chips, serving=spec.serving,
                   latency=spec.latency, plan=spec.plan, reported=spec.reported, uncertain=dict(spec.uncertain))


#: the serving inputs only a decode evaluation reads (phase decode or both), and only a prefill one (prefill or both)
DECODE_ONLY = ("serving.batch_per_chip", "serving.batch", "serving.mtp", "serving.max_output_len",
               "serving.context_len", "serving.output_len_cv", "latency.tpot_ms", "latency.tpot_stat")
PREFILL_ONLY = ("serving.prefill_tokens_per_chip", "latency.ttft_ms")


def _check_phase_fields(spec: ServingFile, where: str) -> None:
    """Refuse a stated input the spec's phase never reads (:data:`DECODE_ONLY` with phase prefill,
    :data:`PREFILL_ONLY` with phase decode, ``latency.tpot_stat`` without ``latency.tpot_ms``, an ``uncertain``
    range of a decode-only input with phase prefill): each was dropped without a word (qa21: ``latency: {ttft_ms:
    100}`` on a decode deployment was answered as if no bound had been given)."""
    phase = spec.serving.phase
    stated = ([(f"serving.{k}", f"serving.{k}") for k in spec.serving.model_fields_set]     # (input, where stated)
              + [(f"latency.{k}", f"latency.{k}") for k in spec.latency.model_fields_set]
              + [(f"serving.{k}", f"uncertain.{k}") for k in spec.uncertain])
    unread = DECODE_ONLY if phase == "prefill" else PREFILL_ONLY if phase == "decode" else ()
    hit = _first_stated(stated, unread)
    if hit:
        name, at = hit
        raise TrainsimError(f"{name} applies to phase {'decode' if phase == 'prefill' else 'prefill'} (or both); "
                            f"this spec's phase is {phase}: leave {name} out or change the phase",
                            field=at, where=where)
    _check_one_token_output(spec, stated, where)
    if "tpot_stat" in spec.latency.model_fields_set and spec.latency.tpot_ms is None:
        raise TrainsimError(f"tpot_stat {spec.latency.tpot_stat} says which TPOT statistic tpot_ms bounds; no "
                            "tpot_ms is given (state it, or leave tpot_stat out)", field="latency.tpot_stat",
                            where=where)


def _check_one_token_output(spec: ServingFile, stated: list[tuple[str, str]], where: str) -> None:
    """Refuse a decode evaluation of requests that have no decode step. A request of ``output_len`` 1 gets its one
    token from the prefill's last position (vLLM and SGLang sample the first output token in the prefill forward;
    :func:`trainsim.inference.serve.has_decode`): ``phase: decode`` with output_len 1 (also the default) was still
    priced as a decode step, and ``phase: both`` with output_len 1 dropped a stated decode-only input
    (:data:`DECODE_ONLY`: ``latency.tpot_ms`` was answered as if no bound had been given; qa23). An
    ``uncertain.output_len`` range reaching past 1 keeps the decode inputs: its upper end has decode steps."""
    sp = spec.serving
    if sp.output_len > 1:
        return
    given = "output_len 1" if "output_len" in sp.model_fields_set else "output_len 1 (the default)"
    if sp.phase == "decode":
        raise TrainsimError(f"{given} has no decode step: the one output token comes from the prefill; a decode "
                            "deployment needs output_len >= 2 (state the mean generated tokens, or say phase "
                            "prefill)", field="serving.output_len", where=where)
    hi = spec.uncertain.get("output_len", (1, 1))[1]
    if sp.phase != "both" or hi > 1:
        return
    hit = _first_stated(stated, DECODE_ONLY)
    if hit:
        name, at = hit
        raise TrainsimError(f"{name} applies to decode steps; with {given} the one output token comes from "
                            f"the prefill and no decode step runs: leave {name} out or state output_len >= 2",
                            field=at, where=where)


def _first_stated(stated: list[tuple[str, str]], fields: tuple[str, ...]) -> tuple[str, str] | None:
    """The first stated input (``(input, where stated)`` pairs) among ``fields``: its name without the section
    (``tpot_ms`` of ``latency.tpot_ms``) and where it was stated; None when none is."""
    for field, at in stated:
        if field in fields:
            return field.split(".", 1)[1], at
    return None


def _check_kv_format(sp: ServingPart, system: System, where: str) -> None:
    """Refuse an FP4 KV cache on a chip with no FP4 rate. Weights in FP4 run on such a chip (dequantised to its
    8- or 16-bit rate: :func:`trainsim.inference.setup._peak`), but a 4-bit KV cache is a Blackwell format: NVFP4
    KV cache "enables significant performance gains on NVIDIA Blackwell GPUs" (NVIDIA technical blog, 'Optimizing
    Inference for Long Context and Large Batch Sizes with NVFP4 KV Cache', 2025-12-08), written for the SM100
    trtllm-gen attention kernel (FlashInfer ``nvfp4_quantize_paged_kv_cache``); no serving stack offers it on
    Hopper, Ampere or Ascend 910, where ``kv_precision: fp4`` was priced as a 4.5-bit cache no deployment has."""
    if sp.kv_precision == "fp4" and not system.chip.peak_flops.get("fp4"):
        raise TrainsimError(f"kv_precision fp4: {system.chip.id} has no FP4 rate, and FP4 KV caches run only on "
                            "chips with FP4 (NVFP4 on Blackwell); expected bf16, fp8 or int8 on this chip",
                            field="serving.kv_precision", where=where)


def _check_dense(spec: ServingFile, arch: Arch, where: str) -> None:
    """Refuse the routed-expert inputs (``plan.ep`` other than 1, ``serving.expert_precision`` other than the
    weights' precision, ``serving.expert_imbalance`` other than 1, ``uncertain.expert_imbalance``) on a dense
    model: the evaluation has no experts to apply them to and would drop them without a word (the run spec's
    rule, :func:`trainsim.spec.check_expert_fields`)."""
    if arch.is_moe:
        return
    sp = spec.serving
    stated = [("plan.ep", spec.plan.ep, "say 1", spec.plan.ep not in (None, 1)),
              ("serving.expert_precision", sp.expert_precision, f"say {sp.precision}",
               sp.expert_precision not in (None, sp.precision)),
              ("serving.expert_imbalance", sp.expert_imbalance, "say 1", sp.expert_imbalance not in (None, 1.0)),
              ("uncertain.expert_imbalance", spec.uncertain.get("expert_imbalance"), "", "expert_imbalance"
               in spec.uncertain)]
    for field, v, neutral, bad in stated:
        if bad:
            name = field.split(".", 1)[1]
            shown = list(v) if isinstance(v, tuple) else v
            raise TrainsimError(f"{name} {shown} applies only to a MoE model; {arch.name} is dense (leave {name} "
                                f"out{' or ' + neutral if neutral else ''})", field=field, where=where)


def _check_plan_divides(spec: ServingFile, arch: Arch, where: str) -> None:
    """Refuse a stated plan field no serving plan can take (the search's rules, inference/search.py plan_grid): pp
    more than the model's layers; with ``chips`` stated, pp not dividing the chips, tp x pp not dividing them, or
    ep not dividing a pipeline stage's chips (chips / pp). Each was exit 1 'no (tp, pp, ep) candidate divides the
    chips per instance', as if nothing fitted, instead of naming the field (Qwen3-30B-A3B, 16 chips, ep 3)."""
    p, n = spec.plan, spec.chips
    if p.pp is not None and p.pp > arch.n_layers:
        raise TrainsimError(f"pp {p.pp} is more than the model's {arch.n_layers} layers", field="plan.pp", where=where)
    if n is None:
        return
    pp = p.pp or 1
    if n % pp:
        raise TrainsimError(f"pp {pp} does not divide chips {n}", field="plan.pp", where=where)
    if p.tp is not None and n % (p.tp * pp):
        raise TrainsimError(f"tp {p.tp} x pp {pp} does not divide chips {n}", field="plan.tp", where=where)
    if p.ep is not None and (n // pp) % p.ep:
        raise TrainsimError(f"ep {p.ep} does not divide the {n // pp} chips of a pipeline stage (chips {n} / pp {pp})",
                            field="plan.ep", where=where)


def max_expert_imbalance(arch: Arch) -> float:
    """The largest busiest / mean expert load a MoE model's routing allows: ``E / k`` (``k`` real experts per
    token, :attr:`~trainsim.model.arch.MoEInfo.active_experts`). Each token sends at most one copy to an expert,
    so of ``T`` tokens the busiest expert gets at most ``T``, while the mean over ``E`` experts is ``T k / E``.
    DeepSeek-V3 (256 experts, top-8): 32; Mixtral 8x7B (8, top-2): 4. The smallest over the model's MoE layers;
    inf for a dense model."""
    return min((lk.moe.experts / float(lk.moe.active_experts) for lk in arch.layers if lk.moe is not None),
               default=float("inf"))


def _check_imbalance(spec: ServingFile, arch: Arch, where: str) -> None:
    """Refuse an ``expert_imbalance`` (stated, or the high end of ``uncertain``) above :func:`max_expert_imbalance`:
    no routing loads an expert more (1e300 gave 0 tokens/s per chip)."""
    top = max_expert_imbalance(arch)
    for field, v in (("serving.expert_imbalance", spec.serving.expert_imbalance),
                     ("uncertain.expert_imbalance", (spec.uncertain.get("expert_imbalance") or (None, None))[1])):
        if v is not None and v > top * (1 + 1e-12):
            raise TrainsimError(f"expert_imbalance {v:g} is more than {arch.name}'s routing allows: at most experts / "
                                f"top-k = {top:g} (the busiest expert gets every token)", field=field, where=where)


def _check_context(sp: ServingPart, arch: Arch, where: str, field: str | None = None) -> None:
    """A request holds ``input_len + max_output_len`` tokens (``output_len`` where no maximum is stated), at most
    the model's context (:attr:`Arch.max_context`, :func:`~trainsim.model.hf.max_context_of`), which a server
    refuses past, except that a prompt of exactly the context still gets its one token from the prefill: vLLM v1
    ``check_stop`` (``vllm/v1/core/sched/utils.py``) ends a request once ``num_tokens >= max_model_len``, after
    the first sampled token. So refused: ``input_len > context``, or more than one output token with ``input_len +
    output > context``. A 200,000-token prompt on Llama 3.1 8B (131,072) was priced as one prefill round
    (phys28). A model whose config states no limit is not checked; training may extend the context, so only
    serving is. ``field``: the field to blame where the workload is an end of an uncertain range (the validation
    table evaluates those as it does the stated input), e.g. ``uncertain.input_len``. A stated ``context_len`` (the
    KV length of the measured decode step) is at most the context too: no server's KV cache for one request is
    longer than its ``max_model_len`` (``context_len: 1000000`` on DeepSeek-V3, 163,840, was priced: qa30b)."""
    out = sp.max_output_len or sp.output_len
    limit = arch.max_context
    if limit and sp.context_len is not None and sp.context_len > limit:
        raise TrainsimError(f"context_len {sp.context_len:,} tokens of KV cache per sequence is more than "
                            f"{arch.name}'s context of {limit:,} (max_position_embeddings; a server's KV for one "
                            f"request stops at max_model_len); expected at most {limit:,}",
                            field=field or "serving.context_len", where=where)
    if not limit or (sp.input_len <= limit and (out <= 1 or sp.input_len + out <= limit)):
        return
    out_name = "max_output_len" if sp.max_output_len else "output_len"
    name = field or ("serving.input_len" if sp.input_len > limit else f"serving.{out_name}")
    raise TrainsimError(f"a request of input_len {sp.input_len:,} + {out_name} {out:,} = {sp.input_len + out:,} "
                        f"tokens is more than {arch.name}'s context of {limit:,} (max_position_embeddings); "
                        f"expected at most {limit:,}", field=name, where=where)


def load_serving(path: str | Path) -> Serving:
    """Load and resolve a serving-spec YAML file (safe loader only)."""
    path = Path(path)
    sv = load_spec_file(path, parse_serving, what="serving spec")
    return Serving(**{**sv.__dict__, "path": path})
