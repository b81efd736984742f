"""Public exact rounding: :func:`round` of float64/float32 arrays into any format.

Every element is rounded once, as if from its exact real value (float32 inputs are
widened exactly). Modes are defined in ``docs/rounding.md``. Stochastic rounding draws
the random word for element ``i`` (flat C-order index) from the counter-based generator
keyed by ``(seed, 0, i)``, so results are independent of threads and chunking.
"""

from __future__ import annotations

import numpy as np

from accsim.kernels import fastround
from accsim.kernels.rounding import round_array, round_array_serial
from accsim.kernels.vocab import MODES, SR, RoundingMode
from accsim.numbers.arrays import as_float64
from accsim.numbers.formats import FloatFormat
from accsim.numbers.formats import format as get_format
from accsim.numbers.seeds import check_seed

__all__ = ["round", "MODES", "RoundingMode", "mode_code", "check_sr_bits", "check_seed"]


def mode_code(mode: str) -> int:
    """Kernel code of a rounding mode name; ``ValueError`` listing valid names."""
    return int(RoundingMode.parse(mode))


def check_sr_bits(mode: str, sr_bits: int | None) -> int:
    """Validate ``sr_bits`` for ``mode``; return the kernel's ``r`` (0 = exact)."""
    if sr_bits is None:
        return 0
    if not RoundingMode.parse(mode).is_stochastic:
        raise ValueError(f"sr_bits applies only to mode='sr', got mode={mode!r}")
    if isinstance(sr_bits, bool) or not isinstance(sr_bits, int | np.integer):
        raise ValueError(f"sr_bits must be an int in 1..64 or None, got {sr_bits!r}")
    if not 1 <= int(sr_bits) <= 64:
        raise ValueError(f"sr_bits must be in 1..64 (or None for exact SR), got {sr_bits}")
    return int(sr_bits)


def _round_flat(a64, out, fmt: FloatFormat, m: int, r: int, seed: int, *, fast: bool = True):
    """Round the flat float64 array ``a64`` into ``out`` (kernel codes ``m``, ``r``).

    Uses the branch-light bit-pattern kernels of :mod:`accsim.kernels.fastround` where
    they apply (identical bits, see ``tests/test_rounding.py``), else ``round_dd``.
    """
    kf = fmt.kernel_params()
    big = a64.size >= _PARALLEL_MIN
    if fast and fastround.supported(kf.p, kf.emin, kf.flags):
        kernel = fastround.fast_round_array if big else fastround.fast_round_array_serial
        kernel(a64.view(np.uint64), out, kf, fastround.ecap_of(kf.maxv), m, r, np.uint64(seed))
    else:
        kernel = round_array if big else round_array_serial
        kernel(a64, out, kf, m, r, np.uint64(seed))


_PARALLEL_MIN = 1 << 16


def _ieee_cast(a64, fmt: FloatFormat, m: int):
    """The rounding of float64 values into binary64 (any mode: exact, the identity) or,
    to nearest even, into binary32 (numpy's float64 -> float32 conversion: one IEEE 754
    rounding, overflow to infinity, subnormals kept), with NaN made the kernels' quiet
    NaN; None for any other format or mode. Same bits as the kernels (tested), without
    their thread-pool start on small arrays."""
    if fmt == _BINARY64:
        out = a64.copy()
    elif fmt == _BINARY32 and m == int(RoundingMode.RNE):
        with np.errstate(over="ignore", invalid="ignore"):
            out = a64.astype(np.float32).astype(np.float64)
    else:
        return None
    out[np.isnan(out)] = np.nan
    return out


_BINARY32, _BINARY64 = get_format("binary32"), get_format("binary64")


def round(  # noqa: A001 - public API name mirrors the issue
    x,
    fmt: str | FloatFormat,
    mode: str = "rne",
    *,
    sr_bits: int | None = None,
    seed: int = 0,
):
    """Round values exactly into a floating-point format.

    Parameters
    ----------
    x : float or array_like of float64/float32/float16 or an ml_dtypes float type
        Values to round (taken exactly). Integer, bool, complex or object inputs raise
        ``ValueError``.
    fmt : str or FloatFormat
        Target format (a preset name, alias, or a :class:`~accsim.FloatFormat`).
    mode : {"rne", "rna", "rz", "ru", "rd", "ro", "sr"}
        Rounding mode (see ``docs/rounding.md``).
    sr_bits : int or None
        For ``mode="sr"``: number of random bits ``r`` in 1..64; the discarded fraction
        of an ulp is truncated to ``r`` bits and compared with an ``r``-bit uniform
        integer. ``None`` means exact probabilities.
    seed : int
        Key of the counter-based generator (element ``i`` uses counter ``i``);
        non-integers raise ``ValueError``.

    Returns
    -------
    float or numpy.ndarray
        float64 values representable in ``fmt`` (NaN where the format gives NaN), of
        the input's shape.
    """
    fmt = get_format(fmt)
    m = mode_code(mode)
    r = check_sr_bits(mode, sr_bits)
    scalar = np.ndim(x) == 0 and not isinstance(x, np.ndarray)
    seed = check_seed(seed)
    a = np.asarray(x)
    try:
        a64 = as_float64(a).reshape(-1)
    except ValueError:
        raise ValueError(
            f"round expects float64 or float32 values (or float16, ml_dtypes floats), got "
            f"dtype {a.dtype}; convert explicitly (e.g. np.asarray(x, dtype=np.float64))"
        ) from None
    out = _ieee_cast(a64, fmt, m)
    if out is None:
        out = np.empty_like(a64)
        _round_flat(a64, out, fmt, m, r, seed)
    out = out.reshape(a.shape)
    if scalar:
        return float(out)
    return out


_ = SR  # re-exported constant used by callers that build kernels
