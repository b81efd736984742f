"""Numba kernels: all of accsim's jitted code (tests/test_architecture.py checks it).

Kernels see only numbers and arrays: a format is ONE argument, the record
:class:`~accsim.kernels.vocab.KernelFormat` built by ``FloatFormat.kernel_params()``; a
rounding mode is a :class:`~accsim.kernels.vocab.RoundingMode` code, compared against
the aliases ``RNE`` .. ``SR``. The summation families share the tiling of
:mod:`accsim.kernels.tiles`. Nothing here uses ``fastmath`` (see
``tests/test_no_fastmath.py``).
"""
