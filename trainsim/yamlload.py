"""YAML reading, safe only: libyaml's C loader when PyYAML was built with it (about 7x faster on the catalog),
else PyYAML's pure-Python SafeLoader. Both build only plain Python objects (no tags that run code)."""
from __future__ import annotations

import yaml

try:
    from yaml import CSafeLoader as Loader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as Loader


def safe_load(text):
    """``yaml.safe_load`` with the fastest safe loader available."""
    return yaml.load(text, Loader=Loader)
