"""Safety of accsim's outputs: results are the user's data.

Every writer (``accsim run``, ``verify``, ``sweep``, ``plot``, ``minilm``) goes through
this one guard (``docs/datasets.md``, "Guarantees"):

* **accsim's marker decides what is accsim's.** Every directory accsim writes holds
  :data:`MARKER` (``.accsim/zarr.json``, attributes ``{"accsim_kind": KIND}``), written
  before the directory is published; PNGs carry a ``tEXt`` stamp (:func:`stamp_png`);
  netCDF files their root attributes; file sets (``accsim minilm``'s
  ``STEM.nc/.json/.png``) a manifest of SHA-256 hashes (:func:`publish_fileset`).
  Anything without it is foreign.
* **Never replace what is not ours.** :func:`check_replace` (datasets and stores) and
  :func:`check_target` / :func:`check_fileset` (plots, image folders, file sets)
  inspect an existing output before any work. Only this command's own earlier result
  (same kind, same configuration) is replaced without asking; another accsim result of
  the same kind needs ``--force``; anything else (a plain file, a directory without
  the marker or with files accsim does not write, another kind of output) is refused
  even with ``--force``.
* **Atomic publish.** An output is written next to its destination (``.NAME.*.tmp``)
  and swapped in with one ``renameat2(RENAME_EXCHANGE)`` (Linux; a file is replaced by
  ``rename``, atomic on POSIX): the path always holds a complete output, and a writer
  killed at any moment leaves the old output intact. accsim's readers check a
  ``publish_id`` around their read and never return a mixture (a plain
  ``xarray.open_zarr`` overlapping a swap can: ``docs/datasets.md``, "Readers"). A set
  of files is published with a manifest written last and checked by
  :func:`read_fileset`; a dataset with its plots as a :class:`Unit`.
* **One writer at a time.** :class:`OutputLock` takes an exclusive ``flock`` on
  ``.NAME.lock`` next to the output for the whole command (created with ``O_CREAT |
  O_EXCL | O_NOFOLLOW``; a symbolic link there is refused, never followed); a second
  writer is told that the output is busy (:class:`OutputBusy`, exit code 3) instead of
  doing the work twice. The lock file is removed when the command ends (a killed
  command leaves it, unlocked; the next run reuses it).
* **Leftovers are cleaned.** The temporary ``.NAME.*.tmp`` / ``.NAME.*.old`` /
  ``.NAME.*.probe`` entries of killed runs are removed by the next run of the same
  output (under the lock, so never those of a live writer).
* **Paths** beyond PATH_MAX / NAME_MAX are refused before any work
  (:func:`check_path_length`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KINDS", "MARKER", "Existing", "OutputBusy", "OutputLock", "Unit",
           "check_fileset", "check_path_length", "check_replace", "check_target",
           "check_unit", "clean_fileset_leftovers", "clean_leftovers", "config_digest",
           "inspect", "manifest_path", "png_kind", "publish", "publish_dir",
           "publish_fileset", "publish_png", "read_attrs", "read_fileset", "read_marker",
           "read_unit", "stamp_png", "tree_sha256", "unit_manifest", "write_marker"]

#: The kinds of output accsim writes (attribute ``accsim_kind``).
KINDS = ("run", "verify", "sweep")

#: The marker inside every directory accsim writes (a store, an image folder): a
#: subdirectory holding one file, ``zarr.json``, the metadata of an empty zarr v3 group
#: whose attributes are ``{"accsim_kind": KIND}`` (so zarr and xarray, which list a
#: store's members when they open it without consolidated metadata, see a valid empty
#: group instead of warning about an unknown file). It, not the presence or absence of
#: zarr metadata, decides that a directory is accsim's own.
MARKER = ".accsim"

_ZARR_META = {"zarr.json", ".zgroup", ".zattrs", ".zmetadata"}
_CELL_RECORD = re.compile(r"^([0-9a-f]{16}\.json|\..*\.tmp)$")
_ARRAY_FILE = re.compile(r"^(zarr\.json|\.zarray|\.zattrs|c|\d+([./]\d+)*)$")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class OutputBusy(ValueError):
    """Another accsim process is writing the same output."""


def config_digest(obj) -> str:
    """SHA-256 (hex) of a configuration: canonical JSON of ``obj`` (text is hashed as
    is). Stored as the attribute ``config_sha256`` to recognise a rerun."""
    text = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------ inspection
def read_attrs(path: Path) -> dict | None:
    """Root attributes of a zarr store (v3 ``zarr.json`` or v2 ``.zattrs``) or a netCDF
    file; None when they cannot be read."""
    path = Path(path)
    try:
        if path.is_dir():
            if (path / "zarr.json").is_file():
                meta = json.loads((path / "zarr.json").read_text())
                return dict(meta.get("attributes") or {})
            if (path / ".zattrs").is_file():
                return dict(json.loads((path / ".zattrs").read_text()))
            return None
        with open(path, "rb") as f:
            if f.read(8) != _HDF5_MAGIC:
                return None
        import h5netcdf

        with h5netcdf.File(path, "r") as f:
            return {k: (v.item() if hasattr(v, "item") and getattr(v, "ndim", 1) == 0
                        else v) for k, v in f.attrs.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _kind_of(attrs: dict) -> str | None:
    k = attrs.get("accsim_kind")
    if k in KINDS:
        return k
    if "accsim_version" not in attrs and "sweep_name" not in attrs:
        return None
    if "sweep_name" in attrs:  # stores written before accsim_kind existed
        return "sweep"
    if "generator" in attrs and "kind" in attrs:
        return "verify"
    if "network" in attrs:
        return "run"
    return None


def _foreign_files(path: Path, kind: str | None) -> list[str]:
    """Entries of a directory that accsim does not write (relative paths, at most 5)."""
    bad: list[str] = []
    for entry in sorted(path.iterdir()):
        name = entry.name
        if entry.is_symlink():
            bad.append(name)
        elif name == MARKER and kind is not None:
            continue  # checked by read_marker
        elif entry.is_file() and name in _ZARR_META:
            continue
        elif entry.is_dir() and name == "cells" and kind == "sweep":
            bad += [f"cells/{f.name}" for f in sorted(entry.iterdir())
                    if f.is_symlink() or not (f.is_file() and _CELL_RECORD.match(f.name))]
        elif entry.is_dir() and ((entry / "zarr.json").is_file()
                                 or (entry / ".zarray").is_file()):
            for root, _dirs, files in os.walk(entry):
                bad += [str(Path(root, f).relative_to(path)) for f in files
                        if not _ARRAY_FILE.match(f)]
        elif kind is not None and kind.endswith("-plots") and entry.is_file() \
                and entry.suffix == ".png":
            continue
        else:
            bad.append(name)
        if len(bad) >= 5:
            break
    return bad[:5]


def _legacy_kind(path: Path) -> str | None:
    """The kind of a store written before the marker existed: its root attributes name
    it explicitly (``accsim_kind``); None otherwise (never guessed from absence)."""
    attrs = read_attrs(path)
    kind = attrs.get("accsim_kind") if attrs else None
    return kind if kind in KINDS else None


# ------------------------------------------------------------------------ markers
def write_marker(path: str | os.PathLike, kind: str) -> None:
    """Write the marker :data:`MARKER` of an accsim output of ``kind`` into the
    directory ``path`` (before the directory is published)."""
    d = Path(path) / MARKER
    d.mkdir(exist_ok=True)
    with open(d / "zarr.json", "w") as f:
        json.dump({"zarr_format": 3, "node_type": "group",
                   "attributes": {"accsim_kind": kind}}, f)
        f.flush()
        os.fsync(f.fileno())


def read_marker(path: str | os.PathLike) -> str | None:
    """The kind named by the marker of the directory ``path``; None without a valid
    marker (a real directory :data:`MARKER` holding only a regular ``zarr.json`` whose
    attributes name the kind)."""
    d = Path(path) / MARKER
    m = d / "zarr.json"
    try:
        if d.is_symlink() or not d.is_dir() or m.is_symlink() or not m.is_file() \
                or [e.name for e in d.iterdir()] != ["zarr.json"]:
            return None
        kind = json.loads(m.read_text())["attributes"]["accsim_kind"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return kind if isinstance(kind, str) else None


_PATH_MAX, _NAME_MAX = 4096, 255  # Linux limits.h
#: Bytes kept free in a name for accsim's siblings of it (the longest:
#: ``.NAME.accsim.json.PID.tmp``, the manifest being written, 13 + up to 12).
_ROOM = 32

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_KEY = b"accsim_kind"


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    import zlib

    return (len(data).to_bytes(4, "big") + ctype + data
            + zlib.crc32(ctype + data).to_bytes(4, "big"))


def stamp_png(path: str | os.PathLike, kind: str) -> None:
    """Add a ``tEXt`` chunk ``accsim_kind=KIND`` after the header of the PNG at
    ``path`` (PNG specification, section 11.3.4.3): the file's own marker."""
    p = Path(path)
    data = p.read_bytes()
    if not data.startswith(_PNG_MAGIC):
        raise ValueError(f"{str(p)!r} is not a PNG file")
    end = 8 + 8 + int.from_bytes(data[8:12], "big") + 4  # signature + IHDR chunk
    p.write_bytes(data[:end] + _png_chunk(b"tEXt", _PNG_KEY + b"\0" + kind.encode())
                  + data[end:])


