"""The serving stacks as profiles (``inference/data/serving_stacks.yaml``, data with sources): the limits of the
stack a deployment runs -- where its custom all-reduce runs, how many requests its server runs at once when the
deployment does not say, whether its engine overlaps its host work -- read by the serving model in place of rules
keyed on the chip vendor. A serving spec names its stack (``serving.stack``, optional ``serving.stack_version``);
one that names none gets its chip vendor's usual stack (the file's ``vendor_default``). The same pattern as the
training framework profiles (:mod:`trainsim.frameworks`): the data says what the stack does, each statement with
its source; this module only reads and checks it."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from ..errors import TrainsimError, close_matches, from_validation
from ..yamlload import load_data
from .calib import vendor_key

WHERE = "trainsim/inference/data/serving_stacks.yaml"


class CustomAllReduce(BaseModel):
    """A stack's own peer-to-peer all-reduce: the tensor-parallel sizes it runs at and the largest message it takes
    (bytes, exclusive), with the AMD and the two-rank values where they differ."""

    model_config = ConfigDict(extra="forbid")
    world_sizes: list[int] = Field(min_length=1)
    max_bytes: int = Field(gt=0)
    max_bytes_amd: int | None = Field(None, gt=0)
    max_bytes_at_most_2_ranks: int | None = Field(None, gt=0)


class ChipDefault(BaseModel):
    """A server default that depends on the chip: ``value``, or ``large_gpu_value`` on chips of at least
    ``large_gpu_min_bytes`` of HBM whose id names none of ``large_gpu_excludes`` (:func:`chip_default`)."""

    model_config = ConfigDict(extra="forbid")
    value: int = Field(gt=0)
    large_gpu_value: int | None = Field(None, gt=0)
    large_gpu_min_bytes: int | None = Field(None, gt=0)
    large_gpu_excludes: list[str] = []

    @model_validator(mode="after")
    def _large_pair(self):
        if (self.large_gpu_value is None) != (self.large_gpu_min_bytes is None):
            raise ValueError("large_gpu_value and large_gpu_min_bytes go together")
        return self


class MaxRunning(ChipDefault):
    """A server's default cap on running requests per scheduler."""


class MaxBatchedTokens(ChipDefault):
    """A server's default token budget of one step per scheduler (vLLM ``max_num_batched_tokens``, SGLang
    ``--chunked-prefill-size``, TensorRT-LLM ``max_num_tokens``): ``at_least_context``: at least the model's context
    (vLLM V0 without chunked prefill); ``counts_decode``: the running decodes' tokens count against it first."""

    at_least_context: StrictBool = False
    counts_decode: StrictBool


class _Fields(BaseModel):
    """The fields a profile or one of its versions may state (each with its ``_source``)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    custom_all_reduce: CustomAllReduce | None = None
    custom_all_reduce_source: str | None = None
    max_running: MaxRunning | None = None
    max_running_source: str | None = None
    max_batched_tokens: MaxBatchedTokens | None = None
    max_batched_tokens_source: str | None = None
    host_overlap: StrictBool | None = None
    host_overlap_source: str | None = None
    host_loop: str = "vllm-v1"


class StackVersion(_Fields):
    """Releases before ``before`` whose defaults differ from the profile's: the fields stated override it."""

    before: str


class StackProfile(_Fields):
    """One serving stack: every field is stated (null where the stack has none of it), each with its source."""

    name: str
    custom_all_reduce_source: str
    max_running_source: str
    max_batched_tokens_source: str
    host_overlap_source: str
    versions: list[StackVersion] = []

    @model_validator(mode="before")
    @classmethod
    def _all_stated(cls, data):
        """custom_all_reduce, max_running, max_batched_tokens and host_overlap must be stated, null included:
        unstated is not none."""
        if isinstance(data, dict):
            for k in ("custom_all_reduce", "max_running", "max_batched_tokens", "host_overlap"):
                if k not in data:
                    raise ValueError(f"{k} missing: state it, null where the stack has none, with its {k}_source")
        return data


class StacksFile(BaseModel):
    """The file: the profiles and each vendor's usual stack."""

    model_config = ConfigDict(extra="forbid")
    vendor_default: dict[str, str]
    vendor_default_source: str
    stacks: dict[str, StackProfile]

    @model_validator(mode="after")
    def _defaults_known(self):
        for vendor, sid in self.vendor_default.items():
            if sid not in self.stacks:
                raise ValueError(f"vendor_default.{vendor}: {sid!r} is not a profile ({', '.join(self.stacks)})")
        if "other" not in self.vendor_default:
            raise ValueError("vendor_default.other missing: the stack of a vendor not listed")
        return self


@lru_cache(maxsize=1)
def _doc() -> StacksFile:
    text = resources.files("trainsim.inference").joinpath("data", "serving_stacks.yaml").read_text(encoding="utf-8")
    try:
        return StacksFile.model_validate(load_data(text))
    except ValidationError as exc:
        raise from_validation(exc, WHERE, StacksFile) from None


def stack_ids() -> list[str]:
    """The serving-stack profile ids."""
    return list(_doc().stacks)


