"""The sourced hardware catalog: ids, unit conversions, provenance, ranges, inline systems and the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from trainsim.catalog import chips, get_chip, get_system, require_usable, resolve_chip, resolve_system, source_text
from trainsim.catalog import systems
from trainsim.catalog.load import family_of, missing_inputs
from trainsim.catalog.schema import StrictSourced
from trainsim.errors import TrainsimError

ROOT = Path(__file__).resolve().parents[1]
CONFIDENCE = {"high", "medium", "low"}


def _packaged(name: str):
    return yaml.safe_load(resources.files("trainsim.catalog").joinpath("data", name).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- chips


def test_every_hardware_chip_id_is_preserved_exactly():
    ids = [c["id"] for c in _packaged("hardware.yaml")["chips"]]
    assert list(chips()) == ids
    for cid in ids:
        assert get_chip(cid).id == cid


def test_h100_unit_conversions():
    h100 = get_chip("nvidia-h100-sxm5")
    assert h100.peak_flops["bf16"] == 989e12
    assert h100.peak_flops["fp8"] == 1979e12
    assert "fp4" not in h100.peak_flops
    # "80 GB" HBM is 80 GiB (nvidia-smi: 81,559 MiB usable of 81,920 MiB)
    assert h100.hbm_bytes == 80 * 2**30
    assert 81559 * 2**20 <= h100.hbm_bytes
    assert h100.hbm_bw == pytest.approx(3.35e12)
    assert h100.scale_up_bw == 450e9            # one direction (900 GB/s bidirectional)
    assert h100.scale_out_bw == 50e9            # 400 Gb/s / 8 bits
    assert h100.tdp_w == 700
    assert h100.family == "nvidia-hopper"
    assert h100.usable


def test_google_gib_and_null_fp8():
    v4 = get_chip("google-tpu-v4")
    assert v4.hbm_bytes == 34359738368          # 32 GiB, as Google prints it
    assert "GiB" in v4.sources["hbm_bytes"].note
    assert "fp8" not in v4.peak_flops
    assert v4.flops("fp8") == v4.flops("bf16") == 275e12
    assert get_chip("nvidia-a100-sxm4-80gb").hbm_bytes == 80 * 2**30  # nvidia-smi: 81,920 MiB


def test_bidirectional_only_is_halved_with_provenance():
    b1 = get_chip("ascend-910b1")               # only scale_up_bidirectional_GBps: 392
    assert b1.scale_up_bw == 196e9
    assert "derived" in b1.sources["scale_up_bw"].source


@pytest.mark.parametrize("cid, family", [
    ("nvidia-a800-sxm4-80gb", "nvidia-ampere"), ("nvidia-h20", "nvidia-hopper"), ("nvidia-h200-sxm", "nvidia-hopper"),
    ("nvidia-gb200", "nvidia-blackwell"), ("amd-mi300x", "amd-cdna3"), ("amd-mi355x", "amd-cdna4"),
    ("google-tpu-v7-ironwood", "google-tpu"), ("ascend-910c", "ascend-910"), ("ascend-910a", "ascend-910"),
    ("ascend-950dt", "ascend-950"), ("ascend-960", "ascend-950"), ("cambricon-mlu590", "other"),
])
def test_families(cid, family):
    assert get_chip(cid).family == family == family_of(cid)


def test_chip_without_bf16_loads_but_is_unusable():
    c = get_chip("cambricon-mlu590")
    assert c.peak_flops["bf16"] == 0.0 and not c.usable
    assert "BF16 peak" in missing_inputs(c)
    with pytest.raises(TrainsimError, match="chip cambricon-mlu590 has no sourced BF16 peak"):
        require_usable(c)
    assert require_usable(get_chip("ascend-910c")).id == "ascend-910c"


def test_chip_provenance_kept():
    c = get_chip("ascend-910c")
    assert c.sources["bf16_flops"].source == ("cm384-paper",)
    assert c.sources["bf16_flops"].confidence == "high"
    assert "708" in c.sources["bf16_flops"].note
    assert c.tdp_w is None and c.sources["tdp_w"].note       # null, with the reason kept
    assert "CloudMatrix384" in source_text("cm384-paper")
    assert "derived" in source_text("derived")


def test_910c_host_link_is_the_cloudmatrix_cpu_ports_share():
    """CloudMatrix384 paper (arXiv 2506.12708 v2, sec. 3.3.2): 'Each compute node ... integrates 8 Ascend 910C NPUs,
    4 Kunpeng CPUs' and 'each Kunpeng CPU socket receives approximately 160 GB/s of unidirectional UB bandwidth':
    with all eight NPUs copying to host memory at once, 4 x 160 / 8 = 80 GB/s each way per NPU; offload copies
    reach host_link_eff 0.8 of it (constants.yaml), 64 GB/s, instead of the PCIe Gen5 x16 default's 50 GB/s."""
    from trainsim.plan_estimate import context
    from trainsim.spec import parse_run

    c = get_chip("ascend-910c")
    assert c.host_link_bw == pytest.approx(4 * 160e9 / 8)
    assert c.sources["host_link_unidirectional_GBps"].source == ("cm384-paper", "derived")
    assert "approximately 160 GB/s" in c.sources["host_link_unidirectional_GBps"].note
    ctx = context(parse_run({"model": "llama-3.1-8b", "system": "cloudmatrix-384", "chips": 8,
                             "training": {"global_batch_seqs": 8}}))
    assert ctx.host_link_bw == pytest.approx(0.8 * 80e9)


