"""Packaged catalog data files (YAML); read with importlib.resources."""
