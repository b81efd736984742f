"""The error-free slice products of ``accsim.numbers.exact`` against the long accumulator
(``matmul_long``, bits) and against ``fractions.Fraction`` (bits), on adversarial inputs:
exponents over the whole binary64 range, subnormals, exact cancellation, NaN and
infinities, addends near overflow, long inner dimensions."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_exact import bits, fr_dot, rn

from accsim.numbers import exact


@pytest.fixture(autouse=True)
def slices(monkeypatch):
    monkeypatch.setattr(exact, "SLICE_MIN_MACS", 0)


def _long_residual(D, A, B, C):
    A, BT, C = exact._prepare(A, B, C)
    D = np.ascontiguousarray(np.broadcast_to(np.asarray(D, np.float64), C.shape))
    out = np.empty(C.shape)
    exact._run(A, BT, C, D, out, 2)
    return out


def _check_all(A, B, C, with_fraction=True):
    """Slices == long accumulator for matmul, matmul_dd and residual; == Fraction."""
    D = exact.matmul(A, B, C)
    np.testing.assert_array_equal(bits(D), bits(exact.matmul_long(A, B, C)))
    A_, BT, C_ = exact._prepare(A, B, C)
    want = exact._matmul_dd_long(A_, BT, C_)
    got = exact.matmul_dd(A, B, C, return_exact=True)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(bits(got[0]), bits(want[0]))
    with np.errstate(over="ignore", invalid="ignore"):
        Dr = np.where(np.abs(D) < 2.0**1000, D * (1 + 2.0**-30), D)
    np.testing.assert_array_equal(bits(exact.residual(Dr, A, B, C)),
                                  bits(_long_residual(Dr, A, B, C)))
    if with_fraction and np.isfinite(A).all() and np.isfinite(B).all() \
            and np.isfinite(C).all():
        for i in range(A.shape[0]):
            for j in range(B.shape[1]):
                assert bits(D[i, j]) == bits(rn(fr_dot(A[i], B[:, j], C[i, j]))), (i, j)
    return D


_EXP = st.one_of(st.integers(-1074, 1023), st.integers(-1074, -1000),
                 st.integers(-30, 30), st.integers(960, 1023))
_SPECIAL = st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 2.0**-1074, -(2.0**-1074),
                            np.finfo(np.float64).max, 2.0**-1022 - 2.0**-1074])


def _value(sig, e):
    return float(np.ldexp(sig, e))


_VAL = st.one_of(st.builds(_value, st.floats(-2, 2, allow_nan=False), _EXP),
                 st.floats(-4, 4, width=32), _SPECIAL)


@st.composite
def _problem(draw):
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 9)), draw(st.integers(1, 4))
    A = np.array(draw(st.lists(_VAL, min_size=m * k, max_size=m * k))).reshape(m, k)
    B = np.array(draw(st.lists(_VAL, min_size=k * n, max_size=k * n))).reshape(k, n)
    C = np.array(draw(st.lists(_VAL, min_size=m * n, max_size=m * n))).reshape(m, n)
    if draw(st.booleans()):  # exact cancellation: the second half undoes the first
        A = np.concatenate([A, -A], axis=1)
        B = np.concatenate([B, B], axis=0)
    return A, B, C


@settings(max_examples=300, deadline=None)
@given(_problem())
def test_slices_equal_long_accumulator_and_fraction(prob):
    A, B, C = prob
    _check_all(A, B, C)


@settings(max_examples=60, deadline=None)
@given(_problem(), st.integers(1, 3))
def test_few_slices_fall_back_per_row_and_column(prob, cap):
    A, B, C = prob
    mp = pytest.MonkeyPatch()
    mp.setattr(exact, "MAX_SLICES", cap)
    try:
        _check_all(A, B, C, with_fraction=False)
    finally:
        mp.undo()


def test_random_wide_matrices_and_cancellation_to_zero():
    rng = np.random.default_rng(4)
    for t in range(6):
        m, k, n = 7, 33, 5
        A = np.ldexp(rng.standard_normal((m, k)), rng.integers(-1074 if t % 2 else -60, 60,
                                                               (m, k)))
        B = np.ldexp(rng.standard_normal((k, n)), rng.integers(-60, 900 if t > 3 else 60,
                                                               (k, n)))
        C = np.ldexp(rng.standard_normal((m, n)), rng.integers(-1074, 1019, (m, n)))
        if t == 2:
            A[:, k // 2 + 1:] = -A[:, : k - k // 2 - 1]
            B[k // 2 + 1:] = B[: k - k // 2 - 1]
            A[:, k // 2] = 0.0
            C[:] = 0.0
            D = _check_all(A, B, C)
            assert not bits(D).any()  # exact zero is +0
        else:
            _check_all(A, B, C)


def test_binary32_normal_large_block_and_subnormal_rows():
    rng = np.random.default_rng(8)
    A = rng.standard_normal((40, 300)).astype(np.float32).astype(np.float64)
    B = rng.standard_normal((300, 30)).astype(np.float32).astype(np.float64)
    A[3] = np.ldexp(A[3], -1060)  # subnormal row: its scaled terms leave the grid
    A[5, 7] = 2.0**-149
    B[:, 4] *= 2.0**120
    C = rng.standard_normal((40, 30))
    C[1, 2], C[2, 3], C[4, 5] = np.inf, np.nan, 1.7e308
    _check_all(A, B, C, with_fraction=False)
    # Fraction check of a few outputs of the same product
    D = exact.matmul(A, B, C)
    for i, j in ((0, 0), (3, 4), (5, 1), (4, 5), (39, 29)):
        assert bits(D[i, j]) == bits(rn(fr_dot(A[i], B[:, j], C[i, j])))


def test_long_inner_dimension_65536():
    rng = np.random.default_rng(12)
    K = 65536
    assert exact.slice_bits(K) == 18
    A = rng.standard_normal((3, K)).astype(np.float32).astype(np.float64)
    B = rng.standard_normal((K, 2)).astype(np.float32).astype(np.float64)
    A[1, K // 2:] = -A[1, : K // 2]
    B[K // 2:, 1] = B[: K // 2, 1]
    A[2, :5] = 2.0**-149
    D = exact.matmul(A, B)
    np.testing.assert_array_equal(bits(D), bits(exact.matmul_long(A, B)))
    assert D[1, 1] == 0.0
    for i, j in ((0, 0), (2, 1)):
        assert bits(D[i, j]) == bits(rn(fr_dot(A[i], B[:, j])))


def test_split_rows_is_exact():
    rng = np.random.default_rng(2)
    X = np.ldexp(rng.standard_normal((20, 11)), rng.integers(-1074, 1020, (20, 11)))
    X[3] = 0.0
    X[4, 2] = np.inf
    X[5] = np.ldexp(X[5], -1074 - rng.integers(-1074, 1020, 11))  # subnormals
    X[6, ::2] = np.float32(1.5)
    X[6, 1::2] = 2.0**-149
    beta = exact.slice_bits(11)
    S, ptr, exps, ok = exact.split_rows(X, beta, max_slices=200)
    assert ok.tolist() == [i != 4 for i in range(20)]
    assert ptr[4] == ptr[5] and ptr[3] == ptr[4] - 0 and ptr[4] - ptr[3] == 0
    assert ptr[7] - ptr[6] == -(-(1 + 149) // beta)  # from 2^1 down to 2^-149
    assert (np.abs(S) < 2.0**beta).all() and (S == np.trunc(S)).all()
    for i in range(20):
        if not ok[i]:
            continue
        total = [Fraction(0)] * 11
        for r in range(ptr[i], ptr[i + 1]):
            for k in range(11):
                total[k] += Fraction(float(S[r, k])) * Fraction(2) ** int(exps[r])
        assert total == [Fraction(float(x)) for x in X[i]], i
    _, _, _, ok = exact.split_rows(X, beta, max_slices=2)
    assert not ok[5] and ok[3]  # the subnormal row needs many slices, the zero row none


def test_choose_bits_uneven_split_and_budget():
    assert exact.slice_budget(9) == 49 and exact.slice_budget(1024) == 43
    assert exact.slice_budget(1) == 53 and exact.slice_budget(65536) == 37
    ba, bb = exact.choose_bits(np.full(32, 30), np.full(100, 40), 49)
    assert ba + bb == 49
    n_a, n_b = -(-30 // ba), -(-40 // bb)
    assert n_a * n_b == 3  # 1 x 3 slices (30 + 19 bits), where 24 + 25 bits need 2 x 2
    assert exact.choose_bits(np.full(4, 40), np.full(4, 40), 43) in ((21, 22), (22, 21))
    assert sum(exact.choose_bits(np.zeros(3, np.int64), np.array([-1, 0]), 43)) == 43
    # an uneven split still gives the long accumulator's bits (K = 9: 9 products < 2^53)
    rng = np.random.default_rng(6)
    A = rng.standard_normal((32, 9)).astype(np.float32).astype(np.float64)
    B = np.maximum(rng.standard_normal((9, 700)), 0).astype(np.float32).astype(np.float64)
    B[:, 3] = np.ldexp(B[:, 3], -140)
    C = rng.standard_normal((32, 1))
    _check_all(A, B, C, with_fraction=False)


def test_column_blocks_of_the_slice_products(monkeypatch):
    rng = np.random.default_rng(14)
    A = rng.standard_normal((6, 40)).astype(np.float32).astype(np.float64)
    B = rng.standard_normal((40, 37)).astype(np.float32).astype(np.float64)
    B[:, 5] = np.ldexp(B[:, 5], rng.integers(-100, 100, 40))  # a column of many slices
    want = exact.matmul(A, B)
    for elems in (1, 13, 50, 10**6):  # from one column per block to one block
        monkeypatch.setattr(exact, "BLOCK_ELEMS", elems)
        np.testing.assert_array_equal(bits(exact.matmul(A, B)), bits(want))
    np.testing.assert_array_equal(bits(want), bits(exact.matmul_long(A, B)))
