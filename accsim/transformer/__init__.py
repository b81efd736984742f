"""Transformer runs: operation classes (:mod:`.opclass`), MiniLM as a layer graph
(:mod:`.minilm_graph`) with the op-class strategies (:mod:`.policies`), the hand-written
per-operation runner kept as its test reference (:mod:`.op_runner`), LAMP look-ahead
softmax (:mod:`.lamp`), the MiniLM experiment (:mod:`.minilm_run`) and embedding metrics
(:mod:`.embed_metrics`)."""
