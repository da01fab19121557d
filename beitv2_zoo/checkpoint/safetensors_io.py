"""Read safetensors files as memory-mapped tensors (no second copy); write them atomically.

The format (huggingface/safetensors): an 8-byte little-endian unsigned length ``N``, then
``N`` bytes of UTF-8 JSON::

    {"<name>": {"dtype": "F32", "shape": [768, 3], "data_offsets": [begin, end]}, ...,
     "__metadata__": {"<key>": "<string value>"}}

then the data buffer. ``data_offsets`` are byte offsets relative to the buffer, which starts
at byte ``8 + N`` of the file; tensors are stored row-major, little-endian, and together
cover the buffer exactly.

:func:`load_mmap` maps the whole file once with
``torch.UntypedStorage.from_file(path, shared=False, nbytes=file_size)`` (a private,
copy-on-write mapping: pages are read lazily and writes never reach the file) and makes
each tensor a view on a slice of that storage. Nothing is copied, except a tensor whose
byte offset is not a multiple of its element size (other writers may produce one), which
is copied into aligned memory. Each tensor owns a distinct storage slice, so a state dict
read here can be saved again with ``safetensors`` or ``torch.save`` as usual. Filler tensors
named ``__pad__.<i>`` (:data:`PAD_PREFIX`, written by :mod:`beitv2_zoo.checkpoint.aligned`
to align the others) are skipped.
"""

import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError, CheckpointWriteError

PAD_PREFIX = "__pad__."
"""Names of filler tensors that only align the tensors after them; readers here skip them."""
_HEADER_LIMIT = 100 * 1024 * 1024  # bytes; the safetensors library refuses larger headers too

DTYPES: dict[str, torch.dtype] = {
    name: dtype
    for name, dtype in (
        ("F64", torch.float64), ("F32", torch.float32), ("F16", torch.float16), ("BF16", torch.bfloat16),
        ("I64", torch.int64), ("I32", torch.int32), ("I16", torch.int16), ("I8", torch.int8),
        ("U8", torch.uint8), ("BOOL", torch.bool),
        ("U16", getattr(torch, "uint16", None)), ("U32", getattr(torch, "uint32", None)),
        ("U64", getattr(torch, "uint64", None)),
        ("F8_E4M3", getattr(torch, "float8_e4m3fn", None)), ("F8_E5M2", getattr(torch, "float8_e5m2", None)),
    )
    if dtype is not None
}
"""safetensors dtype names → torch dtypes (those this torch has)."""


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lies in the file.

    Attributes:
        dtype: element type.
        shape: dimensions (``()`` for a scalar).
        begin, end: byte offsets relative to the data buffer; ``end - begin = numel * itemsize``.
    """

    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        """Size in bytes."""
        return self.end - self.begin


@dataclass(frozen=True)
class Header:
    """A parsed, validated safetensors header.

    Attributes:
        tensors: name → :class:`TensorInfo`, in file order of the header.
        metadata: the ``__metadata__`` string map (empty when absent).
        data_start: byte offset of the data buffer in the file (``8 + N``).
        file_size: size of the file in bytes.
    """

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int
    file_size: int


def read_header(path: str | Path) -> Header:
    """Parse and validate the header of ``path`` without reading the tensor data.

    Raises:
        CheckpointError: not a safetensors file, a malformed header, an unknown dtype, or a
            data buffer shorter than the header says (a truncated file).
    """
    path = Path(path)
    file_size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise _corrupt(path, f"only {len(prefix)} bytes long")
        header_size = int.from_bytes(prefix, "little")
        if header_size > min(_HEADER_LIMIT, file_size - 8):
            raise _corrupt(path, f"header length {header_size} does not fit a {file_size}-byte file")
        raw = handle.read(header_size)
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _corrupt(path, f"the header is not valid JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise _corrupt(path, "the header is not a JSON object")
    metadata = parsed.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _corrupt(path, "__metadata__ must map strings to strings")
    tensors = {name: _tensor_info(path, name, entry) for name, entry in parsed.items()}
    data_start = 8 + header_size
    _check_coverage(path, tensors, file_size - data_start)
    return Header(tensors, dict(metadata), data_start, file_size)


def _tensor_info(path: Path, name: str, entry: object) -> TensorInfo:
    if not isinstance(entry, dict):
        raise _corrupt(path, f"entry {name!r} is not an object")
    dtype = DTYPES.get(entry.get("dtype"))  # type: ignore[arg-type]
    if dtype is None:
        raise _corrupt(path, f"tensor {name!r} has unsupported dtype {entry.get('dtype')!r}")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise _corrupt(path, f"tensor {name!r} has an invalid shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise _corrupt(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
    info = TensorInfo(dtype, tuple(shape), offsets[0], offsets[1])
    numel = 1
    for dim in info.shape:
        numel *= dim
    if info.nbytes != numel * dtype.itemsize:
        raise _corrupt(path, f"tensor {name!r}: {info.nbytes} bytes for shape {list(shape)} of {entry['dtype']}")
    return info


def _check_coverage(path: Path, tensors: dict[str, TensorInfo], buffer_size: int) -> None:
    """The tensors must tile the buffer ``[0, buffer_size)`` without gaps or overlaps."""
    position = 0
    for info in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if info.begin != position:
            raise _corrupt(path, f"tensor data overlaps or leaves a gap at byte {position}")
        position = info.end
    if position > buffer_size:
        raise _corrupt(path, f"the header needs {position} data bytes but the file holds {buffer_size}; it is truncated")
    if position < buffer_size:
        raise _corrupt(path, f"{buffer_size - position} bytes after the last tensor")


def _corrupt(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"{path}: not a valid safetensors file ({reason}); if it was downloaded, delete it and fetch it again")


def load_mmap(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of ``path`` as CPU views on one private memory mapping of the file.

    Returns:
        name → tensor with the header's dtype and shape, in header order. The mapping stays
        alive while any tensor does; writing to a tensor copies the touched page and never
        changes the file.
    """
    path = Path(path)
    header = read_header(path)
    if sys.byteorder != "little":  # the mapping holds little-endian bytes; let the library swap them
        from safetensors.torch import load_file

        return {k: v for k, v in load_file(str(path), device="cpu").items() if not k.startswith(PAD_PREFIX)}
    if not header.tensors:
        return {}
    storage = torch.UntypedStorage.from_file(os.fspath(path), shared=False, nbytes=header.file_size)
    return {name: _view(storage, header.data_start, info) for name, info in header.tensors.items()
            if not name.startswith(PAD_PREFIX)}


