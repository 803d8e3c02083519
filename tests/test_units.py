"""The tiny unit parser agrees with pint on every quantity string of the catalog (and a few more)."""
from __future__ import annotations

import re
from importlib import resources

import pytest
import yaml

from trainsim.units import _tiny, _ureg, parse_quantity

TARGET = {"bytes": "byte", "bytes_per_s": "byte / second", "flops": "FLOP / second", "seconds": "second",
          "watts": "watt"}


def _walk(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from _walk(v)
    elif isinstance(x, str):
        yield x.strip()


UNIT = re.compile(r"^[0-9]+(\.[0-9]+)? ?((Ki|Mi|Gi|Ti|[kMGTP])?(B|b|bit|FLOP)(/s|ps)?|[mun]?s)$")


def _catalog_strings() -> set[str]:
    """Every string value of the catalog files that is a number with a unit."""
    out = set()
    for name in ("hardware.yaml", "systems.yaml", "ranges.yaml"):
        text = resources.files("trainsim.catalog").joinpath("data", name).read_text(encoding="utf-8")
        out.update(s for s in _walk(yaml.safe_load(text)) if UNIT.match(s.replace("TFLOPS", "TFLOP/s")))
    return out


def _dim(s: str) -> str:
    if s.endswith(("FLOP/s",)):
        return "flops"
    if s.endswith(("/s", "ps")):
        return "bytes_per_s"
    if s.endswith(("B", "b", "bit")):
        return "bytes"
    return "seconds"


def _pint(s: str, dim: str) -> float:
    t = re.sub(r"(?<=[kKMGTP])bps\b", "bit/s", s)
    t = re.sub(r"(?<=[kKMGTP])b\b", "bit", t)
    return float(_ureg().Quantity(t).to(TARGET[dim]).magnitude)


def test_catalog_has_unit_strings():
    assert len(_catalog_strings()) > 30


@pytest.mark.parametrize("s", sorted(_catalog_strings()) + ["96 GiB", "3.35 TB/s", "400 Gbps", "2 us", "90 day",
                                                             "989 TFLOP/s", "700 W", "1.5e3 GB/s", "10 ms"])
def test_tiny_parser_equals_pint(s):
    dim = "watts" if s.endswith("W") else "seconds" if s.endswith("day") else _dim(s)
    got = _tiny(s, dim)
    assert got is not None, s
    assert got == pytest.approx(_pint(s, dim), rel=1e-12)
    assert parse_quantity(s, dim, "f") == got


def test_bits_are_not_bytes_and_wrong_dimension_falls_through():
    assert _tiny("400 Gb/s", "bytes_per_s") == pytest.approx(50e9)
    assert _tiny("400 GB/s", "bytes_per_s") == pytest.approx(400e9)
    assert _tiny("80 GB", "bytes_per_s") is None           # a size where a bandwidth is expected: pint decides
    assert _tiny("2 furlongs", "seconds") is None


def test_yaml_data_cache_round_trip_and_invalidation(tmp_path, monkeypatch):
    from trainsim.yamlload import load_data

    monkeypatch.setenv("TRAINSIM_CACHE", str(tmp_path / "c"))
    text = "a: 1\nb: [x, 2.5, null, true]\n"
    assert load_data(text) == {"a": 1, "b": ["x", 2.5, None, True]}
    assert len(list((tmp_path / "c").glob("*.json"))) == 1           # cached under the text's hash
    assert load_data(text) == {"a": 1, "b": ["x", 2.5, None, True]}   # from the cache
    assert load_data(text.replace("1", "7"))["a"] == 7                # an edit is a new key, never a stale hit
    assert load_data("d: 2024-05-01\n")["d"].year == 2024             # dates: parsed, not cached
    assert len(list((tmp_path / "c").glob("*.json"))) == 2
    monkeypatch.setenv("TRAINSIM_CACHE", "/proc/no-such-dir")         # unwritable: still loads
    assert load_data(text)["a"] == 1


def test_bytes_per_s_to_gbit_is_the_inverse_of_gbit_to_bytes_per_s():
    """A 400 Gb/s NIC (ConnectX-7) moves 400e9 / 8 = 50e9 bytes per second; 8 bits to the byte both ways."""
    from trainsim.units import bytes_per_s_to_gbit, gbit_to_bytes_per_s
    assert bytes_per_s_to_gbit(50e9) == pytest.approx(400.0)
    assert gbit_to_bytes_per_s(400.0) == pytest.approx(50e9)
    assert bytes_per_s_to_gbit(gbit_to_bytes_per_s(25.0)) == pytest.approx(25.0)