def test_unknown_ids_give_close_matches():
    with pytest.raises(TrainsimError, match=r"unknown chip 'h100'; did you mean .*nvidia-h100-sxm5"):
        get_chip("h100")
    with pytest.raises(TrainsimError, match=r"unknown system 'cm384'; did you mean .*cloudmatrix-384"):
        get_system("cm384")
    with pytest.raises(TrainsimError, match="unknown source"):
        source_text("no-such-source")


# ---------------------------------------------------------------- ranges


def test_ascend_910c_bf16_range():
    r = get_chip("ascend-910c").ranges["bf16_flops"]
    assert r.low < r.nominal < r.high
    assert (r.low, r.nominal, r.high) == (708e12, 752e12, 800e12)
    assert r.nominal == get_chip("ascend-910c").peak_flops["bf16"]
    assert get_chip("ascend-910c").sources["bf16_flops.range"].note


def test_every_range_is_ordered_and_sourced():
    owners = list(chips().values()) + list(systems().values())
    n = 0
    for obj in owners:
        for name, r in obj.ranges.items():
            n += 1
            assert r.low <= r.nominal <= r.high and r.low < r.high, (obj.id, name)
            prov = obj.sources[f"{name}.range"]
            assert prov.source and prov.confidence in CONFIDENCE and prov.note, (obj.id, name)
    assert n >= 20
    dt = get_chip("ascend-950dt")
    assert dt.ranges["bf16_flops"].low == 425e12 and dt.ranges["bf16_flops"].nominal == 547e12
    assert dt.ranges["hbm_bw"].high == 4.2e12
    assert get_chip("nvidia-b200-hgx").ranges["hbm_bw"].low == 7.7e12
    assert get_chip("nvidia-h20").ranges["tdp_w"].high == 550
    assert get_system("cloudmatrix-384").ranges["price_per_chip_usd"].nominal == pytest.approx(8.2e6 / 384, rel=1e-6)


# ---------------------------------------------------------------- systems


def test_every_hardware_system_and_the_extras_exist():
    hw_ids = {s["id"] for s in _packaged("hardware.yaml")["systems"]}
    ids = set(systems())
    assert hw_ids <= ids
    assert {"dgx-a100", "hgx-h200", "hgx-h20"} <= ids


