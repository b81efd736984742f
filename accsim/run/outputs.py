"""Safety of accsim's outputs: results are the user's data.

The three writers (``accsim run``, ``accsim verify``, ``accsim sweep``) share these rules
(``docs/datasets.md``, "Guarantees"):

* **Never replace what is not ours.** :func:`check_replace` inspects an existing output
  before any work. Only this command's own earlier result (same kind, same
  configuration) is replaced without asking; another accsim result needs ``--force``;
  anything else (a plain file, a directory with files accsim does not write, another
  kind of store) is refused even with ``--force``.
* **Atomic publish.** A dataset is written next to its destination (``.NAME.*.tmp``)
  and swapped in with one ``renameat2(RENAME_EXCHANGE)`` (Linux; a file is replaced by
  ``rename``, atomic on POSIX): a reader sees the old output or the new one, never a
  mixture, and a writer killed at any moment leaves the old output intact.
* **One writer at a time.** :class:`OutputLock` takes an exclusive ``flock`` on
  ``.NAME.lock`` next to the output for the whole command; a second writer is told
  that the output is busy (:class:`OutputBusy`, exit code 3) instead of doing the
  work twice. The lock file is removed when the command ends (a killed command leaves
  it, unlocked; the next run reuses it).
* **Leftovers are cleaned.** The temporary ``.NAME.*.tmp`` / ``.NAME.*.old`` /
  ``.NAME.*.probe`` entries of killed runs are removed by the next run of the same
  output (under the lock, so never those of a live writer).
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

__all__ = ["KINDS", "Existing", "OutputBusy", "OutputLock", "check_replace",
           "clean_leftovers", "config_digest", "inspect", "publish", "read_attrs"]

#: The kinds of output accsim writes (attribute ``accsim_kind``).
KINDS = ("run", "verify", "sweep")

_ZARR_META = {"zarr.json", ".zgroup", ".zattrs", ".zmetadata"}
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
        if entry.is_file() and name in _ZARR_META:
            continue
        if entry.is_dir() and name == "cells" and kind in (None, "sweep"):
            bad += [f"cells/{f.name}" for f in entry.iterdir()
                    if not (f.is_file() and (f.suffix == ".json" or f.name.endswith(".tmp")))]
        elif entry.is_dir() and ((entry / "zarr.json").is_file()
                                 or (entry / ".zarray").is_file()):
            for root, _dirs, files in os.walk(entry):
                bad += [str(Path(root, f).relative_to(path)) for f in files
                        if not _ARRAY_FILE.match(f)]
        else:
            bad.append(name)
        if len(bad) >= 5:
            break
    return bad[:5]


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
    """Classify what is at ``path`` (see :class:`Existing`)."""
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        return Existing("absent")
    if p.is_symlink():
        return Existing("foreign", detail="it is a symbolic link")
    attrs = read_attrs(p)
    kind = _kind_of(attrs) if attrs is not None else None
    if p.is_dir():
        bad = _foreign_files(p, kind)
        if bad:
            return Existing("foreign", kind, attrs,
                            f"it holds files accsim does not write ({', '.join(bad)})")
        if attrs is None:
            if not any(p.iterdir()):
                return Existing("damaged", None, None, "it is an empty directory")
            return Existing("damaged", "sweep" if (p / "cells").is_dir() else None, None,
                            "its root metadata (zarr.json) is missing or unreadable")
    elif attrs is None:
        return Existing("foreign", detail="it is a file that is not an accsim dataset")
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
        self.path = p
        self.option = option
        self.file = (p.parent if str(p.parent) else Path(".")) / f".{p.name}.lock"
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                try:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                finally:
                    os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    who = f" (pid {holder})" if holder else ""
                    raise OutputBusy(f"{self.option} {str(self.path)!r} is busy: another "
                                     f"accsim process{who} is writing it; wait for it to "
                                     "finish, then rerun") from None
                raise
            # the holder before us may have removed the file after we opened it: the
            # lock counts only if it is on the file now at that path
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.file))
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
    (left by killed runs); call it under :class:`OutputLock`. Returns what was removed."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    removed = []
    if not parent.is_dir():
        return removed
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