def _version_key(v: str) -> tuple:
    """A release string as a comparable tuple of its numeric parts ('0.4.3+rocm614' -> (0, 4, 3))."""
    head = v.split("+")[0].lstrip("v")
    return tuple(int(p) if p.isdigit() else 0 for p in head.split("."))


def profile(stack: str, version: str | None = None, *, field: str = "serving.stack",
            where: str | None = None) -> dict:
    """The profile of serving stack ``stack`` at release ``version`` (None: the newest rule): its fields, with every
    ``versions`` entry whose ``before`` is later than ``version`` applied, the oldest last. An unknown id is an
    error naming ``field`` and the known ids."""
    doc = _doc()
    if stack not in doc.stacks:
        hits = close_matches(stack, doc.stacks) if isinstance(stack, str) else []
        near = f" (did you mean {', '.join(hits)}?)" if hits else ""
        raise TrainsimError(f"unknown serving stack {stack!r}; expected one of {', '.join(doc.stacks)}{near}",
                            field=field, where=where)
    p = doc.stacks[stack]
    out = p.model_dump(exclude={"versions"})
    if version is not None:
        for v in sorted(p.versions, key=lambda v: _version_key(v.before), reverse=True):
            if _version_key(version) < _version_key(v.before):
                out.update(v.model_dump(exclude_unset=True, exclude={"before"}))
    out["id"] = stack
    return out


def vendor_stack(vendor: str) -> str:
    """The stack a spec that names none runs on a chip of ``vendor`` (``vendor_default``, else its ``other``)."""
    d = _doc().vendor_default
    return d.get(vendor, d["other"])


def stack_of(stack: str | None, version: str | None, chip) -> dict:
    """The profile a deployment runs: its named ``stack`` (at ``version``), else its chip vendor's usual one."""
    return profile(stack if stack is not None else vendor_stack(vendor_key(chip)), version)


def custom_all_reduce_max_bytes(prof: dict, vendor: str, n):
    """The largest message (bytes, exclusive) profile ``prof``'s custom all-reduce takes over ``n`` ranks on a chip
    of ``vendor``: ``max_bytes``, ``max_bytes_amd`` on AMD, ``max_bytes_at_most_2_ranks`` at n <= 2 (TensorRT-LLM's
    16 MB workspace at 2 ranks, 8 MB above; serving_stacks.yaml gives each with its source); 0 where the stack has
    no custom all-reduce."""
    car = prof["custom_all_reduce"]
    n = np.asarray(n, dtype=np.float64)
    if car is None:
        return np.zeros_like(n)
    base = float(car["max_bytes_amd"] if vendor == "amd" and car.get("max_bytes_amd") else car["max_bytes"])
    two = car.get("max_bytes_at_most_2_ranks")
    return np.where(n <= 2, float(two), base) if two else np.full_like(n, base)


def chip_default(m: dict, chip) -> int:
    """A :class:`ChipDefault` (as a dict) on ``chip``: its ``large_gpu_value`` on a chip of at least
    ``large_gpu_min_bytes`` of HBM whose id names none of ``large_gpu_excludes``, else its ``value`` (vLLM's
    ``EngineArgs.get_batch_defaults``: 'device_memory >= 70 * GiB_bytes and "a100" not in device_name')."""
    large = (m.get("large_gpu_value") is not None and chip.hbm_bytes >= m["large_gpu_min_bytes"]
             and not any(x in chip.id for x in m.get("large_gpu_excludes") or ()))
    return int(m["large_gpu_value"] if large else m["value"])


def default_max_running(prof: dict, chip) -> int | None:
    """Requests one scheduler of stack ``prof`` runs at once when the deployment states no cap (its ``max_running``
    on ``chip``, :func:`chip_default`); None where the stack has no cap but the KV cache's."""
    m = prof["max_running"]
    return None if m is None else chip_default(m, chip)


def default_max_batched_tokens(prof: dict, chip, context: int = 0) -> int | None:
    """Tokens one scheduler of stack ``prof`` runs in one step when the deployment states no budget (its
    ``max_batched_tokens`` on ``chip``, :func:`chip_default`; where ``at_least_context``, at least the model's
    ``context``: vLLM V0's ``max(max_model_len, 2048)``); None where the stack publishes none. Examples (the
    profiles' sources): vLLM V1 on an H100 (80 GB) 8,192, on an A100 80 GB 2,048; SGLang on a B200 16,384;
    vLLM 0.4.3 serving Llama 2 70B (4,096 context) 4,096."""
    m = prof["max_batched_tokens"]
    if m is None:
        return None
    v = chip_default(m, chip)
    return max(v, int(context or 0)) if m.get("at_least_context") else v


def budget_counts_decode(prof: dict) -> bool:
    """Whether stack ``prof``'s running decodes take their tokens out of the step's budget before any prefill
    (vLLM V1, TensorRT-LLM: serving_stacks.yaml ``counts_decode``); False where the stack states no budget."""
    m = prof["max_batched_tokens"]
    return bool(m is not None and m["counts_decode"])


def check_stack(stack: str | None, version: str | None, field: str = "serving.stack", where: str | None = None):
    """Refuse an unknown stack id (one line naming ``field``, the value and the known ids)."""
    if stack is not None:
        profile(stack, version, field=field, where=where)
