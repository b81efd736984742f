"""Single network runs: run configs (:mod:`.config`), strategies (:mod:`.strategies`) and
their criteria (:mod:`.criteria`), bit costs (:mod:`.cost`), the experiment
(:mod:`.experiment`: a network as its graph through the one engine,
:mod:`accsim.graph.engine`), datasets and safe outputs (:mod:`.datasets`,
:mod:`.outputs`)."""