def load_in_memory(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of ``path`` read into this process's memory (one read of the file, no mapping).

    For files the package does not own: the tensors stay as they were read even when the file
    is rewritten or truncated afterwards (a mapping would change with it, or fault). The buffer
    comes from torch's allocator, 64-byte aligned like the mapped case, so the values and the
    results computed from them are the same as :func:`load_mmap`'s.

    Raises:
        CheckpointError: the header is damaged, or the file shrank while it was read.
    """
    path = Path(path)
    header = read_header(path)
    if sys.byteorder != "little" or not header.tensors:
        return load_mmap(path) if header.tensors else {}
    data = torch.empty(header.file_size, dtype=torch.uint8)
    with path.open("rb") as file:
        read = file.readinto(memoryview(data.numpy()))
    if read != header.file_size:
        raise _corrupt(path, f"{read} bytes could be read of the {header.file_size} its header promised")
    storage = data.untyped_storage()
    return {name: _view(storage, header.data_start, info) for name, info in header.tensors.items()
            if not name.startswith(PAD_PREFIX)}


def _view(storage: torch.UntypedStorage, data_start: int, info: TensorInfo) -> torch.Tensor:
    """Tensor ``info`` as a view on ``storage`` (the whole file), copied only if misaligned."""
    if info.nbytes == 0:
        return torch.empty(info.shape, dtype=info.dtype)
    start = data_start + info.begin
    chunk = storage[start : start + info.nbytes]  # a storage view on the same mapping: no copy
    flat = torch.empty(0, dtype=torch.uint8).set_(chunk)
    if chunk.data_ptr() % info.dtype.itemsize:
        aligned = torch.empty(info.shape, dtype=info.dtype)
        aligned.view(-1).view(torch.uint8).copy_(flat)
        return aligned
    return flat.view(info.dtype).view(info.shape)


def looks_like_safetensors(path: str | Path) -> bool:
    """Whether ``path`` starts like a safetensors file (an 8-byte header length that fits the
    file, then ``{``), whatever its suffix; reads 9 bytes."""
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def save(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` (CPU, any layout) and string ``metadata`` to ``path`` atomically.

    The file is written beside ``path`` under a unique temporary name and renamed into place,
    so ``path`` never holds a partial file. Tensors are made contiguous; tensors that share
    storage are copied apart (safetensors stores each one separately).

    Raises:
        CheckpointWriteError: the file cannot be written (disk full, permission), naming the
            folder and its free space.
    """
    from safetensors.torch import save_file

    path = Path(path)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(_unshared(tensors), os.fspath(temp), metadata=metadata)
        os.replace(temp, path)
    except Exception as error:  # safetensors reports a full disk as its own SafetensorError
        raise write_error(path, error) from None
    finally:
        temp.unlink(missing_ok=True)


def write_error(path: Path, error: BaseException) -> CheckpointWriteError:
    """A :class:`CheckpointWriteError` for a failed write of ``path``: the reason, the folder, its free space."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = f"{shutil.disk_usage(folder).free / 1e6:,.1f} MB free in {folder}"
    except OSError:
        free = f"the free space of {folder} is unknown"
    reason = " ".join(str(getattr(error, "strerror", None) or error).split())[:200]
    return CheckpointWriteError(f"cannot write {path}: {reason} ({free}); free some space or write elsewhere. "
                                "No partial file was left under that name")


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, each on its own storage."""
    seen: set[int] = set()
    result = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if tensor.numel() and pointer in seen:
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        result[name] = tensor
    return result
