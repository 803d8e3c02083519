"""Which fitted constant a run gets: its chip model with its stack, its chip model, its family with its stack, its
family, its vendor's pool, the pooled default (validate/calibrate.py; perf/calibration.py calib_for). Tables
written here by hand."""
from __future__ import annotations

import pytest

from trainsim.perf.calibration import calib_for, load_calibration
from trainsim.validate.calibrate import CalRun, Level

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


# ---------------------------------------------------------------- the per-vendor pool

VENDOR_TABLE = """
default: {gemm_eff: 0.68, gemm_eff_fp8: 0.50}
vendors:
  nvidia: {gemm_eff: 0.60, fitted_on_gemm_eff: 47, source: hand-written}
families:
  nvidia-hopper: {gemm_eff: 0.58}
chips:
  nvidia-b200-hgx: {family: nvidia-blackwell, gemm_eff_fp8: 0.42}
"""


def test_unfitted_family_takes_its_vendors_pool_not_the_global_one(tmp_path):
    """Blackwell BF16 has no fit of its own: it takes NVIDIA's pool (0.60), not the global one (0.68); Hopper keeps
    its own (0.58); a B200 chip entry starts from that pool; AMD, Google and a family of no vendor have no pool and
    take the global one. FP8, with no NVIDIA pool, is the global 0.50 for Blackwell."""
    p = tmp_path / "c.yaml"
    p.write_text(VENDOR_TABLE)
    t = load_calibration(str(p))
    assert calib_for("nvidia-blackwell", t).gemm_eff == 0.60
    assert calib_for("nvidia-blackwell", t).gemm_eff_fp8 == 0.50
    assert calib_for("nvidia-rubin", t).gemm_eff == 0.60          # a user's family of a catalog vendor
    assert calib_for("nvidia-hopper", t).gemm_eff == 0.58
    b200 = calib_for("nvidia-blackwell", t, chip="nvidia-b200-hgx")
    assert (b200.gemm_eff, b200.gemm_eff_fp8) == (0.60, 0.42)
    assert calib_for("nvidia-blackwell", t, framework="megatron-bridge-2026", chip="nvidia-gb200").gemm_eff == 0.60
    for fam in ("amd-cdna3", "google-tpu", "ascend-950", "other"):
        assert calib_for(fam, t).gemm_eff == 0.68, fam


class _Stub:
    """A calibration run whose prediction is reported x gemm_eff / its own best efficiency ``best``: its L1 log loss
    |log(x / best)| is least at x = best, so a group's fit is the median of its runs' ``best`` (an odd count)."""

    def __init__(self, name, family, best):
        self.name, self.family, self.chip, self.best = name, family, name, best
        self.precision, self.framework, self.reported, self.moe, self.bf16_eff = "bf16", "fw", 1000.0, False, None

    vendor = CalRun.vendor
    chain = CalRun.chain

    def predict(self, calib):
        return self.reported * calib.gemm_eff / self.best


def _stub_runs():
    """NVIDIA: 3 Hopper runs at 0.55, 2 Ampere at 0.65 (5 runs: a pool, median 0.55; Ampere has no fit of its own);
    Ascend: 4 at 0.80; AMD: 2 at 0.40 (no pool). All 11: median 0.65. Each a chip model of its own."""
    return ([_Stub(f"h{i}", "nvidia-hopper", 0.55) for i in range(3)]
            + [_Stub(f"a{i}", "nvidia-ampere", 0.65) for i in range(2)]
            + [_Stub(f"n{i}", "ascend-910", 0.80) for i in range(4)]
            + [_Stub(f"m{i}", "amd-cdna4", 0.40) for i in range(2)])


def test_fit_pools_per_vendor_on_three_runs_or_more():
    from trainsim.perf.calibration import Calib
    from trainsim.validate.calibrate import EFF_BOUNDS, _fit_level

    runs = _stub_runs()
    lvl = _fit_level(runs, {"bf16": "gemm_eff"}, EFF_BOUNDS, lambda r: Calib.defaults())
    tol = 0.005   # golden-section tolerance (0.004)
    assert lvl.pooled["bf16"] == pytest.approx(0.65, abs=tol)
    assert lvl.eff[("nvidia", "bf16")] == pytest.approx(0.55, abs=tol)
    assert lvl.eff[("ascend", "bf16")] == pytest.approx(0.80, abs=tol)
    assert ("amd", "bf16") not in lvl.eff and ("nvidia-ampere", "bf16") not in lvl.eff
    ampere, amd = runs[3], runs[9]
    # Ampere (2 runs) takes NVIDIA's pool, not the global median; AMD (2 runs, no pool) the global one
    assert lvl.value(ampere.chain, "bf16", "fw", 0.0) == lvl.eff[("nvidia", "bf16")]
    assert lvl.value(amd.chain, "bf16", "fw", 0.0) == lvl.pooled["bf16"]


def test_held_out_run_of_an_unfitted_family_takes_its_vendors_pool():
    from trainsim.perf.calibration import Calib
    from trainsim.validate.calibrate import EFF_BOUNDS, _held_out_value

    runs = _stub_runs()
    base = lambda r: Calib.defaults()  # noqa: E731
    ampere, amd = runs[3], runs[9]
    x, note = _held_out_value(ampere, [r for r in runs if r is not ampere], "gemm_eff", EFF_BOUNDS, base)
    assert x == pytest.approx(0.55, abs=0.005) and "nvidia pool" in note     # 3 x 0.55 and 1 x 0.65
    x, note = _held_out_value(amd, [r for r in runs if r is not amd], "gemm_eff", EFF_BOUNDS, base)
    # the 10 others: 0.40, 3 x 0.55, 2 x 0.65, 4 x 0.80: any value in [0.55, 0.65] is an L1 minimum
    assert 0.55 - 0.005 <= x <= 0.65 + 0.005 and "pooled" in note


def test_calibration_file_keeps_the_vendor_pool_with_its_provenance(tmp_path):
    """scripts/calibrate.py's writer puts the pool under ``vendors`` with its run count and source, and the loader
    gives it to an unfitted NVIDIA family."""
    import yaml

    from trainsim.validate.calibrate import Fit, LooResult, calibration_yaml

    lvl = Level({"bf16": "gemm_eff"}, pooled={"bf16": 0.65},
                eff={("nvidia", "bf16"): 0.55, ("nvidia-hopper", "bf16"): 0.55, ("ascend", "bf16"): 0.8,
                     ("ascend-910", "bf16"): 0.8})
    text = calibration_yaml(Fit(lvl), LooResult(), _stub_runs())
    doc = yaml.safe_load(text)
    assert doc["vendors"]["nvidia"]["gemm_eff"] == 0.55 and doc["vendors"]["nvidia"]["fitted_on_gemm_eff"] == 5
    assert "nvidia-* chip family" in doc["vendors"]["nvidia"]["source"]
    assert set(doc["vendors"]) == {"nvidia", "ascend"} and "nvidia" not in doc["families"]
    assert doc["families"]["nvidia-hopper"]["fitted_on_gemm_eff"] == 3
    p = tmp_path / "c.yaml"
    p.write_text(text)
    t = load_calibration(str(p))
    assert calib_for("nvidia-blackwell", t).gemm_eff == 0.55 and calib_for("google-tpu", t).gemm_eff == 0.65
