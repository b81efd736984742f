"""Batches of a network run in parallel threads, results consumed in batch order.

The batches of a run are independent: every random stream is keyed by the seed, the layer
and the index of the batch's first input (never by a thread or a call count), and every
cache is per batch. So running up to ``workers`` batches at once in threads, and handing
their results to the accumulators in batch order, gives the same bits for every worker
count. Threads suffice: the jitted kernels run without the GIL (``nogil``) and BLAS and
numpy's large array operations release it, so the serial parts of one batch (lowering,
bounds, activations) overlap with the kernels of another.

Memory: at most ``workers`` batches are in flight (submitted and not yet consumed), so
peak memory grows with the worker count, not with the number of inputs.

On a dask.distributed cluster (``accsim run --scheduler``), :func:`ordered_map` given a
``client`` submits the batches as tasks instead (the batch function is sent once,
scattered to every worker, and must be picklable by cloudpickle): the same contract,
results yielded in item order with at most ``workers`` tasks in flight, and the same bits,
because no random stream depends on which worker ran a batch.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from accsim.kernels.threadsafety import concurrent_launch_safe

__all__ = ["default_workers", "ordered_map", "ENV_WORKERS"]

#: Environment variable that sets the number of batch workers (default: the CPU count).
ENV_WORKERS = "ACCSIM_WORKERS"


def default_workers() -> int:
    """``$ACCSIM_WORKERS`` if set, else the number of CPUs available to this process.

    Raises
    ------
    ValueError
        ``ACCSIM_WORKERS`` is not a positive integer.
    """
    raw = os.environ.get(ENV_WORKERS, "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"{ENV_WORKERS} must be a positive integer, got {raw!r}")
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def ordered_map(fn: Callable, items: Iterable, workers: int | None = None,
                client=None) -> Iterator:
    """Yield ``fn(item)`` for every item, in the items' order, with up to ``workers``
    calls running at once in threads (one worker: a plain loop, no thread), or, given a
    dask ``client``, as tasks of its cluster (``workers`` default: the cluster's dask
    threads).

    An exception raised by ``fn`` is raised here, at that item's turn; the calls
    already started finish first.
    """
    if client is not None:
        yield from _client_map(client, fn, items, workers)
        return
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers > 1 and not concurrent_launch_safe():
        workers = 1  # numba's workqueue layer aborts on concurrent launches; same bits
    if workers == 1:
        for it in items:
            yield fn(it)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="accsim-batch") as pool:
        pending: deque = deque()
        for it in items:
            pending.append(pool.submit(fn, it))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _apply(fn: Callable, item):
    """Task body of :func:`_client_map`: ``fn`` arrives as the scattered object."""
    return fn(item)


def _client_map(client, fn: Callable, items: Iterable, workers: int | None) -> Iterator:
    """:func:`ordered_map` on a dask.distributed ``client``: ``fn`` is scattered once to
    every worker, at most ``workers`` tasks are in flight, results come in item order."""
    import uuid

    if workers is None:
        info = client.scheduler_info(n_workers=-1)["workers"]
        workers = max(1, sum(w.get("nthreads", 1) for w in info.values()))
    workers = int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    remote = client.scatter(fn, broadcast=True, hash=False)
    token = uuid.uuid4().hex[:8]  # fresh keys: never reuse a previous run's result
    pending: deque = deque()
    try:
        for i, it in enumerate(items):
            pending.append(client.submit(_apply, remote, it, pure=False,
                                         key=f"accsim-batch-{i}-{token}"))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()
        remote.cancel()
