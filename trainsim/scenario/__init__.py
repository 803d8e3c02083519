"""Questions built on the engine: whole-run economics, goodput at scale, sizing, capacity, sensitivity,
uncertainty ranges, and the seed scenarios (``scenarios/*.yaml``, one module per kind in :mod:`trainsim.scenario.kinds`)."""
