"""Single network runs: run configs (:mod:`.config`), strategies (:mod:`.strategies`),
bit costs (:mod:`.cost`), the layer executor (:mod:`.executor`), the experiment
(:mod:`.experiment`), datasets and safe outputs (:mod:`.datasets`, :mod:`.outputs`)."""
