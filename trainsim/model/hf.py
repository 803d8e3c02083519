"""Import a Hugging Face ``config.json`` (as a dict) into an :class:`~trainsim.model.arch.Arch`.

``FAMILIES`` maps each supported ``model_type`` to its importer; similar families share one (the readers live
in :mod:`trainsim.model.families`, grouped as Llama-style GQA, GPT-2-style, DeepSeek-style MLA, hybrid linear
attention, LongCat and DeepSeek-V4). Keys a config omits take the defaults of the family's ``transformers``
configuration class; structure a config does not state (biases, QK-norm shapes, router biases, MTP layout) is
known per family, as ../shared/data/models.md lists. Multimodal configs nest the language model under
``text_config``; only that part is imported (a note says the rest is not counted). An unknown ``model_type`` is
an error naming the supported ones, never a guess.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ..errors import TrainsimError
from .arch import Arch
from .families import classic, deepseek_v4, gqa, hybrid, longcat, mla
from .families.cfg import Cfg
from .families.checks import check_decoder
from .families.spec import DecoderSpec, build
from ..errors import short

Importer = Callable[[Cfg], Arch]


def _via_spec(reader: Callable[[Cfg], DecoderSpec]) -> Importer:
    def importer(c: Cfg) -> Arch:
        return build(check_decoder(c, reader(c)))
    importer.__doc__ = reader.__doc__
    return importer


def _table() -> tuple[dict[str, Importer], dict[str, dict[str, Any]]]:
    importers: dict[str, Importer] = {}
    defaults: dict[str, dict[str, Any]] = {}
    for module in (gqa, classic, mla, hybrid):
        for family, reader in module.READERS.items():
            importers[family] = _via_spec(reader)
            defaults[family] = module.DEFAULTS.get(family, {})
    for module in (longcat, deepseek_v4):
        for family, builder in module.BUILDERS.items():
            importers[family] = builder
            defaults[family] = module.DEFAULTS.get(family, {})
    return importers, defaults


FAMILIES, DEFAULTS = _table()
# model_type spellings that name a supported family (outer multimodal wrappers, older names)
ALIASES = {"llama4": "llama4_text", "qwen3_5_moe_text": "qwen3_5_moe", "RefinedWeb": "falcon",
           "RefinedWebModel": "falcon", "Glm4Moe": "glm4_moe"}
SUPPORTED = tuple(sorted(FAMILIES))
_NESTED = ("text_config", "language_config", "llm_config")


def _flatten(cfg: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The language-model part of a (possibly multimodal) config: outer keys overridden by ``text_config``."""
    for key in _NESTED:
        inner = cfg.get(key)
        if isinstance(inner, Mapping):
            outer = {k: v for k, v in cfg.items() if k not in _NESTED and not k.endswith("_config")}
            merged = {**outer, **inner}
            if not inner.get("model_type"):
                merged["model_type"] = cfg.get("model_type")
            skipped = [k for k in cfg if k.endswith("_config") and k != key and isinstance(cfg[k], Mapping)]
            notes = [f"only {key} imported; not counted: {', '.join(skipped)}"] if skipped else []
            return merged, notes
    return dict(cfg), []


def family_of(cfg: Mapping[str, Any], *, where: str | None = None) -> str:
    """The supported family a config belongs to (``text_config.model_type`` first, then aliases)."""
    flat, _ = _flatten(cfg)
    for mt in (flat.get("model_type"), cfg.get("model_type")):
        if isinstance(mt, str) and (mt in FAMILIES or mt in ALIASES):
            return ALIASES.get(mt, mt)
    mt = flat.get("model_type") or cfg.get("model_type")
    if not mt:
        raise TrainsimError("config has no 'model_type'; expected one of: " + ", ".join(SUPPORTED),
                            field="model_type", where=where)
    raise TrainsimError(f"unsupported model family '{mt}'; supported: {', '.join(SUPPORTED)}",
                        field="model_type", where=where)


def import_hf_config(cfg: Mapping[str, Any], *, name: str | None = None, source: str = "",
                     where: str | None = None) -> Arch:
    """The :class:`Arch` of a Hugging Face config dict. ``name`` replaces the config's own name."""
    if not isinstance(cfg, Mapping):
        raise TrainsimError(f"expected a config mapping, got {type(cfg).__name__}", where=where)
    family = family_of(cfg, where=where)
    flat, notes = _flatten(cfg)
    _check_numbers(flat, family, where)
    try:
        arch = FAMILIES[family](Cfg(flat, family, DEFAULTS.get(family), where=where))
    except ZeroDivisionError:   # a size of 0 that no shape check above names (a family-specific key)
        raise TrainsimError("a size in the config is 0 where a positive integer is expected "
                            f"(config.json of family '{family}')", where=where) from None
    return replace(arch, name=name or arch.name, source=source or arch.source or f"Hugging Face config ({family})",
                   notes=arch.notes + tuple(notes), max_context=max_context_of(flat))


def max_context_of(flat: Mapping[str, Any]) -> int:
    """Tokens one request may hold when the model is served (prompt + output): the config's
    ``max_position_embeddings``, from which vLLM derives its default ``max_model_len``
    (``vllm/config``: ``_get_and_verify_max_len``) and past which it refuses a request ("The decoder prompt (length
    N) is longer than the maximum model length of M", ``vllm/v1/engine/processor.py``; the OpenAI server: "This
    model's maximum context length is M tokens. However, you requested ..." for prompt + ``max_tokens``). 0 where the
    config states none (no limit is checked)."""
    v = flat.get("max_position_embeddings")
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def _check_numbers(flat: Mapping[str, Any], family: str, where: str | None) -> None:
    """Refuse non-finite numbers anywhere in the (flattened) config: Python's ``json`` reads ``NaN`` and
    ``Infinity``, and no config key of any family is meaningfully infinite."""
    import math


    stack = [(k, v) for k, v in flat.items()]
    while stack:
        k, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            raise TrainsimError(f"'{k}' is {short(v)}; expected a finite number (config.json of family "
                                f"'{family}')", field=k, where=where)
        if isinstance(v, Mapping):
            stack += [(f"{k}.{k2}", v2) for k2, v2 in v.items()]
        elif isinstance(v, (list, tuple)) and len(v) < 100_000:
            stack += [(f"{k}[{i}]", v2) for i, v2 in enumerate(v)]
