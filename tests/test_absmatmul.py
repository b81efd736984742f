"""``accsim.kernels.absmatmul.abs_matmul`` against a slow, obviously correct loop: each
output is the recursive sum in ``k`` order of the rounded products ``|a_ik| |b_kj|``,
the same bits for any numba thread count and any tiling of the columns."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from accsim.kernels import absmatmul
from accsim.kernels.absmatmul import abs_matmul


def _slow(A, B):
    out = np.zeros((A.shape[0], B.shape[1]))
    for i in range(A.shape[0]):
        for j in range(B.shape[1]):
            s = 0.0
            for k in range(A.shape[1]):
                s = s + abs(float(A[i, k])) * abs(float(B[k, j]))
            out[i, j] = s
    return out


def _cases():
    rng = np.random.default_rng(11)
    yield rng.standard_normal((3, 5)), rng.standard_normal((5, 4))
    # wide dynamic range, subnormals, zeros: sums whose order matters
    A = rng.standard_normal((6, 40)) * np.exp2(rng.integers(-1070, 60, (6, 40)))
    B = rng.standard_normal((40, 600)) * np.exp2(rng.integers(-40, 40, (40, 600)))
    A[0] = 0.0
    yield A, B
    yield rng.standard_normal((70, 33)), rng.standard_normal((33, 3))  # one tile: rows
    A = rng.standard_normal((4, 6))
    A[1, 2], A[2, 3] = np.inf, np.nan
    B = rng.standard_normal((6, 300))
    B[2, 5] = 0.0  # inf * 0: NaN, as IEEE
    yield A, B


@pytest.mark.parametrize("case", range(4))
def test_against_the_recursive_loop(case):
    A, B = list(_cases())[case]
    got = abs_matmul(A, B)
    want = _slow(A, B)
    nan = np.isnan(want)  # NaN's sign and payload are not results
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint64), want[~nan].view(np.uint64))


def test_same_bits_for_any_thread_count_and_path(monkeypatch):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((50, 300)).astype(np.float32).astype(np.float64)
    B = rng.standard_normal((300, 1000)).astype(np.float32).astype(np.float64)
    before = numba.get_num_threads()
    got = []
    try:
        for t in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(t)
            got.append(abs_matmul(A, B))
    finally:
        numba.set_num_threads(before)
    monkeypatch.setattr(absmatmul, "SERIAL_MAX_MACS", 1 << 40)  # the serial path
    got.append(abs_matmul(A, B))
    for g in got[1:]:
        np.testing.assert_array_equal(g.view(np.uint64), got[0].view(np.uint64))
    # BLAS sums in another order (blocks, FMA): it need not agree to the bit, but it is
    # within the relative error of a sum of non-negative terms
    blas = np.abs(A) @ np.abs(B)
    assert np.all(np.abs(blas - got[0]) <= 301 * 2.0**-53 * got[0])


def test_shapes_that_do_not_chain_are_refused():
    with pytest.raises(ValueError, match="do not chain"):
        abs_matmul(np.ones((2, 3)), np.ones((4, 2)))
