"""Where batches run. Every executor calls the same :func:`~trainsim.sweep.evaluate.evaluate_batch` on
``(spec, indices)`` and yields ``(indices, rows)`` as batches finish (in any order; the writer sorts).

* :class:`InProcess` -- the default: this process, no server;
* :class:`DaskExecutor` -- ``dask.distributed``: :meth:`DaskExecutor.local` starts a LocalCluster of N worker
  processes with one thread each; :meth:`DaskExecutor.connect` joins a running cluster (``dask scheduler`` on one
  machine, ``MALLOC_ARENA_MAX=1 dask worker tcp://HOST:8786 --nthreads 1`` on each worker machine; the variable
  makes plan searches in worker threads 1.5-2x faster, see :func:`~trainsim.sweep.evaluate.tune_malloc`).
  The spec travels with each batch (scattered once when large); a bounded window of batches is in flight, so
  memory stays flat for 10^5-point sweeps.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import TrainsimError
from .evaluate import evaluate_batch

#: the most local worker processes `--workers` starts: each process holds its own copy of the engine, so more
#: processes than a large host's cores only add memory (a bound, not a recommendation; use --scheduler to scale)
MAX_LOCAL_WORKERS = 512


class InProcess:
    """Evaluates sweep batches one after another in this process."""

    mode = "in-process"

    @property
    def workers(self) -> int:
        """One worker: this process."""
        return 1

    def map(self, spec, batches: Iterable[list[int]]) -> Iterator[tuple[list[int], list[dict]]]:
        """Yield each batch of point indices with its evaluated rows, in order."""
        for b in batches:
            yield b, evaluate_batch(spec, b)

    def close(self) -> None:
        """Nothing to release."""
        pass


def _distributed():
    try:
        import distributed
    except ImportError:  # pragma: no cover - depends on the environment
        raise TrainsimError("--workers / --scheduler run on Dask: pip install 'trainsim[sweep]' "
                            "(dask[distributed], pyarrow)") from None
    return distributed


class DaskExecutor:
    """Batches as Dask tasks on ``client``; closes the client (and a cluster it started) on :meth:`close`."""

    def __init__(self, client, cluster=None, mode: str = "dask"):
        self.client = client
        self.cluster = cluster
        self.mode = mode
        self._live: set = set()   # futures in flight (cancelled on close)

    @classmethod
    def local(cls, n_workers: int) -> "DaskExecutor":
        """An executor on a new local Dask cluster of ``n_workers`` single-threaded processes (loopback only)."""
        import logging

        d = _distributed()   # first: without the sweep extra `import dask` below raised ModuleNotFoundError (exit 3)
        import dask
        # one malloc arena: the task thread then allocates from the main heap, which keeps freed memory between
        # tasks (see evaluate.tune_malloc); a thread arena's sub-heaps are unmapped whenever a search frees them
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_ARENA_MAX": 1}):
            cluster = d.LocalCluster(n_workers=int(n_workers), threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address="127.0.0.1:0",  # loopback only
                                     silence_logs=logging.ERROR)
        return cls(d.Client(cluster), cluster, mode=f"local cluster, {n_workers} workers")

    @classmethod
    def connect(cls, address: str, timeout: float = 20.0) -> "DaskExecutor":
        """An executor on the Dask scheduler at ``address``; an unreachable one is a one-line error."""
        d = _distributed()
        try:
            client = d.Client(address, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise TrainsimError(f"could not reach a Dask scheduler at {address} ({exc.__class__.__name__}); start one "
                                f"with `dask scheduler` and workers with `dask worker {address}`",
                                field="--scheduler") from None
        return cls(client, None, mode=f"cluster at {address}")

    @property
    def workers(self) -> int:
        """Worker threads the scheduler reports (at least 1)."""
        info = self.client.scheduler_info()
        n = sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values())
        return max(1, n)

    def map(self, spec, batches: Iterable[list[int]]) -> Iterator[tuple[list[int], list[dict]]]:
        """Yield each batch of point indices with its evaluated rows as workers finish them, keeping a window of
        batches in flight."""
        d = _distributed()
        it = iter(batches)
        window = max(4, 3 * self.workers)
        import pickle

        # a spec of a few KB travels with each batch; a large one (long sample axes) is scattered once
        spec_f = spec
        if len(pickle.dumps(spec)) > 256 * 1024:
            spec_f = self.client.scatter(spec, broadcast=True, hash=False)
            self._live.add(spec_f)
        owner: dict = {}

        def submit(b):
            f = self.client.submit(evaluate_batch, spec_f, b, pure=False)
            owner[f.key] = b
            self._live.add(f)
            return f

        first = [submit(b) for _, b in zip(range(window), it)]
        if not first:
            return
        ac = d.as_completed(first)
        for fut in ac:
            rows = fut.result()
            b = owner.pop(fut.key)
            self._live.discard(fut)
            fut.release()
            yield b, rows
            nxt = next(it, None)
            if nxt is not None:
                ac.add(submit(nxt))

    def close(self) -> None:
        """Cancel batches in flight, close the client and any local cluster."""
        try:
            if self._live:   # batches in flight (and a scattered spec): released before the workers go
                self.client.cancel(list(self._live))
        finally:
            self._live = set()
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()


def make_executor(workers: int = 0, scheduler: str | None = None):
    """In-process with neither, a local Dask cluster of ``workers``, or the cluster at ``scheduler``
    (not both)."""
    if workers and scheduler:
        raise TrainsimError("give --workers N or --scheduler ADDRESS, not both")
    if scheduler:
        return DaskExecutor.connect(scheduler)
    if workers and workers > 0:
        return DaskExecutor.local(workers)
    return InProcess()
