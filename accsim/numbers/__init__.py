"""Numbers: formats (:mod:`.formats`), exact rounding in every mode (:mod:`.rounding`),
add/multiply/FMA rounded once (:mod:`.atoms`), exact sums and dot products
(:mod:`.exact`), bit codecs (:mod:`.codecs`), array and seed checks (:mod:`.arrays`,
:mod:`.seeds`). The layer above ``accsim.kernels`` and below the accumulators."""
