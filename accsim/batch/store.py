"""The result store: one atomic record per finished cell, consolidated into a zarr dataset.

Layout of a store directory ``STORE``::

    STORE/zarr.json, STORE/<variable>/...   the consolidated xarray dataset (zarr v3)
    STORE/cells/<cell_id>.json              one record per finished (or failed) cell

A cell record is written to a temporary file in ``STORE/cells`` and renamed into place
(``os.replace``, atomic on POSIX), after an ``fsync``: a sweep killed at any moment
leaves only complete records (plus perhaps a temporary file, removed on the next run).
The records are the ground truth; the dataset is rebuilt from them at the end of every
run that changed something (:meth:`CellStore.consolidate`): written with consolidated
metadata into a sibling ``.STORE.*.tmp`` directory (the records hard-linked in) and
swapped in atomically (:func:`accsim.run.outputs.publish`), so a reader sees the old
dataset or the new one, never a mixture, and a killed or failed rebuild leaves the old
one. Records are validated on read (:meth:`CellStore.check`): an unreadable or edited
record counts as damage, is reported and its cell re-run. Open the dataset with
:func:`open_results`, which retries when a rebuild swapped the store while it was
reading: a plain ``xarray.open_zarr(STORE)`` reads the attributes when it opens and the
chunks later, by path, so a swap in between mixes two versions (``docs/datasets.md``,
"Readers").

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
import shutil
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

__all__ = ["RESULT_KEYS", "CellStore", "check_record", "open_results"]

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
            if all(-2**63 <= int(v) < 2**63 for v in present):
                return np.array(values, dtype=np.int64)
            if all(0 <= int(v) < 2**64 for v in present):  # seeds up to 2**64 - 1
                return np.array(values, dtype=np.uint64)
            return np.array([str(v) for v in values], dtype=object)
        if any(abs(int(v)) >= 2**53 for v in present):  # not exact as floats
            return np.array(["" if v is None else str(v) for v in values], dtype=object)
        return np.array([np.nan if v is None else float(v) for v in values])
    if all(isinstance(v, int | float | np.number) and not isinstance(v, bool)
           for v in present):
        return np.array([np.nan if v is None else float(v) for v in values])
    return np.array(["" if v is None else str(v) for v in values], dtype=object)


def check_record(rec, cell_id: str) -> str | None:
    """What is wrong with a decoded cell record, or None when it is valid: a JSON
    object for ``cell_id`` whose ``status`` is "ok" (with a ``result`` holding every
    one of :data:`RESULT_KEYS` as a number) or "error"."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    if rec.get("cell_id") != cell_id:
        return f"cell_id {rec.get('cell_id')!r} does not match the file name"
    st = rec.get("status")
    if st == "error":
        return None
    if st != "ok":
        return f"status {st!r} is not 'ok' or 'error'"
    res = rec.get("result")
    if not isinstance(res, dict):
        return "an 'ok' record without a result table"
    missing = [k for k in RESULT_KEYS if k not in res]
    if missing:
        return f"result lacks {', '.join(missing)}"
    bad = [k for k in RESULT_KEYS
           if isinstance(res[k], bool) or not isinstance(res[k], int | float)]
    if bad:
        return "result values are not numbers: " + ", ".join(
            f"{k}={res[k]!r}" for k in bad)
    return None


class CellStore:
    """Per-cell records of a sweep under ``path`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.cells_dir = self.path / "cells"

    def init(self) -> CellStore:
        """Create the directories and remove temporary files left by a killed run."""
        from accsim.run.outputs import MARKER, write_marker

        self.cells_dir.mkdir(parents=True, exist_ok=True)
        if not (self.path / MARKER).exists():
            write_marker(self.path, "sweep")
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

    def check(self, cell_id: str) -> tuple[dict | None, str | None]:
        """``(record, None)`` for a valid record, ``(None, None)`` when there is none,
        ``(None, problem)`` when the file is unreadable or invalid (damage)."""
        f = self._file(cell_id)
        try:
            text = f.read_text()
        except FileNotFoundError:
            return None, None
        except (OSError, UnicodeDecodeError) as exc:
            return None, f"unreadable ({exc})"
        try:
            rec = json.loads(text)
        except ValueError as exc:
            return None, f"not valid JSON ({exc})"
        if isinstance(rec, dict):
            for k in ("result", "kwargs", "coords"):
                if isinstance(rec.get(k), dict):
                    rec[k] = {kk: _dec(vv) for kk, vv in rec[k].items()}
        problem = check_record(rec, cell_id)
        return (None, problem) if problem else (rec, None)

    def read(self, cell_id: str) -> dict | None:
        """The valid record of a cell, or None (absent, unreadable or invalid)."""
        return self.check(cell_id)[0]

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
                keys += [k for k in r["result"] if k not in keys and k not in coords]
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
        from accsim import __version__

        attrs = {
            "accsim_kind": "sweep",
            "accsim_version": __version__,
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
        from accsim.run.attributes import annotate

        return annotate(xr.Dataset(data, coords=coords, attrs=attrs))

    def consolidate(self, sweep, dest: str | os.PathLike | None = None):
        """Rebuild the dataset from the records and publish it atomically at ``dest``
        (default: this store) together with the records; returns the dataset.

        The new store is built in a sibling ``.NAME.*.tmp`` directory (dataset with
        consolidated metadata, records hard-linked) and swapped in with
        :func:`accsim.run.outputs.publish`; on any error the temporary is removed and the
        old store is left as it was.
        """
        from accsim.run.outputs import publish, write_marker

        dest = Path(dest) if dest is not None else self.path
        ds = self.dataset(sweep)
        ds.attrs["publish_id"] = uuid.uuid4().hex
        parent = dest.parent if str(dest.parent) else Path(".")
        new = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zarr: v3 notes on consolidation/strings
                ds.to_zarr(str(new), mode="w", consolidated=True)
            write_marker(new, "sweep")
            (new / "cells").mkdir()
            if self.cells_dir.is_dir():
                for f in self.cells_dir.glob("*.json"):
                    try:
                        os.link(f, new / "cells" / f.name)
                    except OSError:
                        shutil.copy2(f, new / "cells" / f.name)
            publish(new, dest)
        finally:
            shutil.rmtree(new, ignore_errors=True)
        return ds


def _publish_id(store: Path):
    try:
        return json.loads((store / "zarr.json").read_text())["attributes"].get("publish_id")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def open_results(store: str | os.PathLike, *, retries: int = 50):
    """Open a sweep's consolidated dataset (loaded into memory).

    A rebuild swaps the store atomically, but a reader that started before the swap
    could read some arrays of the old dataset and some of the new: the dataset's
    ``publish_id`` is compared before and after the read and the read is repeated
    (up to ``retries`` times) until both agree, so the result is one published
    dataset, never a mixture. ``ValueError`` when the store cannot be read.
    """
    import xarray as xr

    store = Path(store)
    last = None
    for attempt in range(retries + 1):
        before = _publish_id(store)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with xr.open_zarr(str(store), consolidated=True) as ds:
                    out = ds.load()
        except Exception as exc:  # noqa: BLE001 - swapped or damaged: retry, then report
            last = exc
        else:
            if before is not None and before == _publish_id(store) == \
                    out.attrs.get("publish_id"):
                return out
            if before is None and out.attrs.get("publish_id") is None:
                return out  # written before publish ids existed
            last = None
        if attempt < retries:
            time.sleep(0.02)
    if last is not None:
        raise ValueError(f"cannot read the sweep store {str(store)!r}: "
                         f"{type(last).__name__}: {last}") from None
    raise ValueError(f"the sweep store {str(store)!r} kept changing while being read")
