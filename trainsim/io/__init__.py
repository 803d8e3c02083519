"""Safe file input and output at the edge: bounded UTF-8 reading, a hardened YAML loader and atomic writes.

Every spec file a user gives (run, sweep, serving, post-training, scenario, model, system) is read through
:func:`read_yaml`; every output file is written through :func:`write_atomic`.
"""
from .files import read_text, write_atomic, check_output_path
from .yamlsafe import load_yaml, read_yaml, LIMITS

__all__ = ["read_text", "write_atomic", "check_output_path", "load_yaml", "read_yaml", "LIMITS"]
