"""Layer graphs of imported networks run on simulated accumulators (docs/graph.md)."""

from .graph import Graph
from .ops import (
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
from .runner import Assignment, GraphAccumulator, OpResult, run_graph

__all__ = ["ACTIVATIONS", "LINEAR_CLASSES", "Activation", "Add", "Assignment", "AvgPool2d",
           "BatchNorm", "Conv2d", "Dense", "Flatten", "Graph", "GraphAccumulator", "LinearOp",
           "MatmulTask", "MaxPool2d", "Op", "OpResult", "run_graph"]
