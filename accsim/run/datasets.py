"""Result datasets: the xarray schema of accsim results and atomic zarr / netCDF I/O.

Schema (``docs/datasets.md``): dimensions are any of :data:`DIMS`; data variables named
in :data:`VARIABLES` have the meaning and dtype listed there; attributes are flat
(str, int or float values only) so that both zarr and netCDF accept them, and always
include ``accsim_version``, ``created`` and ``schema_version``; model parameters are one
JSON attribute ``model_descriptions`` (``{name: model.describe()}``). Every variable and
coordinate gets CF ``long_name`` / ``units`` from :mod:`accsim.run.attributes` when saved.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from accsim.run.attributes import annotate, models_attr

SCHEMA_VERSION = 1
DIMS = ("sample", "layer", "component", "n", "kappa", "row", "col")
ENGINES = ("zarr", "netcdf")

# name -> (dtype kind, description)
VARIABLES = {
    "computed": ("f", "value computed by the model (float64 holding out_format values)"),
    "exact": ("f", "exact result rounded once to binary64 (nearest even)"),
    "abs_error": ("f", "|computed - exact| (exact real error, rounded once)"),
    "rel_error": ("f", "abs_error / |exact| (0 where abs_error is 0, inf where exact is 0)"),
    "bound": ("f", "componentwise error bound (never below the real bound)"),
    "kappa_v": ("f", "condition number of the inner product (achieved, exact sums)"),
    "kappa_phi": ("f", "condition number of the activation at the exact value"),
    "holds": ("b", "abs_error <= bound as real numbers (rigorous verdict)"),
    "rechecked": ("b", "verdict decided by the exact (Fraction) re-check"),
}

__all__ = ["DIMS", "VARIABLES", "ENGINES", "SCHEMA_VERSION", "flat_attrs", "make_dataset",
           "validate", "normalise", "save", "load", "check_writable", "check_output",
           "resolve_output", "write_dataset"]


def _version() -> str:
    from accsim import __version__

    return __version__


def flat_attrs(d: dict, prefix: str = "") -> dict:
    """Flatten a (possibly nested) dict into netCDF-safe attributes: str/int/float values;
    bool -> int, None -> "none", sequences -> comma-joined str, nested dicts ->
    ``prefix_key``, anything else -> str."""
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_attrs(v, key + "_"))
        elif isinstance(v, bool | np.bool_):
            out[key] = int(v)
        elif v is None:
            out[key] = "none"
        elif isinstance(v, int | np.integer):
            out[key] = int(v)
        elif isinstance(v, float | np.floating):
            out[key] = float(v)
        elif isinstance(v, str):
            out[key] = v
        elif isinstance(v, list | tuple | np.ndarray):
            out[key] = ",".join(str(x) for x in np.asarray(v).ravel())
        else:
            out[key] = str(v)
    return out


def make_dataset(data_vars: dict, coords: dict, *, model=None, attrs: dict | None = None,
                 seed: int | None = None) -> xr.Dataset:
    """Build a schema-conforming Dataset.

    Parameters
    ----------
    data_vars : dict
        name -> (dims tuple, array) as for ``xarray.Dataset``.
    coords : dict
        Coordinates.
    model : object with ``describe()``, optional
        Its parameters become the JSON attribute ``model_descriptions`` (plus ``model`` =
        its name).
    attrs : dict, optional
        Further attributes (flattened).
    seed : int, optional
    """
    ds = xr.Dataset(data_vars, coords=coords)
    a = {"schema_version": SCHEMA_VERSION, "accsim_version": _version(),
         "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    if model is not None:
        a["model"] = str(getattr(model, "name", type(model).__name__))
        a["model_descriptions"] = models_attr({a["model"]: model})
    if seed is not None:
        a["seed"] = int(seed)
    if attrs:
        a.update(flat_attrs(attrs))
    ds.attrs.update(a)
    for name, var in ds.data_vars.items():
        if name in VARIABLES:
            var.attrs.setdefault("description", VARIABLES[name][1])
    annotate(ds)
    validate(ds)
    return ds


def validate(ds: xr.Dataset, *, strict: bool = False) -> None:
    """``ValueError`` if ``ds`` breaks the schema: wrong dtypes of the known variables,
    non-flat attributes, missing ``schema_version`` / ``accsim_version``; with
    ``strict=True`` also dimensions outside :data:`DIMS` (other dimensions, e.g.
    ``strategy``, are allowed as extensions otherwise)."""
    if strict:
        for d in ds.dims:
            if d not in DIMS:
                raise ValueError(f"dimension {d!r} is not in the schema; valid: "
                                 f"{', '.join(DIMS)}")
    for name, var in ds.data_vars.items():
        if name in VARIABLES and var.dtype.kind != VARIABLES[name][0]:
            raise ValueError(f"variable {name!r} has dtype {var.dtype}, expected kind "
                             f"{VARIABLES[name][0]!r}")
    for k, v in ds.attrs.items():
        if not isinstance(v, str | int | float | np.integer | np.floating) or \
                isinstance(v, bool | np.bool_):
            raise ValueError(f"attribute {k!r} = {v!r} is not str/int/float")
    for req in ("schema_version", "accsim_version"):
        if req not in ds.attrs:
            raise ValueError(f"missing required attribute {req!r}")


def normalise(ds: xr.Dataset) -> xr.Dataset:
    """A shallow copy with flat attributes (dataset and variables) and the required
    attributes filled in (what :func:`save` writes)."""
    ds = ds.copy()
    a = flat_attrs(dict(ds.attrs))
    a.setdefault("schema_version", SCHEMA_VERSION)
    a.setdefault("accsim_version", _version())
    ds.attrs = a
    for name in list(ds.data_vars) + list(ds.coords):
        ds[name].attrs = flat_attrs(dict(ds[name].attrs))
    return annotate(ds)


def _engine_for(path: Path, engine: str | None) -> str:
    if engine is not None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
        return engine
    suf = path.suffix.lower()
    if suf in (".nc", ".nc4", ".netcdf", ".h5"):
        return "netcdf"
    return "zarr"


def check_writable(path: str | os.PathLike) -> Path:
    """``ValueError`` unless ``path``'s parent directory exists and is writable (and the
    path is within PATH_MAX / NAME_MAX, :func:`accsim.run.outputs.check_path_length`)."""
    from accsim.run.outputs import check_path_length

    p = Path(path)
    check_path_length(p, "output path")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"output directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"output directory {str(parent)!r} is not writable")
    try:  # os.access is not enough (root, read-only mounts, /proc): try it
        probe = tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise ValueError(f"output directory {str(parent)!r} is not writable "
                         f"({exc.strerror or exc})") from None
    os.rmdir(probe)
    if p.exists() and p.is_dir() and _engine_for(p, None) == "netcdf":
        raise ValueError(f"output path {str(p)!r} is a directory")
    return p


def _encode_for_netcdf(ds: xr.Dataset) -> xr.Dataset:
    """netCDF has no bool: store bools as int8 with attribute ``accsim_dtype = "bool"``;
    ``inf`` floats are fine in netCDF."""
    ds = ds.copy()
    for name in list(ds.data_vars) + list(ds.coords):
        v = ds[name]
        if v.dtype == bool:
            ds[name] = v.astype(np.int8)
            ds[name].attrs = dict(v.attrs, accsim_dtype="bool")
    return ds


def _decode(ds: xr.Dataset) -> xr.Dataset:
    for name in list(ds.data_vars) + list(ds.coords):
        v = ds[name]
        if v.attrs.get("accsim_dtype") == "bool":
            attrs = {k: a for k, a in v.attrs.items() if k != "accsim_dtype"}
            ds[name] = v.astype(bool)
            ds[name].attrs = attrs
    return ds


def save(ds: xr.Dataset, path: str | os.PathLike, engine: str | None = None,
         *, overwrite: bool = True, unit=None) -> Path:
    """Write ``ds`` atomically to ``path`` (zarr directory or netCDF file via h5netcdf).

    The data go to a temporary path in the same directory (``.NAME.*.tmp``), then are
    swapped into place (:func:`accsim.run.outputs.publish`): the path always holds a
    complete dataset; on any error the temporary is removed and an existing ``path`` is
    left untouched. Given ``unit`` (:class:`accsim.run.outputs.Unit`), the dataset is
    only staged in it, with the unit's ``publish_id`` in its attributes, and the caller
    publishes the unit with its other parts (plots) behind the unit's manifest, which
    :func:`load` checks; a dataset replacing such a unit is published as a unit of its
    own (the previous unit's parts it does not write are removed with it). Zarr stores
    carry consolidated metadata (one read opens them; ``xarray.open_zarr`` needs no
    fallback). A netCDF file is built in memory and written with ordinary file I/O, so
    a full disk is an ``OSError``, never a crash inside HDF5. ``engine`` defaults from
    the extension (``.nc`` -> netCDF, else zarr).
    Whether an existing ``path`` may be replaced at all is the caller's decision
    (:func:`accsim.run.outputs.check_replace`).
    """
    from accsim.run.outputs import Unit, publish, unit_manifest

    ds = normalise(ds)
    validate(ds)
    p = check_writable(path)
    eng = _engine_for(p, engine)
    if p.exists() and not overwrite:
        raise ValueError(f"{str(p)!r} exists (overwrite=False)")
    if unit is not None:
        _write(ds.assign_attrs(publish_id=unit.id), unit.stage(p), eng)
        return p
    if unit_manifest(p).exists():  # replacing a unit: a new one, without the old parts
        with Unit(p, str(ds.attrs.get("accsim_kind") or "dataset")) as u:
            save(ds, p, engine, unit=u)
            u.publish()
        return p
    parent = p.parent if str(p.parent) else Path(".")
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent))
    try:
        _write(ds, tmp / p.name, eng)
        publish(tmp / p.name, p)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return p


def _write(ds: xr.Dataset, target: Path, eng: str) -> None:
    """Write ``ds`` at the fresh path ``target`` (zarr with consolidated metadata and
    accsim's marker, or netCDF with ordinary file I/O), fsynced."""
    import warnings

    from accsim.run.outputs import write_marker

    if eng == "netcdf":
        data = _encode_for_netcdf(ds).to_netcdf(engine="h5netcdf")
        with open(target, "wb") as f:
            f.write(bytes(data))
            f.flush()
            os.fsync(f.fileno())
    else:
        with warnings.catch_warnings():
            # zarr 3: consolidated metadata and fixed-length strings are not in the
            # v3 specification yet (informational; xarray reads both)
            warnings.filterwarnings("ignore", message=".*Zarr format 3 spec.*")
            warnings.filterwarnings("ignore", message=".*Zarr V3 spec.*")
            ds.to_zarr(target, mode="w", consolidated=True)
        write_marker(target, str(ds.attrs.get("accsim_kind") or "dataset"))


def _consolidated(p: Path) -> bool:
    """Whether a zarr store carries consolidated metadata (v3 or v2)."""
    try:
        if (p / ".zmetadata").is_file():
            return True
        meta = json.loads((p / "zarr.json").read_text())
        return bool(meta.get("consolidated_metadata"))
    except (OSError, ValueError):
        return False


def _generation(p: Path):
    """What changes whenever a dataset at ``p`` is republished: the inode of the path
    (an exchange or a rename gives it another one), the ``publish_id`` of a zarr
    store's root metadata, and the unit manifest's text."""
    from accsim.run.outputs import unit_manifest

    try:
        ino = os.stat(p).st_ino
    except OSError:
        ino = None
    try:
        pid = json.loads((p / "zarr.json").read_text())["attributes"].get("publish_id")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pid = None
    try:  # each publish writes a new manifest file (a new inode and time stamp)
        m = unit_manifest(p)
        st = os.stat(m)
        man = (st.st_ino, st.st_mtime_ns, m.read_text())
    except OSError:
        man = None
    return ino, pid, man


def load(path: str | os.PathLike, engine: str | None = None, *,
         retries: int = 50) -> xr.Dataset:
    """Load a dataset written by :func:`save` (fully into memory) as one snapshot.

    A writer may publish a new dataset while this reads: the generation of the path
    (its inode, the store's ``publish_id``, the unit manifest) is compared before and
    after the read and the read repeated (up to ``retries`` times) until they agree,
    so attributes and data always come from one published dataset. The unit manifest
    beside it, if any, must be complete and name the dataset's ``publish_id``
    (:func:`accsim.run.outputs.check_unit`); ``ValueError`` otherwise (a writer was
    killed while publishing, or the dataset was replaced behind accsim's back)."""
    import time

    from accsim.run.outputs import check_unit

    p = Path(path)
    if not p.exists():
        raise ValueError(f"no dataset at {str(p)!r}")
    eng = _engine_for(p, engine)
    for attempt in range(retries + 1):
        before = _generation(p)
        try:
            if eng == "netcdf":
                with xr.open_dataset(p, engine="h5netcdf") as ds:
                    out = ds.load()
            else:
                with xr.open_zarr(p, consolidated=_consolidated(p)) as ds:
                    out = ds.load()
        except Exception:
            if _generation(p) == before or attempt == retries:
                raise  # not a swap while reading: the dataset itself is unreadable
        else:
            if _generation(p) == before:
                check_unit(p, out.attrs.get("publish_id"))
                return _decode(out)
        time.sleep(0.02)
    raise ValueError(f"the dataset {str(p)!r} kept changing while being read")


def resolve_output(out, cfg) -> Path:
    """The output path of a run: ``out`` (``--out``) if given, else the configuration's
    ``run.output``, checked by :func:`check_output`; the ``ValueError`` names where the
    path came from (``--out`` or the ``FILE:LINE: run.output`` of ``cfg``)."""
    path = Path(out) if out is not None else Path(cfg.run.output)
    try:
        return check_output(path)
    except ValueError as exc:
        where = "--out" if out is not None else cfg.where("run.output")
        raise ValueError(f"{where}: {exc}") from None


def check_output(out: Path) -> Path:
    """``ValueError`` unless ``out`` ends in .zarr or .nc and can be written: its directory
    is writable, or missing with a writable nearest existing ancestor (the directories are
    created when the results are written). Checked before any work; an existing dataset
    is replaced atomically."""
    if out.suffix.lower() not in (".zarr", ".nc"):
        raise ValueError(f"output must end in .zarr or .nc, got {str(out)!r}")
    from accsim.run.outputs import check_path_length

    check_path_length(out, "output path")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{str(parent)!r} is not a directory")
    check_writable(parent / out.name)
    return out


def write_dataset(ds, out: Path) -> Path:
    """Write atomically with :func:`accsim.run.datasets.save` (consolidated zarr or netCDF)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return save(ds, out)
