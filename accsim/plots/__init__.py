"""Plots (matplotlib, Agg): a network run (:mod:`.run`), a sweep's Pareto fronts
(:mod:`.sweep`), a verification (:mod:`.verify`), a MiniLM run (:mod:`.minilm`)."""
