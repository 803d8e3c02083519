"""The run spec (format v1, ../design/run-spec.md): pydantic models, loading and resolution.

``load_run(path)`` validates the YAML (unknown keys are errors), resolves the model and system (catalog ids,
files relative to the spec, or inline mappings) and returns a :class:`Run`. Every validation problem becomes a
one-line :class:`~trainsim.errors.TrainsimError` naming the file, the field, the value and what was expected.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .catalog.types import System
from .errors import TrainsimError
from .model.arch import Arch
from .units import parse_count


class TrainingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokens: float | None = None
    seq_len: int = Field(4096, gt=0)
    global_batch_tokens: float | None = None
    global_batch_seqs: int | None = Field(None, gt=0)
    precision: Literal["bf16", "fp8"] = "bf16"

    @field_validator("tokens", "global_batch_tokens", mode="before")
    @classmethod
    def _count(cls, v, info):
        return None if v is None else parse_count(v, f"training.{info.field_name}")

    @model_validator(mode="after")
    def _batch(self):
        if (self.global_batch_tokens is None) == (self.global_batch_seqs is None):
            raise ValueError("give exactly one of global_batch_tokens or global_batch_seqs")
        if self.global_batch_tokens is not None and self.global_batch_tokens < self.seq_len:
            raise ValueError(f"global_batch_tokens {self.global_batch_tokens:g} is less than one "
                             f"{self.seq_len}-token sequence")
        return self

    @property
    def batch_seqs(self) -> int:
        if self.global_batch_seqs is not None:
            return int(self.global_batch_seqs)
        # a batch quoted in tokens ("2M") is rounded to whole sequences (OPT: 2,000,000 / 2,048 -> 977)
        return int(round(self.global_batch_tokens / self.seq_len))


class PlanSpec(BaseModel):
    """A (possibly partial) plan: what it names is fixed, the rest is searched (or defaulted by estimate)."""

    model_config = ConfigDict(extra="forbid")
    tp: int | None = Field(None, gt=0)
    pp: int | None = Field(None, gt=0)
    vpp: int | None = Field(None, gt=0)
    schedule: Literal["1f1b", "interleaved", "zero-bubble", "dualpipe"] | None = None
    ep: int | None = Field(None, gt=0)
    etp: int | None = Field(None, gt=0)
    cp: int | None = Field(None, gt=0)
    dp: int | None = Field(None, gt=0)
    zero: int | None = Field(None, ge=0, le=3)
    recompute: Literal["none", "selective", "full"] | None = None
    micro_batch: int | None = Field(None, gt=0)
    node_limit: int | None = Field(None, ge=0)


class ReportedSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokens_per_s_per_chip: float | None = None
    mfu: float | None = None
    mfu_convention: Literal["trainsim", "megatron", "palm", "megatron-recompute", "6n"] | None = None
    step_time_s: float | None = None
    chip_hours: float | None = None
    source: str = ""
    notes: str = ""


class RunSpecFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    model: str | dict[str, Any]
    system: str | dict[str, Any]
    chips: int = Field(gt=0)
    training: TrainingSpec
    plan: PlanSpec | None = None
    reported: ReportedSpec | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Run:
    """A resolved run: model and system objects, batch, partial plan, and what was reported (if anything)."""

    name: str
    arch: Arch
    system: System
    chips: int
    training: TrainingSpec
    plan: PlanSpec
    reported: ReportedSpec | None
    path: Path | None = None


def _fmt_loc(loc) -> str:
    return ".".join(str(x) for x in loc if not (isinstance(x, str) and x.startswith("function-")))


def _one_line(exc: ValidationError, where: str) -> TrainsimError:
    err = exc.errors()[0]
    field = _fmt_loc(err["loc"]) or None
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (typo?)"
    elif "input" in err and err["type"] not in ("missing",):
        msg = f"{msg}; got {err['input']!r}"
    return TrainsimError(msg, field=field, where=where)


def parse_run(doc: Any, *, base_dir: Path | None = None, where: str = "run spec") -> Run:
    """Validate a run-spec mapping and resolve its model and system."""
    from .catalog.load import resolve_system
    from .model.load import resolve_model

    if not isinstance(doc, dict):
        raise TrainsimError("expected a mapping of run-spec keys", where=where)
    try:
        spec = RunSpecFile.model_validate(doc)
    except ValidationError as exc:
        raise _one_line(exc, where) from None
    try:
        arch = resolve_model(spec.model, base_dir)
        system = resolve_system(spec.system, base_dir)
    except TrainsimError as exc:
        if exc.where is None:
            raise TrainsimError(str(exc), where=where) from None
        raise
    return Run(name=spec.name or where, arch=arch, system=system, chips=spec.chips, training=spec.training,
               plan=spec.plan or PlanSpec(), reported=spec.reported, path=None)


def load_run(path: str | Path) -> Run:
    """Load and resolve a run-spec YAML file (safe loader only)."""
    path = Path(path)
    if not path.exists():
        raise TrainsimError(f"no such file: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise TrainsimError(f"not valid YAML{line}", where=str(path)) from None
    run = parse_run(doc, base_dir=path.parent, where=str(path))
    return Run(**{**run.__dict__, "path": path})
