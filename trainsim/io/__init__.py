"""Safe file input and output at the edge: bounded UTF-8 reading, a hardened YAML loader and atomic writes.

Every spec file a user gives (run, sweep, serving, post-training, scenario, model, system) is read through
:func:`read_yaml`, and every spec kind through :func:`load_spec_file` (line numbers in its errors); every output
file is written through :func:`write_atomic`.
"""
from .files import read_text, require_file, write_atomic, check_output_path, check_output_dir, check_suffix
from .yamlsafe import load_yaml, load_yaml_lines, read_yaml, LIMITS
from .specfile import load_spec_file, spec_kind, yaml_shape

__all__ = ["read_text", "require_file", "write_atomic", "check_output_path", "check_output_dir", "check_suffix",
           "load_yaml", "load_yaml_lines", "read_yaml",
           "load_spec_file", "spec_kind", "yaml_shape", "LIMITS"]