def test_scale_up_domains_and_levels():
    cm = get_system("cloudmatrix-384")
    assert cm.scale_up_size == 384 and cm.chip.id == "ascend-910c"
    assert [lvl.name for lvl in cm.levels] == ["scale-up", "scale-out"]
    assert cm.levels[0].bw == 392e9 and cm.levels[1].bw == 50e9 and cm.levels[1].size is None
    assert 1.2e-6 <= cm.levels[0].latency_s <= 1.9e-6
    assert cm.power_per_chip_w == pytest.approx(559e3 / 384, rel=1e-5)
    assert get_system("atlas-950-superpod").scale_up_size == 8192
    assert get_system("atlas-950-superpod").levels[0].latency_s == pytest.approx(2.1e-6)
    assert get_system("tpu-v5p-pod").scale_up_size == 8960
    dgx = get_system("dgx-h100")
    assert dgx.power_per_chip_w == 1275 and dgx.levels[0].bw == 450e9
    a100 = get_system("dgx-a100")
    assert a100.chip.id == "nvidia-a100-sxm4-80gb" and a100.levels[0].bw == 300e9 and a100.levels[1].bw == 25e9
    assert a100.power_per_chip_w == pytest.approx(6500 / 8)
    assert get_system("hgx-h800").levels[0].bw == 200e9


def test_every_numeric_system_field_has_source_and_confidence():
    keys = ("scale_up_size", "scale_up_bw", "scale_up_latency", "scale_out_bw", "scale_out_latency",
            "power_per_chip_w", "price_per_chip_usd")
    for s in systems().values():
        values = {"power_per_chip_w": s.power_per_chip_w, "price_per_chip_usd": s.price_per_chip_usd}
        for key in keys:
            prov = s.sources[key]
            assert prov.confidence in CONFIDENCE, (s.id, key)
            if values.get(key, 0) is not None:
                assert prov.source, (s.id, key)
            else:
                assert prov.note, (s.id, key)      # a missing number says why
            for sid in prov.source:
                assert source_text(sid)
            if "derived" in prov.source or "assumption" in prov.source:
                assert prov.note, (s.id, key)
        for lvl in s.levels:
            assert lvl.bw > 0 and lvl.latency_s > 0


def test_systems_yaml_requires_provenance():
    with pytest.raises(ValidationError):
        StrictSourced(value=1.0, source=[], confidence="low")
    with pytest.raises(ValidationError):
        StrictSourced(value=1.0, source=["derived"], confidence="low")   # derived needs the formula
    with pytest.raises(ValidationError):
        StrictSourced(value=None, source=[], confidence="low")           # null needs a note


# ---------------------------------------------------------------- inline systems


def test_inline_system_bits_vs_bytes():
    s = resolve_system({"chip": "nvidia-h800-sxm5", "scale_up": {"size": 8, "bandwidth": "200 GB/s"},
                        "scale_out": {"bandwidth": "400 Gb/s"}})
    assert s.levels[0].size == 8
    assert s.levels[0].bw == 200e9
    assert s.levels[1].bw == 50e9
    assert s.levels[1].size is None
    # an NVIDIA chip's levels take NCCL's tree LL step (NVIDIA/nccl src/graph/tuning.cc hwLatencies: NVLink 0.6 us,
    # network 5.0 us), as the catalog's DGX / HGX systems do
    assert s.levels[0].latency_s == 0.6e-6 and s.levels[1].latency_s == 5e-6
    assert s.sources["scale_up_latency"].source == ("derived",)
    assert s.sources["scale_up_bw"].source == ("inline",)


def test_inline_system_latency_defaults_by_library():
    """A level stating no latency takes its vendor's collective library's step (resolve.py LIBRARY_LATENCY_S): RCCL's
    tuning_model_5 tree LL on AMD (ROCm/rccl src/graph/tuning.cc: xGMI 0.9 us, network 10.5 us); a chip of another
    vendor keeps the assumed 2 us / 5 us."""
    amd = resolve_system({"chip": "amd-mi300x", "scale_up": {"size": 8, "bandwidth": "448 GB/s"},
                          "scale_out": {"bandwidth": "400 Gb/s"}})
    assert amd.levels[0].latency_s == 0.9e-6 and amd.levels[1].latency_s == 10.5e-6
    other = resolve_system({"chip": {"name": "x", "bf16_tflops": 500, "hbm": "64 GiB", "hbm_bandwidth": "2 TB/s",
                                     "vendor": "Other", "scale_up_bandwidth": "100 GB/s",
                                     "scale_out_bandwidth": "100 Gb/s"}, "scale_up": {"size": 8}})
    assert other.levels[0].latency_s == 2e-6 and other.levels[1].latency_s == 5e-6
    assert other.sources["scale_up_latency"].source == ("assumption",)
    stated = resolve_system({"chip": "amd-mi300x", "scale_up": {"size": 8, "latency": "3 us"}})
    assert stated.levels[0].latency_s == 3e-6


