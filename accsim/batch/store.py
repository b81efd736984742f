"""The result store: one atomic record per finished cell, consolidated into a zarr dataset.

Layout of a store directory ``STORE``::

    STORE/zarr.json, STORE/<variable>/...   the consolidated xarray dataset (zarr v3)
    STORE/cells/<cell_id>.json              one record per finished (or failed) cell

A cell record is written to a temporary file in ``STORE/cells`` and renamed into place
(``os.replace``, atomic on POSIX), after an ``fsync``: a sweep killed at any moment
leaves only complete records (plus perhaps a temporary file, removed on the next run).
The records are the ground truth; the dataset is rebuilt from them at the end of every
run (:meth:`CellStore.consolidate`). Open it with ``xarray.open_zarr(STORE)`` or
:func:`open_results`.

Dataset layout: one dimension ``cell`` (the position of the cell in the expanded sweep);
the sweep parameters are coordinates along it (``network``, ``strategy``, ``model``
(label), ``low`` (model spec: registry name or canonical JSON), ``high_model``, ``high``,
``levels``, ``tau`` (NaN when unused), ``criterion``, ``guard``, ``samples``, ``seed``
(replicate), ``cell_seed`` (the seed passed to evaluate), ``cell_id``, and ``low_*`` for
each parameter of a custom low model); the results are data variables (``accuracy``,
``recomputed_fraction``, ``bit_cost``, ``max_error_bound_ratio``, ``max_rel_error``,
``n_samples``, ``violations``, plus ``status`` ("ok", "error" or "missing"), ``error``
and ``elapsed`` seconds). A flat ``cell`` dimension holds any mix of grids and explicit
cells; ``ds.set_index(cell=[...]).unstack("cell")`` makes a multi-dimensional grid of it.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["RESULT_KEYS", "CellStore", "open_results"]

RESULT_KEYS = ("accuracy", "recomputed_fraction", "bit_cost", "max_error_bound_ratio",
               "max_rel_error", "n_samples", "violations")


def _enc(v):
    """JSON-safe scalar (non-finite floats as strings; Python floats round-trip)."""
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)  # 'nan', 'inf', '-inf'
    if isinstance(v, np.generic):
        return _enc(v.item())
    return v


def _dec(v):
    if v in ("nan", "inf", "-inf"):
        return float(v)
    return v


def _column(values: list):
    """A numpy column for a coordinate or variable (strings as object arrays)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool | np.bool_) for v in present):
        if len(present) == len(values):
            return np.array(values, dtype=bool)
        return np.array(["" if v is None else str(v) for v in values], dtype=object)
    if present and all(isinstance(v, int | np.integer) and not isinstance(v, bool)
                       for v in present):
        if len(present) == len(values):
            return np.array(values, dtype=np.int64)
        return np.array([np.nan if v is None else float(v) for v in values])
    if all(isinstance(v, int | float | np.number) and not isinstance(v, bool)
           for v in present):
        return np.array([np.nan if v is None else float(v) for v in values])
    return np.array(["" if v is None else str(v) for v in values], dtype=object)


class CellStore:
    """Per-cell records of a sweep under ``path`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.cells_dir = self.path / "cells"

    def init(self) -> CellStore:
        """Create the directories and remove temporary files left by a killed run."""
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.cells_dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        return self

    def _file(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}.json"

    def write(self, record: dict) -> None:
        """Write one cell record atomically (temporary file, fsync, rename)."""
        rec = {k: ({kk: _enc(vv) for kk, vv in v.items()} if isinstance(v, dict) else _enc(v))
               for k, v in record.items()}
        text = json.dumps(rec, sort_keys=True, allow_nan=False, default=str)
        final = self._file(record["cell_id"])
        tmp = self.cells_dir / f".{record['cell_id']}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)

    def read(self, cell_id: str) -> dict | None:
        """The record of a cell, or None (absent or unreadable)."""
        try:
            rec = json.loads(self._file(cell_id).read_text())
        except (OSError, ValueError):
            return None
        for k in ("result", "kwargs", "coords"):
            if isinstance(rec.get(k), dict):
                rec[k] = {kk: _dec(vv) for kk, vv in rec[k].items()}
        return rec

    def status(self, cell_id: str) -> str:
        rec = self.read(cell_id)
        return "missing" if rec is None else rec.get("status", "missing")

    def remove(self, cell_id: str) -> None:
        self._file(cell_id).unlink(missing_ok=True)

    # ----------------------------------------------------------------- consolidation
    def dataset(self, sweep):
        """The xarray Dataset of the sweep's cells as recorded now."""
        import xarray as xr

        recs = [self.read(c.id) for c in sweep.cells]
        n = len(sweep.cells)
        coord_names = list(dict.fromkeys(k for c in sweep.cells for k in c.coords))
        coords = {"cell": np.arange(n, dtype=np.int64),
                  "cell_id": ("cell", np.array([c.id for c in sweep.cells], dtype=object))}
        for k in coord_names:
            coords[k] = ("cell", _column([c.coords.get(k) for c in sweep.cells]))
        keys = list(RESULT_KEYS)
        for r in recs:
            if r and r.get("status") == "ok":
                keys += [k for k in r["result"] if k not in keys]
        data = {}
        for k in keys:
            vals = [(r["result"].get(k) if r and r.get("status") == "ok" else None)
                    for r in recs]
            col = _column(vals)
            if col.dtype == object:  # non-numeric extras are kept as strings
                col = col.astype(str).astype(object)
            data[k] = ("cell", col)
        data["status"] = ("cell", np.array([r["status"] if r else "missing" for r in recs],
                                           dtype=object))
        data["error"] = ("cell", np.array([(r.get("error") or "") if r else "" for r in recs],
                                          dtype=object))
        data["elapsed"] = ("cell", np.array(
            [float(r.get("elapsed", np.nan)) if r else np.nan for r in recs]))
        status = data["status"][1]
        s = sweep.config.sweep
        attrs = {
            "title": f"accsim sweep {s.name}",
            "sweep_name": s.name,
            "description": s.description,
            "master_seed": s.seed,
            "config_file": str(sweep.file or ""),
            "config_toml": sweep.text,
            "n_cells": n,
            "n_ok": int((status == "ok").sum()),
            "n_failed": int((status == "error").sum()),
            "n_missing": int((status == "missing").sum()),
            "complete": int((status == "ok").all()),
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def consolidate(self, sweep):
        """Rebuild the zarr dataset of ``STORE`` from the cell records; returns it."""
        import zarr

        ds = self.dataset(sweep)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr: 'cells' is not a zarr node; v3 notes
            root = zarr.open_group(str(self.path), mode="a")
            for k in list(root.array_keys()):
                del root[k]
            root.attrs.clear() if hasattr(root.attrs, "clear") else None
            ds.to_zarr(str(self.path), mode="a", consolidated=True)
        return ds


def open_results(store: str | os.PathLike):
    """Open a sweep's consolidated dataset (loaded into memory)."""
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with xr.open_zarr(str(store), consolidated=True) as ds:
            return ds.load()
