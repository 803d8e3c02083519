"""Validation against published training runs: ``validate(paths)`` compares predicted and reported tokens/s
per chip (see :mod:`trainsim.validate.reference` for how a reported MFU or step time becomes tokens/s)."""
from .reference import CONVENTIONS, Reference, flops_per_token, reference, reported_tokens_per_s_per_chip
from .runner import Row, ValidationResult, default_runs_dir, validate

__all__ = ["CONVENTIONS", "Reference", "Row", "ValidationResult", "default_runs_dir", "flops_per_token",
           "reference", "reported_tokens_per_s_per_chip", "validate"]