def test_inline_chip_vendor_from_family():
    """An inline chip stating a family but no vendor takes the family's vendor (resolve.py inline_vendor): a
    ``nvidia-hopper`` chip is NVIDIA, so its levels take NCCL's tree LL step (NVIDIA/nccl src/graph/tuning.cc
    hwLatencies: NVLink 0.6 us, network 5.0 us) and NCCL's algorithms, not the plain ring at the assumed 2 us; an
    ``amd-*`` one RCCL's (0.9 / 10.5 us); no family, no vendor: the assumed 2 us / 5 us and the ring."""
    from trainsim.perf.collectives import collective_library
    chip = {"name": "x", "bf16_tflops": 989, "hbm": "80 GB", "hbm_bandwidth": "3.35 TB/s",
            "scale_up_bandwidth": "450 GB/s", "scale_out_bandwidth": "400 Gb/s"}

    def system(**kw):
        return resolve_system({"chip": {**chip, **kw}, "scale_up": {"size": 8}})
    hopper = system(family="nvidia-hopper")
    assert hopper.chip.vendor == "NVIDIA" and collective_library(hopper) == "nccl"
    assert (hopper.levels[0].latency_s, hopper.levels[1].latency_s) == (0.6e-6, 5.0e-6)
    amd = system(family="amd-cdna3")
    assert amd.chip.vendor == "AMD" and (amd.levels[0].latency_s, amd.levels[1].latency_s) == (0.9e-6, 10.5e-6)
    assert system(family="ascend-910").chip.vendor == "Huawei (HiSilicon)"
    bare = system()
    assert bare.chip.vendor == "inline" and collective_library(bare) == "ring"
    assert (bare.levels[0].latency_s, bare.levels[1].latency_s) == (2e-6, 5e-6)
    # a catalog vendor in another case is spelt as the catalog spells it (the library tables key on it)
    assert system(vendor="nvidia").chip.vendor == "NVIDIA" and system(vendor="nvidia").levels[0].latency_s == 0.6e-6
    assert system(vendor="Huawei", family="ascend-910").chip.vendor == "Huawei (HiSilicon)"
    # a vendor the catalog does not know is kept (the user's own chip borrowing a family's calibration)
    assert system(vendor="Acme", family="nvidia-hopper").chip.vendor == "Acme"


def test_inline_chip_vendor_contradicting_family_is_input_error():
    with pytest.raises(TrainsimError, match="contradicts family 'nvidia-hopper'") as e:
        resolve_system({"chip": {"name": "x", "bf16_tflops": 989, "hbm": "80 GB", "hbm_bandwidth": "3.35 TB/s",
                                 "vendor": "AMD", "family": "nvidia-hopper", "scale_up_bandwidth": "450 GB/s",
                                 "scale_out_bandwidth": "400 Gb/s"}, "scale_up": {"size": 8}})
    assert "system.chip.vendor" in str(e.value) and len(str(e.value).splitlines()) == 1


def test_inline_chip_and_defaults_from_chip():
    s = resolve_system({"chip": {"name": "x", "bf16_tflops": 989, "fp8_tflops": 1979, "hbm": "80 GiB",
                                 "hbm_bandwidth": "3.35 TB/s", "scale_up_bandwidth": "450 GB/s",
                                 "scale_out_bandwidth": "400 Gb/s", "tdp_w": 700},
                        "scale_up": {"size": 8}})
    assert s.chip.peak_flops == {"bf16": 989e12, "fp8": 1979e12}
    assert s.chip.hbm_bytes == 80 * 2**30 and s.chip.hbm_bw == 3.35e12
    assert s.levels[0].bw == 450e9 and s.levels[1].bw == 50e9
    assert s.power_per_chip_w == pytest.approx(980)
    c = resolve_chip("ascend-910c")
    assert c is get_chip("ascend-910c")


