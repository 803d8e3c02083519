"""Scenario data files (assumptions.yaml)."""
