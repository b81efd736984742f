"""Per-component error statistics of one task in one pass, for the run's tally
(:meth:`accsim.graph.runner.OpResult.stats`): what numpy computed with six temporaries
the size of the task's output.

For computed ``c``, exact ``e`` and bound ``b`` (binary64, no fastmath: every operation
below is the IEEE operation numpy performs), with ``err = |c - e|``:

* ``ratio = 0`` where ``err == 0``, else ``err / b``, and ``inf`` where that is NaN;
* a violation where ``not (err <= b)`` (a NaN error or bound is one);
* ``rel = 0`` where ``err == 0``, else ``err / |e|``;
* non-finite ``c``; with ``s = |W||x| + |b|`` a vacuous bound where ``not (b < s)``; with
  a probabilistic bound ``p`` a violation of it where ``err > p``.

Maxima and counts do not depend on the order of the components, so these are the values
numpy's ``max`` and ``sum`` give on the same components in any layout (the maximum of
``rel`` is NaN as soon as one ``rel`` is NaN, as ``numpy.max``).
"""

import numpy as np
from numba import njit

from accsim.kernels.bits import JIT


@njit(**JIT)
def component_stats(c, e, b, s, p, out_f, out_i):
    """Statistics of the 1-D arrays ``c``, ``e``, ``b`` (same length), and of ``s`` and
    ``p`` unless they are empty: ``out_f = [max ratio, max rel]``, ``out_i =
    [violations, non-finite, vacuous, probabilistic violations]`` (see the module
    docstring)."""
    mr = 0.0
    mrel = 0.0
    nan_rel = False
    viol = 0
    nonfin = 0
    vac = 0
    pviol = 0
    has_s = s.shape[0] > 0
    has_p = p.shape[0] > 0
    for i in range(c.shape[0]):
        ci = c[i]
        ei = e[i]
        bi = b[i]
        err = abs(ci - ei)
        if err == 0.0:
            r = 0.0
            q = 0.0
        else:
            r = err / bi
            if np.isnan(r):
                r = np.inf
            q = err / abs(ei)
        if r > mr:
            mr = r
        if np.isnan(q):
            nan_rel = True
        elif q > mrel:
            mrel = q
        if not (err <= bi):
            viol += 1
        if not np.isfinite(ci):
            nonfin += 1
        if has_s and not (bi < s[i]):
            vac += 1
        if has_p and err > p[i]:
            pviol += 1
    out_f[0] = mr
    out_f[1] = np.nan if nan_rel else mrel
    out_i[0] = viol
    out_i[1] = nonfin
    out_i[2] = vac
    out_i[3] = pviol
