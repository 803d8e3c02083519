"""Scenario kinds, one module each (``scenarios/S1.yaml`` ... ``S9.yaml`` name their ``kind``):

===========================  ==============================================  ====
kind                         module                                          seed
===========================  ==============================================  ====
pretrain-compare             :mod:`.pretrain_compare`                        S1
pretrain-feasibility         :mod:`.pretrain_feasibility`                    S2
run-cost                     :mod:`.run_cost`                                S3
fleet-capacity               :mod:`.fleet_capacity`                          S4
same-job-compare             :mod:`.same_job_compare`                        S5
frontier-sizing              :mod:`.frontier_sizing`                         S6
posttrain_multicluster       :mod:`trainsim.posttrain.scenario`              S7
hardware-sensitivity         :mod:`.hardware_sensitivity`                    S8
interconnect-cut             :mod:`.interconnect_cut`                        S9
===========================  ==============================================  ====

Each module has an ``Inputs`` pydantic model (every default a visible field with a description), ``compute(inputs,
base_dir) -> KindResult`` (numbers, no prose) and ``verdict(result) -> (class, text)``; :func:`.base.register_kind`
ties them into the handler the registry returns. Shared helpers are in :mod:`.base`.
"""
from __future__ import annotations

from . import (fleet_capacity, frontier_sizing, hardware_sensitivity, interconnect_cut,  # noqa: F401 (registers)
               pretrain_compare, pretrain_feasibility, run_cost, same_job_compare)
from .base import KindInputs, KindResult, _job_run, load_doc  # noqa: F401 (public names)

__all__ = ["KindInputs", "KindResult", "load_doc"]
