"""Resolve the run spec's ``model:`` value to an :class:`~trainsim.model.arch.Arch`.

The value is (run-spec.md): a catalog id (``models[*].id`` of ``catalog/data/models.yaml``, whose ``config`` block
is a Hugging Face config), a path relative to the run file to a Hugging Face ``config.json`` or to a trainsim model
YAML (the inline keys), or an inline mapping (inline keys; a mapping with ``model_type`` is a Hugging Face config).
The catalog also carries each model's official parameter counts with their sources (:func:`official_counts`).
"""
from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import TrainsimError, from_validation, unknown
from ..yamlload import load_data
from .arch import Arch
from .hf import import_hf_config
from .inline import InlineModel, build_inline
from ..io import read_text
from ..io.specfile import SPEC_COMMAND, SPEC_LABEL, spec_kind
from ..io.yamlsafe import load_json, load_yaml
from .hub import model_name, HUB_ID, cached_config

_FILE_SUFFIXES = (".json", ".yaml", ".yml")


@lru_cache(maxsize=1)
def _catalog() -> dict[str, dict[str, Any]]:
    text = resources.files("trainsim").joinpath("catalog", "data", "models.yaml").read_text(encoding="utf-8")
    doc = load_data(text) or {}
    return {str(m["id"]): m for m in doc.get("models", [])}


def model_ids() -> list[str]:
    """Ids of the models in the catalog."""
    return list(_catalog())


def _entry(model_id: str, field: str | None = "model", where: str | None = None) -> dict[str, Any]:
    cat = _catalog()
    if model_id not in cat:
        raise unknown("model", model_id, cat, field=field, where=where)
    return cat[model_id]


def _billions_to_params(official: dict[str, Any]) -> dict[str, Any]:
    """``total_b: 671`` -> ``total_params: 671000000000``; other keys (notes) as they are."""
    out: dict[str, Any] = {}
    for k, v in official.items():
        if k.endswith("_b") and isinstance(v, (int, float)):
            out[k[:-2] + "_params"] = int(round(v * 1e9))
        else:
            out[k] = v
    return out


def official_counts(model_id: str) -> dict[str, Any]:
    """The published parameter counts of a catalog model (``total_params``, ``active_params``, and where given
    ``active_min_params`` / ``active_max_params``, ``mtp_params``, ``embedding_params`` ...), plus ``source``."""
    e = _entry(model_id)
    out = _billions_to_params(e.get("official") or {})
    out["source"] = list(e.get("official_source") or [])
    return out


def catalog_config(model_id: str) -> dict[str, Any] | None:
    """A copy of the Hugging Face config a catalog model is imported from (None when it has none)."""
    cfg = _entry(model_id).get("config")
    return json.loads(json.dumps(cfg)) if cfg else None


def list_models() -> list[dict[str, Any]]:
    """One row per catalog model: id, name, family (``model_type``; None without a public config), official total
    and active parameters."""
    rows = []
    for mid, e in _catalog().items():
        off = _billions_to_params(e.get("official") or {})
        rows.append({"id": mid, "name": e.get("name", mid), "family": (e.get("config") or {}).get("model_type"),
                     "total_params": off.get("total_params"), "active_params": off.get("active_params")})
    return rows


def _from_mapping(doc: dict[str, Any], *, name: str | None, source: str, field: str, where: str | None) -> Arch:
    if "model_type" in doc:
        return import_hf_config(doc, name=name, source=source, where=where)
    try:
        m = InlineModel.model_validate(doc)
    except ValidationError as exc:
        # the one pydantic-error converter (near spellings of the inline model's keys, values cut to 80
        # characters, never the whole mapping), its field under the spec's model key
        e = from_validation(exc, None, InlineModel)
        msg = str(e)[len(f"{e.field}: "):] if e.field else str(e)
        raise TrainsimError(msg, field=f"{field}.{e.field}" if e.field else field, where=where) from None
    arch = build_inline(m)
    return replace(arch, source=source) if source else arch


#: top-level keys that make a YAML file a run or serving spec rather than a model file
SPEC_KEYS = frozenset({"system", "chips", "training", "serving"})


