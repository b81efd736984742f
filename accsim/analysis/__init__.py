"""Analysis above the accumulators: condition numbers (:mod:`.kappa`), measured error
against the componentwise bound (:mod:`.verify`) and paired statistics (:mod:`.stats`).
Exact references are :mod:`accsim.numbers.exact`; each family's bound is in
:mod:`accsim.accumulators.bounds`."""
