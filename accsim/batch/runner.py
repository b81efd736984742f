"""Running a sweep: in-process, on a local dask cluster, or on any dask.distributed cluster.

Every cell is one call of the cell function (default :func:`accsim.run.experiment.evaluate`)
wrapped by :func:`run_cell`, which never raises: an exception becomes an ``"error"``
record carrying the message and traceback. The client writes each record as soon as its
cell finishes (:class:`~accsim.batch.store.CellStore`), so workers need no access to the
store and a killed sweep loses only the cells in flight.

Threads: a ``LocalCluster`` gets ``workers`` processes of one dask thread each, started
with ``NUMBA_NUM_THREADS = cores // workers``; on any cluster the :class:`NumbaThreads`
worker plugin sets numba's thread count of every worker to ``cores_of_its_host //
dask_threads_on_that_host`` (at least 1), re-applied in each task thread (numba's
setting is thread-local), so the workers of a host never oversubscribe its cores.
Results do not depend on thread counts (accsim kernels are bit-identical for any
``NUMBA_NUM_THREADS``).

Warm-up: before fanning out, every worker (``client.run``, in parallel) builds every
model of the sweep and runs one tiny cell (``samples=1``): kernels are compiled (or
loaded from numba's on-disk cache) and data loaded once per worker, before any cell.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from distributed import WorkerPlugin

from accsim.batch.cells import materialize, materialize_kwargs
from accsim.batch.store import RESULT_KEYS, CellStore

__all__ = ["NumbaThreads", "SweepOutcome", "available_cores", "resolve_cell_fn",
           "run_cell", "run_sweep", "warm_models", "warm_worker"]

_NUMBA_THREADS: int | None = None  # set on workers by the NumbaThreads plugin


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_cell_fn(spec: str | Callable | None) -> Callable:
    """The cell function: a callable, ``"module:function"``, or None for the default
    :func:`accsim.batch.netspec.evaluate_cell` (:func:`accsim.run.experiment.evaluate`
    on a shipped network, :func:`accsim.batch.graph_cell.evaluate_graph` on a
    ``[networks.NAME]`` graph)."""
    if callable(spec):
        return spec
    if spec is None:
        spec = "accsim.batch.netspec:evaluate_cell"
    mod, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(mod), name or "evaluate")
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import the cell function {spec!r}: {exc}") from None


def _set_numba_threads(n: int | None) -> None:
    if not n:
        return
    try:
        import numba

        numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    except Exception:  # noqa: BLE001 - thread tuning must never fail a cell
        pass


def _plain(v):
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        v = v.item()
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float | str):
        return v
    raise TypeError(f"result value {v!r} is not a scalar")


def run_cell(fn: Callable, kwargs: dict, numba_threads: int | None = None) -> dict:
    """Run one cell; never raises (errors are returned as records).

    Returns
    -------
    dict
        ``status`` ("ok" or "error"), ``result`` (dict of scalars) or ``error`` and
        ``traceback``, ``elapsed`` seconds and ``worker`` (host:pid).
    """
    _set_numba_threads(numba_threads or _NUMBA_THREADS)
    t0 = time.perf_counter()
    rec = {"worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        res = fn(**materialize_kwargs(kwargs))
        if not isinstance(res, dict):
            raise TypeError(f"the cell function returned {type(res).__name__}, not a dict")
        missing = [k for k in RESULT_KEYS if k not in res]
        if missing:
            raise KeyError(f"the cell function's result lacks {', '.join(missing)}")
        rec.update(status="ok", result={k: _plain(v) for k, v in res.items()})
    except Exception as exc:  # noqa: BLE001 - a failing cell must not stop the sweep
        rec.update(status="error", error=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc(limit=20))
    rec["elapsed"] = time.perf_counter() - t0
    return rec


def warm_models(specs: list) -> int:
    """Build every model and run a tiny product (compiles its kernels); returns the
    number of models warmed. Failures are ignored here (the cells report them)."""
    try:
        import numpy as np

        from hwmodels import resolve as build_model
    except ImportError:
        return 0
    n = 0
    A, B = np.ones((1, 2)), np.ones((2, 1))
    for spec in specs:
        try:
            build_model(materialize(spec)).matmul(A, B)
            n += 1
        except Exception:  # noqa: BLE001
            pass
    return n


def warm_worker(fn: Callable, specs: list, tiny_kwargs: dict) -> None:
    """Worker warm-up: build every model (compiles its kernels, or loads them from
    numba's cache) and run one tiny cell (loads the data, compiles the executor)."""
    warm_models(specs)
    try:
        fn(**tiny_kwargs)
    except Exception:  # noqa: BLE001 - the real cell reports its own errors
        pass


class NumbaThreads(WorkerPlugin):
    """Worker plugin setting numba's thread count so a host's workers share its cores.

    Parameters
    ----------
    dask_threads_per_host : dict
        Host -> total dask threads of the cluster's workers on that host (a worker on
        an unlisted host counts only its own threads).
    """

    name = "accsim-numba-threads"

    def __init__(self, dask_threads_per_host: dict[str, int]):
        self.per_host = dict(dask_threads_per_host)

    def setup(self, worker):
        global _NUMBA_THREADS
        host = worker.address.rsplit(":", 1)[0].split("://")[-1]
        total = self.per_host.get(host, worker.state.nthreads)
        _NUMBA_THREADS = max(1, available_cores() // max(1, total))
        _set_numba_threads(_NUMBA_THREADS)

    def teardown(self, worker):  # pragma: no cover - nothing to release
        pass


@dataclass
class SweepOutcome:
    """What a run did."""

    dataset: object
    ran: int = 0
    skipped: int = 0
    failures: list[dict] = field(default_factory=list)
    wall: float = 0.0
    interrupted: bool = False
    damage: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted


def _progress(console, enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("cells, [red]{task.fields[failed]}[/] failed"), TimeElapsedColumn(),
        TextColumn("ETA"), TimeRemainingColumn(), console=console, disable=not enabled,
        transient=False,
    )


def run_sweep(sweep, store: str | os.PathLike, *, scheduler: str | None = None,
              workers: int = 1, force: bool = False, cell_fn: Callable | str | None = None,
              progress: bool = True, console=None, warmup: bool = True,
              client=None, connect_timeout: float = 30.0) -> SweepOutcome:
    """Run the unfinished cells of ``sweep`` and consolidate the store.

    Parameters
    ----------
    sweep : accsim.batch.cells.Sweep
        From :func:`accsim.batch.load_config`.
    store : path
        The result store (created if needed).
    scheduler : str, optional
        Address of a running dask scheduler (``tcp://HOST:PORT``). Without it: one
        worker runs in-process, more start a ``LocalCluster`` of processes.
    workers : int
        Local worker processes (ignored with ``scheduler`` or ``client``).
    force : bool
        Recompute every cell in a fresh store beside ``store`` and swap it in at the
        end (interrupted or killed, the old store stays as it was). Also needed to
        replace the store of another sweep (another ``[sweep] name``); never replaces
        anything that is not an accsim sweep store
        (:func:`accsim.run.outputs.check_replace`).
    cell_fn : callable or "module:function", optional
        The cell function (default :func:`accsim.run.experiment.evaluate`); tests inject a
        double here.
    client : distributed.Client, optional
        Use this client (and leave it open).
    connect_timeout : float
        Seconds to wait for ``scheduler``; then ``ValueError`` naming it.

    Returns
    -------
    SweepOutcome

    Raises
    ------
    ValueError
        The store may not be written (foreign, another kind, another sweep without
        ``force``); :class:`accsim.run.outputs.OutputBusy` when another process holds it.
    """
    from rich.console import Console

    from accsim.run.outputs import OutputLock, check_replace, clean_leftovers

    console = console or Console(stderr=True)
    fn = resolve_cell_fn(cell_fn)
    store = Path(store)
    with OutputLock(store, "--out"):
        existing = check_replace(store, "sweep", sweep.name, force=force, option="--out")
        clean_leftovers(store)
        return _run_locked(sweep, store, existing, fn, scheduler=scheduler,
                           workers=workers, force=force, progress=progress,
                           console=console, warmup=warmup, client=client,
                           connect_timeout=connect_timeout)


def damage_report(sweep, st: CellStore, existing) -> list[str]:
    """What is damaged in an existing store (all of it is repaired by re-running or
    rebuilding): unreadable or invalid cell records, cells the published dataset
    lists as done whose record is gone, an unreadable dataset."""
    from accsim.batch.store import open_results

    problems = []
    for c in sweep.cells:
        _, why = st.check(c.id)
        if why:
            problems.append(f"record of cell {c.index} ({c.id}) is damaged: {why}")
    if existing.state == "damaged":
        problems.append(f"the combined dataset is damaged: {existing.detail}")
        return problems
    if existing.state != "accsim":
        return problems
    try:
        ds = open_results(st.path, retries=2)
    except ValueError as exc:
        problems.append(f"the combined dataset is unreadable ({exc})")
        return problems
    problems += _dataset_vs_records(sweep, st, ds)
    if "cell_id" in ds and "status" in ds:
        listed = dict(zip([str(x) for x in ds["cell_id"].values],
                          [str(x) for x in ds["status"].values], strict=True))
        for c in sweep.cells:
            if listed.get(c.id) == "ok" and not st._file(c.id).exists():
                problems.append(f"record of cell {c.index} ({c.id}) is missing although "
                                "the dataset lists it as done")
    return problems


def _dataset_vs_records(sweep, st: CellStore, ds) -> list[str]:
    """Variables of the published dataset that disagree with the records (a chunk
    deleted or edited: zarr reads a missing chunk as the fill value, NaN)."""
    import numpy as np

    from accsim.batch.store import RESULT_KEYS

    try:
        want = st.dataset(sweep)
    except (ValueError, TypeError, OSError):
        return []
    bad = []
    for k in (*RESULT_KEYS, "status"):
        if k not in want:
            continue
        if k not in ds or ds[k].shape != want[k].shape:
            bad.append(k)
            continue
        a, b = np.asarray(ds[k].values), np.asarray(want[k].values)
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            same = np.array_equal(a.astype(float), b.astype(float), equal_nan=True)
        else:
            same = [str(x) for x in a] == [str(x) for x in b]
        if not same:
            bad.append(k)
    if not bad:
        return []
    return [f"the combined dataset disagrees with the cell records in {', '.join(bad)} "
            "(a chunk deleted or edited)"]


def _run_locked(sweep, store: Path, existing, fn, *, scheduler, workers, force, progress,
                console, warmup, client, connect_timeout) -> SweepOutcome:
    import shutil
    import tempfile

    t0 = time.perf_counter()
    if force:
        # --force: a fresh store beside the old one, swapped in when done; killed or
        # interrupted, the old store stays as it was
        work = Path(tempfile.mkdtemp(prefix=f".{store.name}.", suffix=".tmp",
                                     dir=store.parent if str(store.parent) else "."))
        damage = []
    else:
        work = store
        damage = damage_report(sweep, CellStore(store), existing)
        for d in damage:
            console.print(f"[yellow]damaged:[/] {d}; repaired by re-running / rebuilding",
                          highlight=False)
    out = SweepOutcome(dataset=None, skipped=0, damage=damage)
    try:
        st = CellStore(work).init()
        todo = [c for c in sweep.cells if st.status(c.id) != "ok"]
        out.skipped = len(sweep.cells) - len(todo)
        if todo:
            runner = _run_local if (scheduler is None and client is None and workers <= 1) \
                else _run_dask
            try:
                with _progress(console, progress) as bar:
                    task = bar.add_task(sweep.name, total=len(sweep.cells),
                                        completed=out.skipped, failed=0)

                    def done(cell, rec):
                        rec = {"cell_id": cell.id, "index": cell.index,
                               "kwargs": cell.kwargs, "coords": cell.coords,
                               "finished_at": time.time(), **rec}
                        st.write(rec)
                        out.ran += 1
                        if rec["status"] != "ok":
                            out.failures.append(rec)
                        bar.update(task, advance=1, failed=len(out.failures))

                    kw = dict(scheduler=scheduler, workers=workers, warmup=warmup,
                              client=client, console=console,
                              connect_timeout=connect_timeout)
                    runner(sweep, todo, fn, done, **kw)
            except KeyboardInterrupt:
                out.interrupted = True
        out.failures = [st.read(c.id) for c in sweep.cells if st.status(c.id) == "error"]
        if force and out.interrupted:
            out.dataset = st.dataset(sweep)  # not published: the old store stays
        elif out.ran == 0 and not damage and existing.state == "accsim" and not force:
            out.dataset = _unchanged(sweep, st, store)
        else:
            out.dataset = None
        if out.dataset is None:
            out.dataset = st.consolidate(sweep, store)
    finally:
        if force:
            shutil.rmtree(work, ignore_errors=True)
    out.wall = time.perf_counter() - t0
    return out


def _unchanged(sweep, st: CellStore, store: Path):
    """The published dataset when it already says what the records say (nothing to
    rebuild), else None."""
    from accsim.batch.store import open_results

    try:
        old = open_results(store, retries=2)
    except ValueError:
        return None
    new = st.dataset(sweep)
    same = all(str(old.attrs.get(k)) == str(v) for k, v in new.attrs.items()) and \
        old.sizes.get("cell") == new.sizes.get("cell") and all(
            k in old and [str(x) for x in old[k].values] == [str(x) for x in new[k].values]
            for k in ("cell_id", "status"))
    return old if same else None


def connect(scheduler: str, connect_timeout: float = 30.0):
    """A ``distributed.Client`` of the running scheduler at ``scheduler``
    (``tcp://HOST:PORT``); ``ValueError`` naming it if it cannot be reached within
    ``connect_timeout`` seconds (``--scheduler`` of ``accsim sweep`` and ``accsim run``)."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=f"{connect_timeout}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(f"--scheduler {scheduler}: cannot reach the dask "
                         f"scheduler within {connect_timeout:g} s ({exc})") from None


def prepare_workers(client) -> dict:
    """Wait for at least one worker, register :class:`NumbaThreads` on all of them
    (a host's workers share its cores) and return the scheduler's worker table."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    if not info:
        client.wait_for_workers(1, timeout=60)
        info = client.scheduler_info(n_workers=-1)["workers"]
    per_host = Counter()
    for w in info.values():
        per_host[w["host"]] += w.get("nthreads", 1)
    client.register_plugin(NumbaThreads(dict(per_host)), name=NumbaThreads.name)
    return info


def _run_local(sweep, todo, fn, done, **_):
    for cell in todo:
        done(cell, run_cell(fn, cell.kwargs))


def _run_dask(sweep, todo, fn, done, *, scheduler, workers, warmup, client, console,
              connect_timeout=30.0):
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    own = client is None
    if client is None:
        if scheduler is None:
            per = max(1, available_cores() // max(1, workers))
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR,
                env={"NUMBA_NUM_THREADS": str(per), "OMP_NUM_THREADS": "1"},
            )
            client = Client(cluster)
        else:
            client = connect(scheduler, connect_timeout)
    try:
        info = prepare_workers(client)
        if warmup:
            console.log(f"warming up {len(info)} worker(s): compiling the kernels of "
                        f"{len(sweep.models)} model(s) ...")
            tiny = materialize_kwargs({**todo[0].kwargs, "samples": 1})
            client.run(warm_worker, fn, list(sweep.models.values()), tiny)
        futures = {}
        token = uuid.uuid4().hex[:8]  # fresh keys: never reuse a previous run's result
        for cell in todo:
            fut = client.submit(run_cell, fn, cell.kwargs,
                                key=f"accsim-cell-{cell.id}-{token}", pure=False)
            futures[fut] = cell
        for fut in as_completed(list(futures)):
            cell = futures.pop(fut)
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. the worker died repeatedly
                rec = {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                       "elapsed": float("nan"), "worker": ""}
            done(cell, rec)
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