def _from_file(path: Path, field: str, where: str | None, repo_id: str | None = None, *,
               spec_ok: bool = True) -> Arch:
    if path.is_dir():   # a model folder: its config.json
        if not (path / "config.json").is_file():
            raise TrainsimError(f"folder '{path}' has no config.json", field=field, where=where)
        path = path / "config.json"
    if not path.is_file():
        raise TrainsimError(f"no such model file '{path}'", field=field, where=where)

    text = read_text(path, what="model file")
    doc = (load_json if path.suffix == ".json" else load_yaml)(text, where=str(path))
    if isinstance(doc, dict) and set(doc) == {"model"} and isinstance(doc["model"], dict):
        doc = doc["model"]  # a YAML file holding `model: {...}`
    elif isinstance(doc, dict) and "model" in doc and SPEC_KEYS & set(doc):
        # a run or serving spec (`trainsim model run.yaml`): its model, read as the spec reads it (relative to the
        # spec's folder); one level only, so specs naming each other are an error, not a recursion
        if not spec_ok:
            raise TrainsimError(f"'{path}' is a run spec, not a model (a spec's model: names a catalog id, a "
                                "config.json, a model YAML or an inline mapping)", field=field, where=where)
        m = doc["model"]
        if isinstance(m, dict) or (isinstance(m, str) and m in _catalog()):
            return resolve_model(m, path.parent, field="model", where=str(path))
        if isinstance(m, str) and m:
            p = Path(m) if Path(m).is_absolute() else path.parent / m
            if p.suffix in _FILE_SUFFIXES or p.exists():
                return _from_file(p, "model", str(path), spec_ok=False)
        return resolve_model(m, path.parent, field="model", where=str(path))
    if not isinstance(doc, dict):
        raise TrainsimError(f"'{path}' does not hold a mapping of model keys", field=field, where=where)
    kind = spec_kind(doc) if "model_type" not in doc else "run"
    if kind in ("posttrain", "sweep", "scenario"):
        # a post-training job (a student and teachers), a sweep (its base: a run spec) or a scenario names no one
        # model: read as a model mapping it was 'model.kind: unknown key (typo?)', a field no file has (qa28)
        hint = {"posttrain": "its student.model or a teachers' model", "sweep": "its base: run spec",
                "scenario": "the model of one of its run specs"}[kind]
        raise TrainsimError(f"'{path}' is a {SPEC_LABEL[kind]} spec ({SPEC_COMMAND[kind]}), not a model or a run "
                            f"or serving spec; give {hint}", field=field, where=where)

    name = None if "model_type" not in doc else model_name(doc, path, repo_id)
    return _from_mapping(doc, name=name, source=f"Hugging Face cache: {repo_id}" if repo_id else str(path),
                         field=field, where=where or str(path))


def spec_seq_len(value: Any, base_dir: Path | None = None) -> tuple[Any, str] | None:
    """(``training.seq_len`` as stated, the file) of a run spec that ``trainsim model`` was given as
    ``ID_OR_PATH`` (:data:`SPEC_KEYS`), None for a catalog id, a model file or a spec that states no sequence
    length: the FLOPs per token of that run are counted at its own sequence length, not the command's default."""
    if not isinstance(value, (str, Path)) or not str(value) or str(value) in _catalog():
        return None
    path = Path(value) if Path(value).is_absolute() or base_dir is None else base_dir / value
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return None
    doc = load_yaml(read_text(path, what="model file"), where=str(path))
    training = doc.get("training") if isinstance(doc, dict) and "model" in doc and SPEC_KEYS & set(doc) else None
    if not isinstance(training, dict) or training.get("seq_len") is None:
        return None
    return training["seq_len"], str(path)


def resolve_model(value: Any, base_dir: Path | None = None, *, field: str = "model",
                  where: str | None = None) -> Arch:
    """The :class:`Arch` of a run spec's ``model:`` value (catalog id, file path or mapping)."""
    if isinstance(value, dict):
        return _from_mapping(value, name=value.get("name") if "model_type" in value else None, source="",
                             field=field, where=where)
    if isinstance(value, Path) or (isinstance(value, str) and value):
        text = str(value)
        cat = _catalog()
        if isinstance(value, str) and text in cat:
            e = cat[text]
            if not e.get("config"):
                off = _billions_to_params(e.get("official") or {})
                raise TrainsimError(
                    f"model '{text}' has no public config (official figures only: "
                    f"{off.get('total_params', 0) / 1e9:g}B total, {off.get('active_params', 0) / 1e9:g}B active); "
                    "give a config.json path or inline model keys", field=field, where=where)
            src = "; ".join(e.get("config_source") or []) or "catalog models.yaml"
            return import_hf_config(e["config"], name=text, source=src, where=where)
        path = Path(text)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if not path.exists() and path.suffix not in _FILE_SUFFIXES:
            if HUB_ID.match(text):
                cfg = cached_config(text)
                if cfg is not None:
                    return _from_file(cfg, field, where, repo_id=text)
                raise TrainsimError(f"'{text}' is neither a file nor a model in the local Hugging Face cache "
                                    f"(run `huggingface-cli download {text} config.json` first)", field=field,
                                    where=where)
        if path.suffix in _FILE_SUFFIXES or path.exists() or "/" in text:
            return _from_file(path, field, where)
        raise unknown("model", text, cat, field=field, where=where)
    raise TrainsimError(f"expected a catalog id, a file path or a mapping, got {value!r}", field=field, where=where)
