"""Questions built on the engine: whole-run economics, goodput at scale, sizing, capacity, sensitivity,
uncertainty ranges, and the seed scenarios (``scenarios/*.yaml``, handlers in :mod:`trainsim.scenario.kinds`)."""
