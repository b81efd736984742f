"""The built-in accumulator families: importing this module registers every one of them.

Each family module registers itself (class, bound, reference) in
:mod:`accsim.accumulators.registry` on import; this is the list of those modules.
"""

from accsim.accumulators import blocked, fused, kahan, kulisch, pairwise, promotion, recursive  # noqa: F401 - imported for their registrations
from accsim.accumulators.registry import family_names

__all__ = ["family_names"]
