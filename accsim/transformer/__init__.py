"""Transformer runs: operation classes (:mod:`.opclass`), the per-operation runner
(:mod:`.op_runner`), LAMP look-ahead softmax (:mod:`.lamp`), the MiniLM experiment
(:mod:`.minilm_run`) and embedding metrics (:mod:`.embed_metrics`)."""
