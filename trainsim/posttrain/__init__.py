"""Post-training across clusters: RL and (multi-teacher) on-policy distillation, per-step timeline and traffic.

Entry points: :func:`trainsim.posttrain.spec.load_posttrain` / :func:`~trainsim.posttrain.spec.parse_posttrain`
(YAML -> spec), :func:`trainsim.posttrain.timeline.evaluate` (spec -> phases, traffic, timeline, totals),
:mod:`trainsim.posttrain.multicluster` (K domain clusters vs one cluster; the WAN break-even bandwidth) and the S7
scenario handler in :mod:`trainsim.posttrain.scenario`.
"""
