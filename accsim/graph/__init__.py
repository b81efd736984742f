"""Layer graphs run on simulated accumulators (docs/graph.md): the network IR, the one
engine (:mod:`accsim.graph.engine`), the runner and the tally."""

from accsim.graph.graph import Graph
from accsim.graph.ops import (
    ACTIVATIONS,
    LINEAR_CLASSES,
    Activation,
    Add,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dense,
    Flatten,
    LinearOp,
    MatmulTask,
    MaxPool2d,
    Op,
)
from accsim.graph.runner import Assignment, GraphAccumulator, OpResult, Tally, run_graph

__all__ = ["ACTIVATIONS", "LINEAR_CLASSES", "Activation", "Add", "Assignment", "AvgPool2d",
           "BatchNorm", "Conv2d", "Dense", "Flatten", "Graph", "GraphAccumulator", "LinearOp",
           "MatmulTask", "MaxPool2d", "Op", "OpResult", "Tally", "run_graph"]
