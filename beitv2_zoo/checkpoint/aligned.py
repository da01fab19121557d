"""Write safetensors files in which every tensor starts on a 64-byte boundary.

Why: a memory mapping starts on a page, so a tensor's address in the mapping is its offset
in the file. Tensors that :func:`beitv2_zoo.checkpoint.safetensors_io.load_mmap` maps at arbitrary
offsets hold the same values as tensors in ordinary memory (which torch's CPU allocator
aligns to 64 bytes), but vectorised kernels then split their loops differently and a
model's float32 outputs can differ in the last bits (about 1e-6 for a BEiT). At 64-byte
offsets, a mapped model computes exactly what the same weights in ordinary memory compute.

How: the header is padded with spaces (as the safetensors library pads it to 8 bytes)
so that the data buffer starts at a multiple of 64. The format allows no holes between
tensors, so the tensors after the first must be placed with care; two schemes:

* ``fillers=False`` (the cache copies): no extra tensor. Every tensor whose byte size is a
  multiple of 64 comes first, in the given order, so each of them starts aligned; the others
  follow, largest first (only the first of them is sure to be aligned). In a BEiT these are
  only small vectors and relative position tables, used element-wise or gathered, where the
  address does not change a result; every weight matrix is a multiple of 64 bytes. The file
  holds exactly the model's tensors, so any reader (``timm``'s strict ``load_state_dict``
  included) accepts it.
* ``fillers=True``: each gap is filled by a ``uint8`` tensor named ``__pad__.<i>``
  (:data:`~beitv2_zoo.checkpoint.safetensors_io.PAD_PREFIX`), so *every* tensor starts aligned and
  the given order is kept. Any safetensors reader opens the file and this package's readers
  skip the fillers, but a strict ``load_state_dict`` elsewhere sees them as unexpected keys.
"""

import hashlib
import json
import os
import sys
import uuid
from pathlib import Path

import torch

from ..hub.cache import sha256_of
from .safetensors_io import DTYPES, PAD_PREFIX, save

ALIGNMENT = 64
"""Bytes: the alignment of torch's CPU allocator."""
_DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


def save_aligned(
    path: str | Path,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
    *,
    temp: str | Path | None = None,
    fillers: bool = True,
) -> str:
    """Write ``tensors`` and string ``metadata`` to ``path`` atomically, each tensor 64-byte aligned.

    Args:
        tensors: CPU tensors of any layout, in the order to store them (names must not start
            with ``__pad__.``).
        temp: the temporary file to write before the rename (default: a hidden unique name
            beside ``path``); it must be on the same file system.
        fillers: align every tensor with ``__pad__.<i>`` filler tensors, keeping the order
            (``True``), or write no filler and reorder instead (``False``; module docstring).

    Returns:
        The sha256 of the file written, computed from the bytes on their way out.
    """
    if sys.byteorder != "little":  # the bytes below are native; let the library write little-endian
        save(path, tensors, metadata)
        return sha256_of(path)
    path = Path(path)
    temp = Path(temp) if temp is not None else path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    entries, chunks = _layout({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, fillers)
    header = json.dumps({"__metadata__": metadata, **entries} if metadata else entries, separators=(",", ":")).encode()
    header += b" " * (-(8 + len(header)) % ALIGNMENT)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        with temp.open("wb") as handle:
            for part in (len(header).to_bytes(8, "little"), header, *chunks):
                data = memoryview(part.reshape(-1).view(torch.uint8).numpy()) if isinstance(part, torch.Tensor) else part
                digest.update(data)
                handle.write(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return digest.hexdigest()


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _layout(tensors: dict[str, torch.Tensor], with_fillers: bool = True) -> tuple[dict[str, dict], list[torch.Tensor]]:
    """Header entries (fillers included) and the tensors to write, in file order."""
    for name in tensors:
        if name.startswith(PAD_PREFIX):
            raise ValueError(f"tensor names starting with {PAD_PREFIX!r} are reserved for fillers, got {name!r}")
    if not with_fillers:
        whole = [k for k, v in tensors.items() if _nbytes(v) % ALIGNMENT == 0]
        rest = sorted(tensors.keys() - set(whole), key=lambda k: (-_nbytes(tensors[k]), k))
        tensors = {k: tensors[k] for k in (*whole, *rest)}
    entries: dict[str, dict] = {}
    chunks: list[torch.Tensor] = []
    offset = fillers = 0
    for name, tensor in tensors.items():
        gap = -offset % ALIGNMENT if with_fillers else 0
        if gap:
            entries[f"{PAD_PREFIX}{fillers}"] = {"dtype": "U8", "shape": [gap], "data_offsets": [offset, offset + gap]}
            chunks.append(torch.zeros(gap, dtype=torch.uint8))
            offset, fillers = offset + gap, fillers + 1
        nbytes = _nbytes(tensor)
        entries[name] = {"dtype": _DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape),
                         "data_offsets": [offset, offset + nbytes]}
        chunks.append(tensor)
        offset += nbytes
    return entries, chunks
