"""Batch sweeps: TOML configs expanded into cells, run locally or on a dask cluster.

>>> from accsim.batch import load_config, run_sweep, open_results   # doctest: +SKIP
>>> sweep = load_config("configs/smoke_sweep.toml")                 # doctest: +SKIP
>>> run_sweep(sweep, "results/smoke.zarr", workers=2)               # doctest: +SKIP
>>> ds = open_results("results/smoke.zarr")                         # doctest: +SKIP

See ``docs/configs.md`` for the file format, the store layout and cluster use.
"""

from accsim.batch.cells import Cell, Sweep, derive_seed, expand, load_config
from accsim.batch.config import ConfigError, SweepConfig, json_schema, parse_config
from accsim.batch.runner import SweepOutcome, run_cell, run_sweep
from accsim.batch.store import RESULT_KEYS, CellStore, open_results

__all__ = [
    "RESULT_KEYS", "Cell", "CellStore", "ConfigError", "Sweep", "SweepConfig", "SweepOutcome",
    "derive_seed", "expand", "json_schema", "load_config", "open_results", "parse_config",
    "run_cell", "run_sweep",
]