def test_base_override_and_inter_site():
    s = resolve_system({"base": "hgx-h800", "scale_up": {"bandwidth": "160 GB/s"}})
    assert s.scale_up_size == 8 and s.levels[0].bw == 160e9 and s.levels[1].bw == 50e9
    assert s.chip.id == "nvidia-h800-sxm5"
    s = resolve_system({"base": "cloudmatrix-384", "inter_site": {"size": 3840, "bandwidth": "100 Gb/s"}})
    assert [lvl.name for lvl in s.levels] == ["scale-up", "scale-out", "inter-site"]
    assert s.levels[1].size == 3840 and s.levels[2].size is None
    assert s.levels[2].bw == 12.5e9 and s.levels[2].latency_s == 1e-3
    assert "power_per_chip_w" in s.ranges          # unchanged fields keep their ranges
    s = resolve_system({"base": "dgx-h100", "chip": "nvidia-h200-sxm"})
    assert s.levels[0].bw == 450e9 and s.chip.hbm_bytes == 141 * 2**30
    assert resolve_system("gb200-nvl72") is get_system("gb200-nvl72")


def test_system_from_yaml_file(tmp_path):
    (tmp_path / "sys.yaml").write_text("chip: ascend-910c\nscale_up: {size: 384}\n")
    s = resolve_system("sys.yaml", base_dir=tmp_path)
    assert s.scale_up_size == 384 and s.levels[0].bw == 392e9 and s.levels[1].bw == 50e9


@pytest.mark.parametrize("value, field, text", [
    ({"chip": "nvidia-h100-sxm5", "scale_up": {"size": 8}, "scale_out": {"bandwidth": "400 Gbx"}},
     "system.scale_out.bandwidth", "400 Gbx"),
    ({"chip": "nvidia-h100-sxm5", "scale_up": {"size": 8, "bandwidth": "200 GB"}},
     "system.scale_up.bandwidth", "200 GB"),
    ({"chip": {"name": "x", "bf16_tflops": 100, "hbm": "80 GB/s", "hbm_bandwidth": "1 TB/s"},
      "scale_up": {"size": 8}}, "system.chip.hbm", "80 GB/s"),
    ({"chip": "nvidia-h100-sxm5", "scale_up": {"size": 0}}, "system.scale_up.size", "0"),
])
def test_bad_values_give_one_line_errors(value, field, text):
    with pytest.raises(TrainsimError) as info:
        resolve_system(value)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(field + ":") and text in msg and "expected" in msg


def test_unknown_keys_are_errors_with_close_matches():
    with pytest.raises(TrainsimError, match=r"system.scale_up: unknown key 'bandwith'; did you mean bandwidth"):
        resolve_system({"chip": "nvidia-h100-sxm5", "scale_up": {"size": 8, "bandwith": "1 GB/s"}})
    with pytest.raises(TrainsimError, match=r"system: unknown key 'scaleup'"):
        resolve_system({"chip": "nvidia-h100-sxm5", "scaleup": {"size": 8}})
    with pytest.raises(TrainsimError, match=r"system.chip: unknown key 'hbm_bw'; did you mean .*hbm_bandwidth"):
        resolve_system({"chip": {"name": "x", "bf16_tflops": 1, "hbm": 1, "hbm_bw": 1}, "scale_up": {"size": 8}})
    with pytest.raises(TrainsimError, match=r"system: unknown system 'dgx-h10'"):
        resolve_system("dgx-h10")


