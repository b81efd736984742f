"""Whether the parallel kernels may be launched from several Python threads at once.

numba runs ``prange`` loops on one of three threading layers. ``omp`` and ``tbb`` accept
launches from concurrent threads; ``workqueue``, the fallback where neither OpenMP nor
TBB is found (e.g. macOS without libomp), does not, and aborts the process when two
threads launch at once (numba documentation, "The Threading Layers": workqueue is not
threadsafe). The batch threads of :mod:`accsim.run.parallel` ask here first.
"""

from __future__ import annotations

import functools

import numba
from numba.np.ufunc import parallel

__all__ = ["THREADSAFE_LAYERS", "concurrent_launch_safe"]

#: numba threading layers that accept concurrent launches.
THREADSAFE_LAYERS = ("omp", "tbb")


@functools.cache
def concurrent_launch_safe() -> bool:
    """``True`` if the threading layer numba has chosen (starting it if need be) is one
    of :data:`THREADSAFE_LAYERS`; ``False`` for ``workqueue`` or if it cannot be told."""
    try:
        parallel._launch_threads()
        return numba.threading_layer() in THREADSAFE_LAYERS
    except Exception:  # noqa: BLE001 - an unknown layer is treated as unsafe
        return False
