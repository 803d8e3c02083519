"""What the catalog-regeneration scripts share (``megatron_arg_names.py``, ``primus_config_keys.py``): reading
files of a pinned commit from a git directory, and printing a sorted name -> where listing under its header."""
from __future__ import annotations

import subprocess


def rev_parse(git_dir: str, rev: str) -> str:
    """The full commit id of ``rev`` in ``git_dir``."""
    return subprocess.run(["git", "--git-dir", git_dir, "rev-parse", rev], check=True, capture_output=True,
                          text=True).stdout.strip()


def show(git_dir: str, rev: str, path: str) -> str:
    """The text of ``path`` at ``rev``."""
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"{rev}:{path}"], check=True, capture_output=True,
                          text=True).stdout


def print_listing(header: list[str], where: dict[str, str]) -> None:
    """The listing a test data file holds: ``# ``-prefixed header lines, then one ``name<TAB>where`` line per
    name, sorted."""
    for line in header:
        print(f"# {line}")
    for name in sorted(where):
        print(f"{name}\t{where[name]}")