def png_kind(path: str | os.PathLike) -> str | None:
    """The kind stamped into a PNG by :func:`stamp_png`; None for any other file."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != _PNG_MAGIC:
                return None
            for _ in range(64):
                head = f.read(8)
                if len(head) < 8:
                    return None
                n, ctype = int.from_bytes(head[:4], "big"), head[4:]
                if ctype == b"IDAT" or n > 1 << 20:
                    return None
                data = f.read(n)
                f.read(4)
                if ctype == b"tEXt" and data.startswith(_PNG_KEY + b"\0"):
                    return data[len(_PNG_KEY) + 1:].decode(errors="replace")
    except OSError:
        return None
    return None


@dataclass
class Existing:
    """What is at an output path.

    Attributes
    ----------
    state : str
        ``"absent"``; ``"accsim"`` (a readable accsim output, ``kind`` and ``attrs``
        set); ``"damaged"`` (a directory holding only what accsim writes, but whose
        root metadata cannot be read); ``"foreign"`` (anything else).
    kind : str or None
    attrs : dict
    detail : str
        Why it is foreign or damaged.
    """

    state: str
    kind: str | None = None
    attrs: dict | None = None
    detail: str = ""


def inspect(path: str | os.PathLike) -> Existing:
    """Classify what is at ``path`` (see :class:`Existing`).

    A directory is accsim's only when it holds accsim's marker (:data:`MARKER`) and
    nothing accsim does not write; a netCDF file when its root attributes name an
    accsim kind; a PNG when it carries accsim's ``tEXt`` stamp (:func:`stamp_png`).
    """
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        return Existing("absent")
    if p.is_symlink():
        return Existing("foreign", detail="it is a symbolic link")
    if p.is_dir():
        kind = read_marker(p)
        if kind is None and not any(p.iterdir()):
            return Existing("damaged", None, None, "it is an empty directory")
        if kind is None:
            legacy = _legacy_kind(p)
            if legacy is not None and not _foreign_files(p, legacy):
                return Existing("accsim", legacy, read_attrs(p))
            bad = _foreign_files(p, None)
            files = f" and holds files accsim does not write ({', '.join(bad)})" \
                if bad else ""
            return Existing("foreign", detail=f"it has no accsim marker ({MARKER}){files}: "
                            "accsim did not write it")
        bad = _foreign_files(p, kind)
        if bad:
            return Existing("foreign", kind, None,
                            f"it holds files accsim does not write ({', '.join(bad)})")
        if kind.endswith("-plots"):
            return Existing("accsim", kind, {})
        attrs = read_attrs(p)
        if attrs is None:
            return Existing("damaged", kind, None,
                            "its root metadata (zarr.json) is missing or unreadable")
        return Existing("accsim", kind, attrs)
    if not p.is_file():
        return Existing("foreign", detail="it is not a regular file")
    kind = png_kind(p)
    if kind is not None:
        return Existing("accsim", kind, {})
    attrs = read_attrs(p)
    if attrs is None:
        return Existing("foreign", detail="it is a file that is not an accsim dataset")
    kind = _kind_of(attrs)
    if kind is None:
        return Existing("foreign", None, attrs, "it is not an accsim result")
    return Existing("accsim", kind, attrs)


def check_replace(path: str | os.PathLike, kind: str, digest: str | None, *,
                  force: bool, option: str = "--out") -> Existing:
    """``ValueError`` unless the command of kind ``kind`` may write ``path``.

    Allowed: nothing there; this kind's own earlier result with the same
    ``config_sha256`` (``digest``; for sweeps, the same ``sweep_name``, passed as
    ``digest``); with ``force``, any accsim output of the same kind or a damaged one.
    Never: foreign files or directories, another kind of accsim output (``--force``
    does not help there: remove it yourself).
    """
    p = Path(path)
    m = manifest_path(p)
    if m.is_symlink() or (m.exists() and not m.is_file()):
        raise ValueError(f"{option} {str(p)!r}: {str(m)!r} (where accsim keeps the "
                         "manifest of this output) is not a regular file; accsim does not "
                         "follow or replace it: remove it yourself")
    ex = inspect(p)
    if ex.state == "absent":
        return ex
    where = f"{option} {str(p)!r}"
    if ex.state == "foreign":
        raise ValueError(f"{where} exists and is not an accsim {kind} output: "
                         f"{ex.detail}; accsim never replaces it (not even with --force): "
                         "choose another path or remove it yourself")
    if ex.kind is not None and ex.kind != kind:
        raise ValueError(f"{where} holds an accsim {ex.kind} output, not a {kind} "
                         f"output; accsim never replaces it (not even with --force): "
                         "choose another path or remove it yourself")
    if ex.state == "damaged":
        if force or kind == "sweep":
            return ex
        raise ValueError(f"{where} is a damaged accsim output ({ex.detail}); "
                         "pass --force to replace it")
    same_key = "sweep_name" if kind == "sweep" else "config_sha256"
    if digest is not None and str(ex.attrs.get(same_key)) == digest:
        return ex
    if force:
        return ex
    what = "sweep" if kind == "sweep" else "configuration"
    raise ValueError(f"{where} holds an accsim {kind} output of another {what} "
                     f"({same_key} {ex.attrs.get(same_key)!r}); pass --force to replace "
                     "it, or choose another path")


# ------------------------------------------------------------------------ locking
class OutputLock:
    """Exclusive lock of an output for the life of a command (``flock`` on
    ``.NAME.lock`` in the output's directory; released when the process exits, even
    killed). ``OutputBusy`` when another process holds it."""

    def __init__(self, path: str | os.PathLike, option: str = "--out"):
        p = Path(path)
        check_path_length(p, option)
        self.path = p
        self.option = option
        self.file = (p.parent if str(p.parent) else Path(".")) / f".{p.name}.lock"
        self._fd: int | None = None

    def _open(self) -> int:
        """The lock file's descriptor: created with ``O_CREAT | O_EXCL | O_NOFOLLOW``,
        or an existing regular file left by a killed run opened with ``O_NOFOLLOW``;
        a symbolic link or anything else at that path is refused, never followed."""
        flags = os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        refuse = (f"{self.option} {str(self.path)!r}: the lock file {str(self.file)!r} "
                  "exists and is not a regular file (a symbolic link?); accsim does not "
                  "follow it: remove it yourself")
        for _ in range(100):
            try:
                return os.open(self.file, flags | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pass
            try:
                fd = os.open(self.file, flags)
            except FileNotFoundError:
                continue  # removed meanwhile by its holder: create it again
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise ValueError(refuse) from None
                raise
            import stat

            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise ValueError(refuse)
            return fd
        raise OutputBusy(f"{self.option} {str(self.path)!r} is busy: its lock file keeps "
                         "changing")

    def __enter__(self) -> OutputLock:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                try:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                finally:
                    os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    who = f" (pid {holder})" if holder.isdigit() else ""
                    raise OutputBusy(f"{self.option} {str(self.path)!r} is busy: another "
                                     f"accsim process{who} is writing it; wait for it to "
                                     "finish, then rerun") from None
                raise
            # the holder before us may have removed the file after we opened it: the
            # lock counts only if it is on the file now at that path
            try:
                same = os.path.samestat(os.fstat(fd), os.lstat(self.file))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:  # the holder's pid, for the busy message (best effort: the disk may be full)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            try:
                self.file.unlink(missing_ok=True)  # still locked: nobody else holds it
            finally:
                os.close(self._fd)
                self._fd = None


def clean_leftovers(path: str | os.PathLike) -> list[Path]:
    """Remove ``.NAME.*.tmp`` / ``.NAME.*.old`` / ``.NAME.*.probe`` next to ``path``
    (left by killed runs), after putting back the previous unit of ``path`` if a
    command was killed while publishing one (:meth:`Unit.recover`); call it under
    :class:`OutputLock`. Returns what was removed."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    removed = []
    if not parent.is_dir():
        return removed
    Unit.recover(p)  # a unit killed while publishing: its previous parts go back first
    pat = re.compile(r"^\." + re.escape(p.name) + r"\.[^/]*\.(tmp|old|probe)$")
    for entry in parent.iterdir():
        if pat.match(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


# ------------------------------------------------------------------------ publishing
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False when unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                   ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def publish(new: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Put the finished output ``new`` (a sibling of ``dest``) at ``dest`` atomically.

    A file or a missing ``dest``: ``os.replace``. An existing directory: exchanged
    with ``new`` in one step, then the old one (now at ``new``) is removed. Where the
    exchange is unsupported, ``dest`` is renamed aside and ``new`` renamed in (a reader
    may then find no output for an instant, never a partial one).
    """
    new, dest = Path(new), Path(dest)
    if not dest.exists() or not (dest.is_dir() and new.is_dir()):
        if dest.is_dir() and not new.is_dir():
            raise ValueError(f"cannot replace the directory {str(dest)!r} by a file")
        os.replace(new, dest)
        return
    if not _exchange(new, dest):
        aside = new.with_name(new.name.removesuffix(".tmp") + ".old")
        os.replace(dest, aside)
        try:
            os.replace(new, dest)
        except BaseException:
            os.replace(aside, dest)
            raise
        new = aside
    shutil.rmtree(new, ignore_errors=True)


# ------------------------------------------------------------------------ other outputs
def check_target(path: str | os.PathLike, kind: str, *, option: str) -> Existing:
    """``ValueError`` unless ``path`` is free or holds an output of ``kind`` written by
    accsim earlier (a stamped PNG, a marked directory, an accsim dataset): the rule
    for plots and image folders next to a result, with or without ``--force``."""
    p = Path(path)
    check_path_length(p, option)
    ex = inspect(p)
    if ex.state == "absent" or (ex.state == "accsim" and ex.kind == kind):
        return ex
    what = ex.detail or f"it holds an accsim {ex.kind} output"
    raise ValueError(f"{option} {str(p)!r} exists and is not an accsim {kind} output: "
                     f"{what}; accsim never replaces it (not even with --force): choose "
                     "another path or remove it yourself")


def check_path_length(path: str | os.PathLike, option: str) -> None:
    """``ValueError`` when ``path`` (or one of its components, or a sibling temporary
    ``.NAME.XXXXXXXX.tmp``) exceeds the file system's limits (PATH_MAX, NAME_MAX)."""
    p = Path(path)
    full = os.fsencode(os.path.abspath(p))
    path_max, name_max = _PATH_MAX, _NAME_MAX
    if len(full) + 32 > path_max:
        raise ValueError(f"{option}: the path is {len(full)} bytes long; the limit is "
                         f"{path_max - 32} (PATH_MAX {path_max}, with room for temporaries)")
    for part in p.parts:
        if len(os.fsencode(part)) + _ROOM > name_max:
            raise ValueError(f"{option}: the name {part[:40]!r}... is "
                             f"{len(os.fsencode(part))} bytes long; the limit is "
                             f"{name_max - _ROOM} (NAME_MAX {name_max}, with room for "
                             "temporaries)")


def _sibling_tmp(dest: Path) -> Path:
    import tempfile

    parent = dest.parent if str(dest.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_png(dest: str | os.PathLike, kind: str, draw) -> Path:
    """Write a PNG of ``kind`` at ``dest`` atomically: ``draw(path)`` saves it to a
    temporary path beside ``dest``, which is stamped (:func:`stamp_png`) and renamed
    into place. Call :func:`check_target` first; on any error ``dest`` is unchanged."""
    dest = Path(dest)
    tmp = _sibling_tmp(dest)
    try:
        target = tmp / dest.name
        draw(target)
        stamp_png(target, kind)
        _fsync(target)
        os.replace(target, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def publish_dir(dest: str | os.PathLike, kind: str, fill) -> list[Path]:
    """Write a directory output of ``kind`` (an image folder) as one unit: ``fill(dir)``
    writes into a temporary directory beside ``dest`` and returns the paths written;
    the marker is added and the directory swapped in (:func:`publish`). Returns the
    final paths. Call :func:`check_target` first; on any error ``dest`` is unchanged."""
    dest = Path(dest)
    tmp = _sibling_tmp(dest)
    try:
        target = tmp / dest.name
        target.mkdir()
        written = fill(target)
        write_marker(target, kind)
        publish(target, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [dest / Path(w).name for w in written]


# ------------------------------------------------------------------------ file sets
def manifest_path(stem: str | os.PathLike) -> Path:
    """The manifest of a set of files ``STEM.*`` published together (hidden, beside)."""
    stem = Path(stem)
    return stem.with_name(f".{stem.name}.accsim.json")


def _set_name(stem: Path) -> Path:
    """The name temporaries of a file set are derived from (``.STEM.accsim-set.*.tmp``,
    so they never match the leftovers pattern of another output such as ``STEM.zarr``)."""
    return stem.with_name(stem.name + ".accsim-set")


def clean_fileset_leftovers(stem: str | os.PathLike) -> list[Path]:
    """:func:`clean_leftovers` for a file set: its staging directories and manifest
    temporaries (call it under the stem's :class:`OutputLock`)."""
    stem = Path(stem)
    return clean_leftovers(_set_name(stem)) + clean_leftovers(
        stem.with_name(manifest_path(stem).name.removeprefix(".")))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_manifest(stem: Path) -> dict | None:
    m = manifest_path(stem)
    try:
        if m.is_symlink() or not m.is_file():
            return None
        data = json.loads(m.read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("files"), dict)
            and isinstance(data.get("accsim_kind"), str)):
        return None
    return data


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # clean_fileset_leftovers
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_fileset(stem: str | os.PathLike, kind: str, suffixes, *, option: str) -> None:
    """``ValueError`` unless every ``STEM+SUFFIX`` is free or was written by an earlier
    command of ``kind`` (listed, with its SHA-256, in the manifest
    :func:`manifest_path`): user files of the same names are never replaced."""
    stem = Path(stem)
    check_path_length(stem.with_name(stem.name + max(suffixes, key=len)), option)
    m = manifest_path(stem)
    if m.is_symlink() or (m.exists() and not m.is_file()):
        raise ValueError(f"{option} {str(stem)!r}: {str(m)!r} is not accsim's manifest "
                         "(not a regular file); remove it yourself")
    man = _read_manifest(stem)
    ours = man["files"] if man and man["accsim_kind"] == kind else {}
    for suf in suffixes:
        p = stem.with_name(stem.name + suf)
        if not p.exists() and not p.is_symlink():
            continue
        known = ours.get(p.name)
        known = known if isinstance(known, list) else [known]
        if p.is_symlink() or not p.is_file() or _sha256(p) not in known:
            raise ValueError(f"{option} {str(stem)!r}: {str(p)!r} exists and was not "
                             f"written by an earlier accsim {kind} run (it is not in "
                             f"{m.name}, or was changed since); accsim never replaces it "
                             "(not even with --force): choose another path or remove it "
                             "yourself")


def publish_fileset(stem: str | os.PathLike, kind: str, files: dict) -> dict:
    """Publish the staged files ``{suffix: path}`` at ``STEM+suffix`` as one unit.

    Each file is copied beside its destination with ordinary I/O (so a full disk is an
    ``OSError`` before anything is replaced), then the manifest is written in state
    ``"publishing"`` (old and new hashes both listed), the files are renamed in, and
    the manifest is rewritten in state ``"complete"`` last. A reader checks the
    manifest (:func:`read_fileset`): a command killed in between leaves a set that
    readers report as incomplete and the next run replaces. Outputs of an earlier run
    that this one does not write are removed. Returns ``{suffix: final path}``."""
    stem = Path(stem)
    tmp = _sibling_tmp(_set_name(stem))
    try:
        staged, new = {}, {}
        for suf, src in files.items():
            dst = tmp / (stem.name + suf)
            with open(src, "rb") as fi, open(dst, "wb") as fo:
                shutil.copyfileobj(fi, fo, 1 << 20)
                fo.flush()
                os.fsync(fo.fileno())
            staged[suf] = dst
            new[dst.name] = _sha256(dst)
        old = _read_manifest(stem)
        old_files = old["files"] if old and old["accsim_kind"] == kind else {}
        both = {}
        for name in set(new) | set(old_files):
            prev = old_files.get(name)
            prev = prev if isinstance(prev, list) else [prev]
            both[name] = sorted({h for h in [*prev, new.get(name)] if h})
        m = manifest_path(stem)
        _write_json_atomic(m, {"accsim_kind": kind, "state": "publishing", "files": both})
        final = {}
        for suf, src in staged.items():
            dest = stem.with_name(stem.name + suf)
            os.replace(src, dest)
            final[suf] = dest
        for name in set(old_files) - set(new):
            stale = stem.with_name(name)
            if stale.is_file() and not stale.is_symlink() and \
                    _sha256(stale) in both[name]:
                stale.unlink()
        _write_json_atomic(m, {"accsim_kind": kind, "state": "complete", "files": new})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_fileset(stem: str | os.PathLike, kind: str) -> dict:
    """``{file name: path}`` of a complete set published by :func:`publish_fileset`;
    ``ValueError`` when there is none, or it is incomplete or mixed (a writer was
    killed while publishing, or a file was changed since)."""
    stem = Path(stem)
    man = _read_manifest(stem)
    if man is None or man["accsim_kind"] != kind:
        raise ValueError(f"{str(stem)!r}: no accsim {kind} output there "
                         f"({manifest_path(stem).name} is missing or unreadable)")
    if man.get("state") != "complete":
        raise ValueError(f"{str(stem)!r}: the {kind} output is incomplete (a run was "
                         "interrupted while publishing it): rerun it")
    out = {}
    for name, digest in man["files"].items():
        p = stem.with_name(name)
        if not p.is_file() or _sha256(p) != digest:
            raise ValueError(f"{str(stem)!r}: {name} does not match the manifest "
                             "(changed or removed since it was written): rerun it")
        out[name] = p
    return out


# ------------------------------------------------------------------------ units
def tree_sha256(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file, or of a directory's relative file names and contents (sorted);
    None when nothing is there."""
    p = Path(path)
    if p.is_symlink() or p.is_file():
        return _sha256(p) if p.is_file() else None
    if not p.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file() or q.is_symlink()):
        h.update(str(f.relative_to(p)).encode() + b"\0")
        h.update((_sha256(f) if f.is_file() and not f.is_symlink() else "link").encode())
    return h.hexdigest()


def unit_manifest(main: str | os.PathLike) -> Path:
    """The manifest of the output unit whose main part (the dataset) is ``main``:
    ``.NAME.accsim.json`` beside it (:class:`Unit`)."""
    return manifest_path(main)


def read_unit(main: str | os.PathLike) -> dict | None:
    """The manifest of the unit of ``main`` (:class:`Unit`), None when there is none;
    ``ValueError`` when it is unreadable."""
    m = unit_manifest(main)
    if not m.exists() and not m.is_symlink():
        return None
    try:
        if m.is_symlink() or not m.is_file():
            raise ValueError("not a regular file")
        data = json.loads(m.read_text())
        if not (isinstance(data, dict) and isinstance(data.get("parts"), dict)
                and isinstance(data.get("id"), str)):
            raise ValueError("not an accsim unit manifest")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{str(main)!r}: its manifest {m.name} is unreadable ({exc}): "
                         "rerun the command that wrote it") from None
    return data


def check_unit(main: str | os.PathLike, publish_id) -> dict | None:
    """What accsim's readers check before trusting the dataset ``main`` of a unit:
    its manifest (if any) is complete and names the dataset's ``publish_id``.
    ``ValueError`` otherwise; returns the manifest (None for outputs written before
    units existed, which have none)."""
    man = read_unit(main)
    if man is None:
        return None
    if man.get("state") != "complete":
        raise ValueError(f"{str(main)!r}: this output is incomplete (a command was "
                         "killed while publishing it); the next accsim command on this "
                         "output restores the previous one, or rerun it")
    if publish_id != man["id"]:
        raise ValueError(f"{str(main)!r} does not match its manifest "
                         f"{unit_manifest(main).name} (it was replaced or changed by "
                         "something other than accsim): rerun the command")
    return man


class Unit:
    """A multi-file output (a dataset with its image folder or PNG) published as one
    unit: every part is written into a temporary directory beside its destination
    (:meth:`stage`), then :meth:`publish` swaps them in behind a manifest
    (:func:`unit_manifest`).

    The manifest is written in state ``"publishing"`` (the new parts' SHA-256 and the
    previous ones) before any part is replaced; each part is exchanged in
    (``renameat2(RENAME_EXCHANGE)``; a file by ``os.replace`` after a hard link keeps
    the old one) with the previous part kept aside (``.NAME.ID.old``); the manifest is
    rewritten in state ``"complete"`` (the commit point), then the old parts are
    removed. Parts of the previous unit that this one does not write (an image folder
    of a run that had plots) are moved aside and removed with them, if unchanged.

    An error or interrupt before the commit puts the previous unit back at once
    (:meth:`recover`; the previous manifest, kept by a hard link, goes back byte for
    byte). A command killed before the commit leaves the previous parts on disk:
    accsim's readers refuse the output as incomplete (:func:`check_unit`) and the next
    command on it puts the previous unit back exactly (:meth:`recover`, under the
    :class:`OutputLock`) before doing anything else. ``publish_id`` (a fresh UUID,
    :attr:`id`) is stored in the dataset's attributes and in the manifest: a reader
    compares them.
    """

    def __init__(self, main: str | os.PathLike, kind: str):
        import uuid

        self.main = Path(main)
        self.kind = kind
        self.id = uuid.uuid4().hex
        self.parts: dict[Path, Path] = {}
        self._tmps: list[Path] = []

    def __enter__(self) -> Unit:
        return self

    def __exit__(self, *exc) -> None:
        for t in self._tmps:
            shutil.rmtree(t, ignore_errors=True)

    def stage(self, dest: str | os.PathLike) -> Path:
        """The path where the part ``dest`` is to be written (inside a fresh temporary
        directory beside ``dest``); nothing is created at it."""
        dest = Path(dest)
        tmp = _sibling_tmp(dest)
        self._tmps.append(tmp)
        self.parts[dest] = tmp / dest.name
        return self.parts[dest]

    def _aside(self, dest: Path) -> Path:
        return dest.with_name(f".{dest.name}.{self.id[:12]}.old")

    @staticmethod
    def _write(main: Path, man: dict) -> None:
        _write_json_atomic(unit_manifest(main), man)

    def publish(self) -> list[Path]:
        """Swap the staged parts in as one unit (see the class docstring); returns the
        destinations. Call it under the main part's :class:`OutputLock`."""
        parent = self.main.parent if str(self.main.parent) else Path(".")
        old = None
        try:
            old = read_unit(self.main)
        except ValueError:
            pass
        old_parts = old["parts"] if old and old.get("state") == "complete" and \
            old.get("accsim_kind") == self.kind else {}
        new = {d.name: tree_sha256(s) for d, s in self.parts.items()}
        if None in new.values():
            missing = [n for n, h in new.items() if h is None]
            raise ValueError(f"nothing was written for {', '.join(missing)}")
        moves: dict[str, dict] = {}
        for dest, src in self.parts.items():
            if dest.exists() or dest.is_symlink():
                # the previous part ends up at "aside", or, if the command dies between
                # the exchange and that rename, at the staging path "staged"
                moves[dest.name] = {"sha": tree_sha256(dest),
                                    "aside": self._aside(dest).name,
                                    "staged": os.path.relpath(src, parent)}
            else:
                moves[dest.name] = {"sha": None, "aside": None}
        stale = [parent / n for n, h in old_parts.items()
                 if n not in new and tree_sha256(parent / n) == h]
        for dest in stale:
            moves[dest.name] = {"sha": old_parts[dest.name],
                                "aside": self._aside(dest).name}
        keep = None  # the previous manifest, put back as is by a rollback
        if old is not None:
            keep = self.main.with_name(f".{self.main.name}.{self.id[:8]}m.old")
        try:
            if keep is not None:
                try:
                    os.link(unit_manifest(self.main), keep)
                except OSError:
                    shutil.copy2(unit_manifest(self.main), keep)
            self._write(self.main, {"accsim_kind": self.kind, "state": "publishing",
                                    "id": self.id, "parts": new, "previous": moves,
                                    "previous_id": old["id"] if old else None,
                                    "previous_manifest": keep.name if keep else None})
        except BaseException:
            if keep is not None:
                keep.unlink(missing_ok=True)
            raise
        try:
            asides = self._swap_in(moves, stale)
            self._write(self.main, {"accsim_kind": self.kind, "state": "complete",
                                    "id": self.id, "parts": new})
        except BaseException:
            # a failure (full disk, interrupt) before the commit: put the previous unit
            # back now; if even that fails, the next command on this output does it
            try:
                self.recover(self.main)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
            raise
        for a in [*asides, keep]:
            if a is not None:
                _remove(a)
        return list(self.parts)

    def _swap_in(self, moves: dict, stale: list[Path]) -> list[Path]:
        """Move the staged parts to their destinations (previous parts aside) and the
        stale parts of the previous unit aside; returns the aside paths."""
        asides = [self._swap_part(dest, src, moves[dest.name]["aside"] is not None)
                  for dest, src in self.parts.items()]
        for dest in stale:
            os.rename(dest, self._aside(dest))
            asides.append(self._aside(dest))
        return [a for a in asides if a is not None]

    def _swap_part(self, dest: Path, src: Path, existed: bool) -> Path | None:
        """Put the staged part ``src`` at ``dest``; the previous part (if ``existed``)
        goes to its aside path, which is returned."""
        if not existed:
            os.rename(src, dest)
            return None
        aside = self._aside(dest)
        if dest.is_dir() and src.is_dir() and _exchange(src, dest):
            os.rename(src, aside)  # the previous part, kept until the commit
        elif dest.is_dir() or src.is_dir():
            os.rename(dest, aside)
            os.rename(src, dest)
        else:
            try:
                os.link(dest, aside)
            except OSError:  # no hard links here: a copy keeps the previous file
                shutil.copy2(dest, aside)
            os.replace(src, dest)
        return aside

    @classmethod
    def recover(cls, main: str | os.PathLike) -> bool:
        """Put back the previous unit of ``main`` when a command was killed while
        publishing a new one (its manifest is in state ``"publishing"``); call it under
        the :class:`OutputLock`, before :func:`clean_leftovers`. True when something was
        restored or removed."""
        main = Path(main)
        try:
            man = read_unit(main)
        except ValueError:
            return False
        if man is None or man.get("state") != "publishing":
            return False
        parent = main.parent if str(main.parent) else Path(".")
        previous = man.get("previous")
        if not isinstance(previous, dict):
            return False  # not a manifest accsim wrote: nothing is moved
        restored = {}
        for name, mv in previous.items():
            if not (isinstance(mv, dict) and _beside(name) and _beside(mv.get("aside"))
                    and _beside(mv.get("staged"), staged=True)):
                continue  # not a path beside the output: never followed
            dest = parent / name
            prev, aside = mv.get("sha"), mv.get("aside")
            aside = parent / aside if aside else None
            staged = parent / mv["staged"] if mv.get("staged") else None
            if aside is not None and not (aside.exists() or aside.is_symlink()) and \
                    staged is not None and prev is not None and tree_sha256(staged) == prev:
                aside = staged  # killed between the exchange and the rename aside
            here, fresh = tree_sha256(dest), man["parts"].get(name)
            if prev is not None and here == prev:
                pass  # never moved, or already put back
            elif aside is not None and (aside.exists() or aside.is_symlink()):
                if here is None:
                    os.rename(aside, dest)
                elif here != fresh:
                    continue  # neither the previous part nor the new one: left alone
                elif dest.is_dir() and aside.is_dir() and _exchange(aside, dest):
                    pass  # the new part is now at the aside path, removed below
                elif dest.is_dir():
                    _remove(dest)
                    os.rename(aside, dest)
                else:
                    os.replace(aside, dest)
            elif prev is None and here is not None and here == fresh:
                _remove(dest)
            if prev is not None and tree_sha256(dest) == prev:
                restored[name] = prev
            if aside is not None and (aside.exists() or aside.is_symlink()) and \
                    (prev is None or name in restored):
                _remove(aside)
        main_prev = previous.get(main.name)
        main_prev = main_prev.get("sha") if isinstance(main_prev, dict) else None
        if main_prev is not None and main.name not in restored:
            return True  # the previous dataset could not be put back: readers refuse it
        keep = man.get("previous_manifest")
        keep = parent / keep if keep and _beside(keep) else None
        if restored and man.get("previous_id"):
            try:
                same = keep is not None and json.loads(keep.read_text()).get("id") == \
                    man["previous_id"]
            except (OSError, ValueError, AttributeError):
                same = False
            if same:  # the previous manifest itself, byte for byte (no space needed)
                os.replace(keep, unit_manifest(main))
            else:
                cls._write(main, {"accsim_kind": man.get("accsim_kind"), "state": "complete",
                                  "id": man["previous_id"], "parts": restored})
        else:
            unit_manifest(main).unlink(missing_ok=True)
        if keep is not None:
            keep.unlink(missing_ok=True)
        return True


def _beside(rel, staged: bool = False) -> bool:
    """Whether ``rel`` (from a unit manifest) names an entry beside the output: a plain
    name, or (``staged``) ``.NAME.*.tmp/NAME``; None is allowed (nothing there)."""
    if rel is None:
        return True
    if not isinstance(rel, str) or rel in ("", ".", "..") or "\0" in rel:
        return False
    parts = rel.split("/")
    if staged and len(parts) == 2:
        return parts[0].startswith(".") and parts[0].endswith(".tmp") and \
            parts[1] not in ("", ".", "..")
    return len(parts) == 1


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
