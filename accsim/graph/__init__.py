"""Layer graphs of imported networks run on simulated accumulators (docs/graph.md)."""

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
from accsim.graph.runner import Assignment, GraphAccumulator, OpResult, run_graph

__all__ = ["ACTIVATIONS", "LINEAR_CLASSES", "Activation", "Add", "Assignment", "AvgPool2d",
           "BatchNorm", "Conv2d", "Dense", "Flatten", "Graph", "GraphAccumulator", "LinearOp",
           "MatmulTask", "MaxPool2d", "Op", "OpResult", "run_graph"]