def test_inline_system_with_unusable_or_incomplete_chip():
    with pytest.raises(TrainsimError, match="has no sourced BF16 peak"):
        resolve_system({"chip": "kunlunxin-p800", "scale_up": {"size": 8}})
    with pytest.raises(TrainsimError, match="system.scale_out: .*no sourced scale-out bandwidth"):
        resolve_system({"chip": "google-tpu-v4", "scale_up": {"size": 64}})


# ---------------------------------------------------------------- CLI


def test_cli_catalog_tables_and_json():
    from trainsim.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["catalog", "chips"])
    assert res.exit_code == 0, res.output
    assert "nvidia-h100-sxm5" in res.output and "ascend-910c" in res.output
    res = runner.invoke(app, ["catalog", "chips", "--json"])
    rows = json.loads(res.output)
    assert [r["id"] for r in rows] == list(chips())
    res = runner.invoke(app, ["catalog", "systems", "--json"])
    assert {r["id"]: r["scale_up_size"] for r in json.loads(res.output)}["cloudmatrix-384"] == 384
    res = runner.invoke(app, ["catalog", "models", "--json"])
    assert res.exit_code == 0 and any(r["id"] == "deepseek-v3" for r in json.loads(res.output))
    res = runner.invoke(app, ["catalog", "show", "ascend-910c", "--json"])
    info = json.loads(res.output)
    assert info["kind"] == "chip" and info["ranges"][0]["field"] == "bf16_flops"
    assert "cm384-paper" in info["sources"]
    res = runner.invoke(app, ["catalog", "show", "cloudmatrix-384"])
    assert res.exit_code == 0 and "559 kW" in res.output


def test_cli_unknown_id_exits_2_with_one_line():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-m", "trainsim", "catalog", "show", "h100"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown" in lines[0] and "h100" in lines[0]


def test_catalog_numbers_one_format():
    """The catalog's one number format (catalog/describe.fmt): chip counts grouped by thousands like every count
    (15,488 chips, not '1.549e+04'), a fractional count left alone, quantities to 4 significant digits below
    10,000 (3,350 GB/s, 812.5 W; numfmt.in_unit) and grouped whole numbers above (14.4 TB/s = 14,400 GB/s, 10 PFLOP/s =
    10,000 TFLOP/s), dollars grouped."""
    from trainsim.catalog.describe import fmt
    assert fmt(15488, "count") == "15,488" and fmt(8192.0, "count") == "8,192" and fmt(8, "count") == "8"
    assert fmt(1.5, "count") == "1.5"
    assert fmt(3.35e12, "bytes_per_s") == "3,350 GB/s" and fmt(812.5, "watts") == "812.5 W"
    assert fmt(14.4e12, "bytes_per_s") == "14,400 GB/s" and fmt(1e16, "flops") == "10,000 TFLOP/s"
    assert fmt(33625.0, "usd") == "33,625 USD" and fmt(None, "count") == "-"


def test_catalog_show_pod_sizes_grouped():
    """`catalog show` printed the Atlas 960 SuperPoD's 15,488-chip domain as '1.549e+04' and the Atlas 950's 8,192
    as '8192' (scale_up_size, its range and the research file's chips_per_scaleup_domain): all grouped now."""
    from trainsim.cli import app

    def cells(out: str, field: str) -> list[list[str]]:
        return [[c.strip() for c in ln.split("│")[1:-1]] for ln in out.splitlines()
                if ln.startswith("│") and ln.split("│")[1].strip() == field]

    out = CliRunner().invoke(app, ["catalog", "show", "atlas-960-superpod"]).output
    assert cells(out, "scale_up_size")[0][1] == "15,488" and cells(out, "chips_per_scaleup_domain")[0][1] == "15,488"
    out = CliRunner().invoke(app, ["catalog", "show", "atlas-950-superpod"]).output
    assert [r[1] for r in cells(out, "scale_up_size")] == ["8,192", "1,024 / 8,192 / 8,192"]
    assert cells(out, "chips_per_scaleup_domain")[0][1] == "8,192"
    out = CliRunner().invoke(app, ["catalog", "systems"]).output
    assert cells(out, "atlas-960-superpod")[0][2] == "15,488" and cells(out, "tpu-v4-pod")[0][2] == "4,096"
