"""Accumulator families: numba kernels behind small frozen parameter classes.

The package imports nothing itself (so that :mod:`accsim.accumulators.bounds` can read
``accumulators.fused_spec`` and ``accumulators.registry`` without loading the families):
import :mod:`accsim.accumulators.base` for :class:`Accumulator`,
:mod:`accsim.accumulators.registry` for the family table, and
:mod:`accsim.accumulators.factory` to build any model from a spec.
"""
