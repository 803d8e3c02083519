"""The package version (one place; :data:`trainsim.__version__` and ``trainsim --version`` read it)."""
__version__ = "0.1.0"
