"""Numba kernels: bit-level helpers, counter-based random bits, exact rounding and atoms.

Kernels see only numbers: a format is the tuple ``FloatFormat.kernel_params()``. Nothing
here uses ``fastmath`` (see ``tests/test_no_fastmath.py``).
"""
