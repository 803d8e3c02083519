"""Every number a reader sees is generated: the README blocks that scripts/readme_scenarios.py writes from the
engine and its data (the software-stack profiles, the serving stacks, the DeepSeek-V3 whole-run check, the published plans' memory)
must be what the script makes now; a change that moves them without regenerating the README fails here. (The
scenario table: tests/test_scenarios.py; the accuracy table and calibration file: tests/test_accuracy.py.)"""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    return load_script("readme_scenarios")


def section(tag: str) -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split(f"<!-- {tag}:begin -->\n", 1)[1].split(f"\n<!-- {tag}:end -->", 1)[0]


@pytest.mark.parametrize("tag, maker", [("frameworks", "frameworks_table"), ("serving-stacks", "stacks_table"),
                                        ("dsv3", "deepseek_check"),
                                        ("plans-fit", "plans_fit")])
def test_readme_block_is_generated(script, tag, maker):
    want = getattr(script, maker)()
    assert section(tag) == want, f"README {tag} block is stale: run python scripts/readme_scenarios.py"



def test_readme_rl_table_is_generated():
    """The RL whole-step table (validation/rl/ against the post-training model) is what scripts/calibrate_inference.py
    writes now (`--rl-table` rewrites just it): a training-calibration change moves these steps too."""
    mod = load_script("calibrate_inference")
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- rl-table:start -->\n", 1)[1].split("\n<!-- rl-table:end -->", 1)[0]
    assert block == mod.rl_table(), "README RL table is stale: run python scripts/calibrate_inference.py --rl-table"
