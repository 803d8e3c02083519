"""Which fitted constant a run gets: its chip model with its stack, its chip model, its family with its stack, its
family, the pooled default (validate/calibrate.py; perf/calibration.py calib_for). Tables written here by hand."""
from __future__ import annotations

import pytest

from trainsim.perf.calibration import calib_for, load_calibration
from trainsim.validate.calibrate import Level

TABLE = """
default: {gemm_eff_fp8: 0.50}
families:
  nvidia-blackwell: {gemm_eff_fp8: 0.46}
chips:
  nvidia-gb300: {family: nvidia-blackwell, gemm_eff_fp8: 0.62}
frameworks:
  megatron-bridge-2026:
    nvidia-blackwell: {gemm_eff_fp8: 0.51}
    nvidia-gb300: {gemm_eff_fp8: 0.63}
"""


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    p = tmp_path_factory.mktemp("cal") / "calibration.yaml"
    p.write_text(TABLE)
    return load_calibration(str(p))


@pytest.mark.parametrize("chip,framework,expected", [
    ("nvidia-gb300", "megatron-bridge-2026", 0.63),   # chip model with its stack
    ("nvidia-gb300", "megatron-bridge-2025", 0.62),   # chip model
    ("nvidia-gb200", "megatron-bridge-2026", 0.51),   # family with its stack
    ("nvidia-gb200", None, 0.46),                     # family
])
def test_most_specific_first(table, chip, framework, expected):
    assert calib_for("nvidia-blackwell", table, framework=framework, chip=chip).gemm_eff_fp8 == expected


def test_unknown_family_takes_the_default(table):
    assert calib_for("amd-cdna3", table, chip="amd-mi300x").gemm_eff_fp8 == 0.50


def test_a_chip_entry_keeps_its_familys_other_constants(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("default: {gemm_eff: 0.65}\nfamilies:\n  nvidia-hopper: {gemm_eff: 0.60, gemm_eff_fp8: 0.52}\n"
                 "chips:\n  nvidia-h800: {family: nvidia-hopper, gemm_eff: 0.70}\n")
    c = calib_for("nvidia-hopper", load_calibration(str(p)), chip="nvidia-h800")
    assert (c.gemm_eff, c.gemm_eff_fp8) == (0.70, 0.52)


def test_fitted_level_walks_the_chain():
    lvl = Level({"fp8": "gemm_eff_fp8"}, pooled={"fp8": 0.5}, eff={("nvidia-blackwell", "fp8"): 0.46,
                                                                     ("nvidia-gb300", "fp8"): 0.62},
                fw_eff={("nvidia-blackwell", "fp8", "fw"): 0.51})
    assert lvl.value(("nvidia-gb300", "nvidia-blackwell"), "fp8", "fw", 0.0) == 0.62
    assert lvl.value(("nvidia-gb200", "nvidia-blackwell"), "fp8", "fw", 0.0) == 0.51
    assert lvl.value(("nvidia-gb200", "nvidia-blackwell"), "fp8", None, 0.0) == 0.46
    assert lvl.value(("amd-mi300x", "amd-cdna3"), "fp8", None, 0.0) == 0.5


def test_defaults_are_the_constants_file(monkeypatch):
    """Calib has no default values of its own: Calib.defaults() is constants.yaml's default entry (values read
    here from the YAML text, not through the loader), and a field missing there is refused, not filled in."""
    from importlib import resources

    import yaml

    from trainsim.errors import TrainsimError
    from trainsim.perf import calibration as cal

    doc = yaml.safe_load(resources.files("trainsim.perf").joinpath("data/constants.yaml").read_text())
    d = cal.Calib.defaults()
    assert d.gemm_tile_m == doc["default"]["gemm_tile_m"]["value"] == 128.0
    assert d.coll_eff == tuple(doc["default"]["coll_eff"]["value"])
    assert d.host_link_bw == float(doc["default"]["host_link_bw"]["value"]) == 50e9
    with pytest.raises(TypeError):
        cal.Calib()   # no value lives in the dataclass
    const, fams = cal._constants()
    monkeypatch.setattr(cal, "_constants", lambda: ({k: v for k, v in const.items() if k != "mem_eff"}, fams))
    cal._default_calib.cache_clear()
    try:
        with pytest.raises(TrainsimError, match="mem_eff"):
            cal._default_calib()
    finally:
        monkeypatch.undo()
        cal._default_calib.cache_clear()


def test_calibration_inputs_name_each_constants_origin():
    """The inputs table of a B200 estimate: Blackwell's GEMM tile (256 rows, the tcgen05 2-SM MMA), 74 SM pairs and
    148 SMs are constants.yaml's family entries (read here from the YAML text), not fitted values; gemm_eff is
    calibration.yaml's; a field neither sets is the default. Before, every value that differed from the default
    entry was labelled 'fitted by scripts/calibrate.py'."""
    from importlib import resources

    import yaml

    from trainsim.report.sources import calibration_inputs

    text = lambda f: yaml.safe_load(resources.files("trainsim.perf").joinpath(f"data/{f}").read_text())  # noqa: E731
    bw = text("constants.yaml")["families"]["nvidia-blackwell"]
    rows = {r["input"]: r for r in calibration_inputs("nvidia-blackwell", chip="nvidia-b200")}
    for name in ("gemm_tile_m", "compute_units", "sm_count"):
        assert rows[name]["value"] == str(float(bw[name]["value"])), name
        assert rows[name]["confidence"] == "constant" and "families.nvidia-blackwell" in rows[name]["source"], name
    assert (rows["gemm_tile_m"]["value"], rows["compute_units"]["value"]) == ("256.0", "74.0")
    assert rows["gemm_eff"]["confidence"] == "fitted" and "calibration.yaml" in rows["gemm_eff"]["source"]
    assert rows["mem_eff"]["confidence"] == "default"
    assert "gemm_eff" not in bw and "mem_eff" not in bw
