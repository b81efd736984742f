"""State-dict files: PyTorch ``.pth`` (optional extra ``accsim[torch]``) and ``.npz``.

Only :func:`load_state_dict` of a ``.pth`` file imports torch (``torch.load`` with
``map_location="cpu"`` and ``weights_only=True``, so no code in the file runs and CUDA
tensors load on a CPU-only machine). ``.npz`` files hold the same name -> array mapping
without torch.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from accsim.graph.importers.spec import build_graph

__all__ = ["load_state_dict", "load_pth_graph", "torch_available"]


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def load_state_dict(path: str | Path) -> dict:
    """Name -> float64 array of a ``.pth`` / ``.pt`` (torch) or ``.npz`` file.

    Raises
    ------
    ValueError
        Missing file, unreadable file, torch not installed for a ``.pth``, or a file
        that is not a flat mapping of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"state dict file {str(path)!r} does not exist")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: np.asarray(f[k]) for k in f.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile,
                zlib.error) as exc:  # a truncated or corrupt archive
            raise ValueError(f"{path}: cannot read the .npz state dict (truncated or "
                             f"corrupt?): {type(exc).__name__}: {exc}") from None
    if path.suffix not in (".pth", ".pt"):
        raise ValueError(f"{path}: unknown state dict type {path.suffix!r} (.pth, .pt, .npz)")
    try:
        import torch
    except ImportError:
        raise ValueError(f"{path}: reading .pth files needs PyTorch: pip install "
                         "'accsim[torch]' (torch==2.13.0, the CPU wheel)") from None
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ValueError(f"{path}: cannot load the state dict: {exc}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: holds a {type(sd).__name__}, not a state dict")
    out = {}
    for k, v in sd.items():
        if not hasattr(v, "detach"):
            raise ValueError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor")
        out[k] = _to_numpy(torch, path, k, v)
    return out


def _to_numpy(torch, path, key: str, v) -> np.ndarray:
    """A dense CPU tensor as a numpy array; bfloat16 and float16 are cast to float32,
    which holds every value of both exactly (IEEE 754 binary32 has more exponent and
    significand bits than either). Sparse, quantised and meta tensors are refused with
    the tensor's name (their values are not a plain array of floats)."""
    if getattr(v, "layout", torch.strided) != torch.strided:
        raise ValueError(f"{path}: tensor {key!r} is sparse (layout {v.layout}); accsim "
                         "reads dense tensors only: save it with .to_dense()")
    if getattr(v, "is_quantized", False):
        raise ValueError(f"{path}: tensor {key!r} is quantised ({v.dtype}); accsim reads "
                         "float tensors only: save it with .dequantize()")
    if getattr(v, "is_meta", False) or v.device.type == "meta":
        raise ValueError(f"{path}: tensor {key!r} is on the meta device and holds no "
                         "values: save the materialised model")
    v = v.detach().cpu()
    if v.dtype in (torch.bfloat16, torch.float16):
        v = v.to(torch.float32)  # exact: binary32 contains both formats
    try:
        return v.numpy()
    except (TypeError, RuntimeError) as exc:
        raise ValueError(f"{path}: tensor {key!r} ({v.dtype}) cannot be read: "
                         f"{exc}") from None


def load_pth_graph(path, name: str, input_shape, layers: list) -> object:
    """:func:`~accsim.graph.importers.spec.build_graph` on a state-dict file."""
    return build_graph(name, input_shape, layers, load_state_dict(path), source=str(path))
