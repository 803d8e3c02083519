"""The start-up caches (issue 15): they must give exactly what a fresh build gives, and be safe when stale."""
from __future__ import annotations

import json

from trainsim.catalog import load, tables_cache


def _fresh():
    load._build_sources.cache_clear()
    return load._build_tables()


def test_catalog_cache_round_trips_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINSIM_CACHE", str(tmp_path))
    built = _fresh()
    texts = [b"a", b"b", b"c"]
    first = tables_cache.cached(texts, lambda: built)           # miss: builds and writes
    files = list(tmp_path.glob("catalog-*.json"))
    assert len(files) == 1
    again = tables_cache.cached(texts, lambda: (_ for _ in ()).throw(AssertionError("rebuilt")))
    assert again == first == built                              # hit: decoded, equal field by field
    s = again["systems"]["cloudmatrix-384"]
    assert s.chip is again["chips"][s.chip.id]                  # one chip object per id, as a fresh build
    assert isinstance(s.levels, tuple) and isinstance(next(iter(s.chip.sources.values())).source, tuple)


def test_catalog_cache_key_changes_with_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINSIM_CACHE", str(tmp_path))
    tables_cache.cached([b"x"], _fresh)
    tables_cache.cached([b"y"], _fresh)
    assert len(list(tmp_path.glob("catalog-*.json"))) == 2      # an edited catalog file is built again


def test_corrupt_or_unwritable_cache_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINSIM_CACHE", str(tmp_path))
    built = _fresh()
    tables_cache.cached([b"z"], lambda: built)
    (f,) = tmp_path.glob("catalog-*.json")
    f.write_text(json.dumps({"chips": {"x": {"id": 1}}}))       # wrong shape: ignored, rebuilt
    assert tables_cache.cached([b"z"], lambda: built) == built
    f.write_text("{not json")
    assert tables_cache.cached([b"z"], lambda: built) == built
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("TRAINSIM_CACHE", str(blocker / "sub"))  # cannot be created: still an answer
    assert tables_cache.cached([b"z"], lambda: built) == built


def test_capacity_shape_counts_kept_per_shape_not_name():
    """The capacity shape rule's parameter counts are kept per shape (scenario/capacity.py ``_counts``): a shape
    under another name gives the counts a fresh build gives, and the DeepSeek-V3 shape gives the paper's sizes
    (arXiv 2412.19437, abstract: 671B total, 37B activated per token)."""
    from trainsim.model.counts import count
    from trainsim.model.inline import InlineModel, build_inline
    from trainsim.scenario.capacity import _counts, _moe_doc

    a = _counts(_moe_doc(7168, 61, 256, "first-name"))
    b = _counts(_moe_doc(7168, 61, 256, "another-name"))
    fresh = count(build_inline(InlineModel.model_validate(_moe_doc(7168, 61, 256, "fresh"))))
    assert a == b == (float(fresh.total_params), float(fresh.active_params))
    assert abs(a[0] / 671e9 - 1) < 0.01 and abs(a[1] / 37e9 - 1) < 0.02
    assert _counts(_moe_doc(7168, 61, 320, "first-name"))[0] > a[0]    # another shape is not served the kept one
