"""Open PyTorch pickles without ever running code from the file.

Every ``.pth`` is opened with ``torch.load(weights_only=True)``: only torch's own weights-only
set of globals (tensors, storages, containers) is allowed. Published training files also carry
bookkeeping that this unpickler refuses: mmengine's ``HistoryBuffer`` and ``MessageHub`` in
``message_hub``, numpy arrays and scalars inside them, and the official code's
``argparse.Namespace``. Exactly those globals, named in :data:`INERT_BOOKKEEPING`, are replaced
by inert stubs (a stub stores nothing and calls nothing; the real class is never imported) and
the load is retried, still with ``weights_only=True``. Any other global is refused with
:class:`~beitv2_zoo.errors.UnsafeCheckpointError` before anything runs: ``os.system`` as much as
``timeit.timeit``, ``cProfile.run`` or a nested ``torch.load``.

A zip checkpoint whose members declare far more bytes than the file holds is refused from its
central directory before anything is decompressed (:func:`check_declared_sizes`).
"""

import logging
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, UnsafeCheckpointError

logger = logging.getLogger(__name__)

_NUMPY_DTYPES = ("Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType", "Int16DType",
                 "Int8DType", "UInt8DType", "BoolDType")
INERT_BOOKKEEPING = frozenset(
    {
        "mmengine.logging.history_buffer.HistoryBuffer",
        "mmengine.logging.message_hub.MessageHub",
        "mmengine.config.config.ConfigDict",
        "argparse.Namespace",
        "collections.defaultdict",
        "_codecs.encode",
        *(f"{core}.multiarray.{name}" for core in ("numpy.core", "numpy._core") for name in ("_reconstruct", "scalar")),
        "numpy.ndarray",
        "numpy.dtype",
        *(f"numpy.dtypes.{name}" for name in _NUMPY_DTYPES),
    }
)
"""The only globals outside torch's weights-only set that a checkpoint may name: training bookkeeping
of published files, each replaced by an inert stub (never imported, never called for real)."""
_REFUSED_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")
_MAX_STUBS = 64


class _InertStub:
    """Stand-in for a refused class: accepts any constructor arguments and state, keeps nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _make_stub(qualified_name: str) -> tuple[type, str]:
    module, _, name = qualified_name.rpartition(".")
    if qualified_name not in INERT_BOOKKEEPING:
        raise UnsafeCheckpointError(
            f"refusing to load: the pickle references {qualified_name!r}, which is neither a tensor type nor "
            "known inert training bookkeeping, and could run code. Nothing from the file was executed. "
            "Only load checkpoints from sources you trust, or convert trusted ones to safetensors."
        )
    stub = type(name, (_InertStub,), {"__module__": module, "__qualname__": name})
    return stub, qualified_name


def _globals_listed_in_zip(path: Path) -> list[str]:
    if not zipfile.is_zipfile(path):
        return []
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # an odd archive: the retry loop below still finds every refused global
        return []


MAX_EXPANSION = 4
"""A zip checkpoint may declare at most this many times its own size (plus :data:`EXPANSION_SLACK`) in
uncompressed members. ``torch.save`` stores members uncompressed (ratio 1), so only a crafted
file comes near: one 6 MB file declared 6 GiB of deflated zeros."""
EXPANSION_SLACK = 16 << 20


def check_declared_sizes(path: Path) -> None:
    """Refuse a zip checkpoint whose members declare far more bytes than the file holds, before
    anything is decompressed (the declared sizes are read from the zip's central directory).

    Raises:
        CheckpointError: naming the declared and actual sizes.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(item.file_size for item in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a readable zip: torch.load reports it
    actual = path.stat().st_size
    if declared > MAX_EXPANSION * actual + EXPANSION_SLACK:
        raise CheckpointError(f"{path}: its zip members declare {declared:,} bytes uncompressed in a {actual:,}-byte "
                              "file; a PyTorch checkpoint stores its tensors uncompressed, so this is not one "
                              "(refused before decompressing anything)")


def load_pickle_checkpoint(path: Path) -> Any:
    """Load a ``.pth``/``.bin`` pickle with ``weights_only=True``, stubbing inert foreign classes.

    Raises:
        UnsafeCheckpointError: the pickle references code-running globals; nothing ran.
        CheckpointError: the file is truncated, corrupt, or not a PyTorch checkpoint.
    """
    with path.open("rb") as handle:
        head = handle.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # a zip archive (torch.save) or a pickle (legacy format)
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither the zip archive torch.save writes nor a "
                              f"pickle; it starts with {head!r}); checkpoints are .pth/.bin/.safetensors files")
    if zipfile.is_zipfile(path):
        check_declared_sizes(path)
    stubs = [_make_stub(name) for name in _globals_listed_in_zip(path)]
    for _ in range(_MAX_STUBS):
        try:
            with torch.serialization.safe_globals(stubs):
                result = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            match = _REFUSED_GLOBAL.search(str(error))
            if match is None:
                raise CheckpointError(f"{path}: not a loadable PyTorch checkpoint ({_first_line(error)})") from None
            stubs.append(_make_stub(match.group(1)))
            continue
        except Exception as error:  # torch raises many types for damaged files; all mean "unreadable"
            raise CheckpointError(
                f"{path}: cannot read the checkpoint ({_first_line(error)}); the file is probably truncated "
                "or corrupt: delete it and download it again"
            ) from None
        if stubs:
            logger.info("%s: ignored non-tensor objects of types %s", path, ", ".join(name for _, name in stubs))
        return result
    raise CheckpointError(f"{path}: more than {_MAX_STUBS} foreign classes in the pickle; refusing to load it")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
