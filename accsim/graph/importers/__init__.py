"""Importers: Keras HDF5 (architecture from the file) and state dicts (.pth with the
optional torch extra, or .npz) with the architecture declared in the config."""

from accsim.graph.importers.keras_h5 import load_keras_h5
from accsim.graph.importers.spec import LAYER_KEYS, build_graph
from accsim.graph.importers.state_dict import load_pth_graph, load_state_dict, torch_available

__all__ = ["LAYER_KEYS", "build_graph", "load_keras_h5", "load_pth_graph", "load_state_dict",
           "torch_available"]
