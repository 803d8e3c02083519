"""Design-space sweeps: many run variants, each a full plan search, in-process or on a Dask cluster.

A **sweep spec** (YAML, format v1) is a base run plus axes to vary; every point of the product of the axes is a
run spec that :func:`trainsim.search` (the vectorised plan search) answers. Results stream to Parquet.

.. code-block:: yaml

    name: cm384-hbm-x-scale-out                   # optional
    base: ../benchmarks/runs/longcat2-class-cm384x65.yaml   # a run spec: a path (relative to this file)
                                                  #   or an inline run-spec mapping {model, system, chips, ...}
    axes:                                         # the product of all axes; the LAST axis varies fastest
      system.chip.hbm_bw: {scale: [0.5, 0.75, 1, 1.5, 2]}        # factors of the base value
      system.scale_out.bandwidth: ["100 Gb/s", "200 Gb/s", "400 Gb/s", "800 Gb/s"]   # values (units parsed)
    record: [inputs, time, memory, plan, cost, binding]   # the default; add `breakdown` for per-cause seconds
    assumptions: {rental_usd_per_chip_hour: {ascend-910c: 2.0}}   # optional cost-assumption overrides

**Axis targets** (what an axis varies; the key of an ``axes:`` entry):

* ``chips`` (counts, or whole scale-up domains of each point's system: ``["16 pods", "32 pods"]``, read after a
  ``system`` / ``system.chip`` axis; the stated value is the ``axis.chips`` column, the count the ``chips`` one);
  ``system`` (catalog system id, system YAML path or inline mapping); ``system.chip`` (catalog chip
  id or inline chip: the base system with that chip; bandwidths the system does not override become the chip's);
  ``model`` (catalog id, path or inline mapping);
* numeric system fields, set after the run is resolved (``dataclasses.replace``, chip field and network level
  kept consistent as in ``trainsim sensitivity``): ``system.chip.hbm_bw``, ``system.chip.hbm_bytes``,
  ``system.chip.peak_flops`` (BF16 dense peak; the other precisions scale with it), ``system.scale_up.size``,
  ``system.scale_up.bandwidth``, ``system.scale_up.latency``, ``system.scale_out.bandwidth``,
  ``system.scale_out.latency``, ``system.power_per_chip_w``, ``system.price_per_chip_usd``. Values take units
  (``"3.2 TB/s"``, ``"400 Gb/s"`` -- bits, ``"96 GiB"``, ``"2 us"``) or plain SI numbers; ``{scale: [...]}``
  multiplies the value of the point's system (after any ``system`` / ``system.chip`` axis);
* run-spec keys written into a copy of the base mapping before :func:`trainsim.parse_run`: ``model.KEY[.SUB]``
  (inline model keys, e.g. ``model.layers``, ``model.moe.experts``; the base model must be inline),
  ``training.KEY`` (``tokens``, ``seq_len``, ``global_batch_seqs``, ``global_batch_tokens``, ``precision``,
  ``attention``, ``elementwise_kernels``, ``fp8_recipe``, ``fp8_activations``; setting one batch key removes the
  other; an ``fp8_recipe``, or an ``fp8_activations`` other than none, with a precision other than fp8 is that
  point's input error), ``plan.KEY`` (a fixed plan field or a list of allowed values);
* ``assumptions.KEY``: a cost assumption (``trainsim/scenario/data/assumptions.yaml``) per point.

**Axis values** (the value of an ``axes:`` entry):

* a list ``[a, b, c]`` or ``{values: [a, b, c]}``;
* ``{range: {start, stop, step}}``: start, start + step, ... up to and including ``stop`` when it lands on the grid;
* ``{logspace: {start, stop, num}}``: ``num`` values spaced evenly in log between the two end VALUES (not
  exponents; ``{start: 1e12, stop: 1e14, num: 3}`` gives 1e12, 1e13, 1e14); integer targets round (duplicates dropped);
* ``{scale: LIST | {range: ...} | {logspace: ...}}``: factors of the base value (numeric ``system.*`` targets),
  each 1e-6 .. 1e6;
* ``{catalog: GLOB}`` for ``system`` / ``system.chip``: every catalog id matching the glob (``"nvidia-h*"``, ``"*"``);
* a **joint axis** (values that move together), under any name that is not a target:
  ``NAME: {zip: {TARGET: [..], TARGET2: [..]}}`` (equal lengths), or
  ``NAME: {samples: {n: 32, seed: 0, inputs: {TARGET: DIST, ...}}}`` -- ``n`` random draws of uncertain inputs,
  where DIST is ``catalog`` (the base system's low / nominal / high of ``ranges.yaml``, triangular),
  ``{low, high, dist: uniform | loguniform | triangular, mode?}`` (units allowed), ``{scale: {low, high, dist?}}``
  (factors), or ``{values: [...]}`` (uniform choice). A key ``samples:`` holding ``{n, seed, inputs}``
  directly is the same as ``samples: {samples: {...}}``. Draws are fixed by the seed.

**Points.** Point ``i`` of the product is decoded mixed-radix (last axis fastest) and carries a stable
``point_key`` (a hash of what the point sets). Each point's run is :func:`trainsim.parse_run` of a modified copy of
the base mapping, then numeric system fields by ``dataclasses.replace``, then :func:`trainsim.search`. A point
that cannot be evaluated (no valid plan, e.g. chips not divisible by a fixed ``tp``; no plan fits in memory; an
unusable chip; any error) is a row with ``error_kind`` / ``error`` set; the sweep goes on.

**Columns.** Always: ``point``, ``point_key``, one column per axis target (SI value, catalog id or JSON text;
``TARGET_scale`` for factors; ``axis.TARGET`` where a recorded column has the target's name, e.g. ``axis.plan.tp``
as given next to ``plan.tp`` of the best plan; a samples axis adds its draw index under its name), ``error_kind``
(``no-plan`` | ``no-fit`` | ``input`` | ``exception``) and ``error``. ``record:`` groups (or single columns):
``inputs`` (model, system, chip, chips, seq_len, global_batch_seqs, tokens, hbm_bytes, hbm_bw_bytes_per_s,
peak_bf16_flops_per_s, scale_up_size, scale_up_bw_bytes_per_s, scale_out_bw_bytes_per_s), ``time`` (step_time_s,
tokens_per_s_per_chip, mfu, hfu against the BF16 dense peak; precision, mfu_at_precision, hfu_at_precision against
the dense peak of that precision; days, chip_hours; the definitions are in the file's ``trainsim.sweep.columns``
metadata), ``memory`` (memory_per_chip_bytes, fits), ``plan``
(plan.tp ... plan.node_limit, plans_evaluated, plans_feasible), ``cost`` (cost_rental_usd, cost_capex_usd,
energy_mwh: :func:`trainsim.cost.run_cost` at ideal days, i.e. without failures; ``--price-per-chip-hour``,
``--pue`` and ``--electricity`` override its inputs for the whole sweep), ``binding`` (the largest
cause of the best plan's step time and its share), ``breakdown`` (seconds per cause; not in the default).

**Running.** ``trainsim sweep SWEEP.yaml -o results.parquet`` evaluates in-process; ``--workers N`` starts a
local Dask cluster (N processes, one thread each); ``--scheduler tcp://host:8786`` uses an existing cluster,
started with ``dask scheduler`` on one machine and ``MALLOC_ARENA_MAX=1 dask worker tcp://host:8786 --nthreads 1``
on each worker machine (every worker needs the same trainsim installed, and any model/system files the base run
names by path; ``MALLOC_ARENA_MAX=1`` makes plan searches in worker threads 1.5-2x faster).
One function, :func:`trainsim.sweep.evaluate.evaluate_batch`, evaluates a batch of points in all three modes.
Finished rows go to part files (``results.parquet.parts/``) as batches finish; at the end they are merged,
sorted by ``point``, into one file whose schema metadata holds the sweep spec text, the resolved base run, the
axes and the trainsim version. ``--resume`` skips the points already in the part files. ``trainsim sweep
--summary results.parquet [--deadline-days D] [--plots DIR]`` prints the frontier and writes plots.

Needs the optional extra ``trainsim[sweep]`` (dask[distributed], pyarrow); imported only when a sweep runs.
"""
from __future__ import annotations

from .spec import SweepSpec, load_sweep, parse_sweep
from .runner import run_sweep as _run
from .summary import summarize as _sum

__all__ = ["SweepSpec", "load_sweep", "parse_sweep", "run_sweep", "summarize"]


def run_sweep(*args, **kwargs):
    """See :func:`trainsim.sweep.runner.run_sweep`."""
    return _run(*args, **kwargs)


def summarize(*args, **kwargs):
    """See :func:`trainsim.sweep.summary.summarize`."""
    return _sum(*args, **kwargs)
