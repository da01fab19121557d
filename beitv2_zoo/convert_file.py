"""Write any supported checkpoint as a safetensors file in the canonical layout (``beitv2-zoo convert``).

The source may be a local file (mmpretrain, official or timm layout; ``.pth`` or
``.safetensors``), an ``https://`` URL, ``hf-hub:org/repo[@rev][/file]``, or a registered
name (its weights are fetched as ``pretrained=True`` would). It is read safely (weights-only
unpickling: a pickle that would run code is refused), converted to the official key names,
and written atomically with string metadata:

=================  ==========================================================================
``format``         ``'beitv2_zoo'``; ``format_version``: ``'1'``; ``layout``: ``'canonical'``
``source``         what was converted: the name, URL or hub spec as given, or the file name
``source_sha256``  sha256 of the source file
``source_layout``  ``'mmpretrain'``, ``'official'``, ``'timm'`` (or ``'canonical'``)
``architecture``   the registry architecture key, when the source is a registered name
``model_name``     the registered name, when known
``model_settings`` JSON of the :class:`~beitv2_zoo.models.Beit` settings read from the tensors
``classes``        JSON list of class names, when the source carries them (mmpretrain ``meta``)
=================  ==========================================================================

``get_model(name, pretrained=DST)`` and ``get_model(DST)`` load the result memory-mapped.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import hub
from .checkpoint import CANONICAL_FORMAT, Checkpoint, read_checkpoint, split_layout
from .convert import StateDict
from .errors import CheckpointError, ModelConfigError
from .safetensors_io import save
from .version import __version__

FORMAT_VERSION = "1"


@dataclass(frozen=True)
class ConvertedFile:
    """What :func:`convert_checkpoint` wrote.

    Attributes:
        path: the safetensors file written.
        source_path: the local file that was read.
        metadata: the string metadata stored in the file.
        num_tensors: tensors written.
        num_bytes: size of ``path``.
        sha256: sha256 of ``path``.
    """

    path: Path
    source_path: Path
    metadata: dict[str, str]
    num_tensors: int
    num_bytes: int
    sha256: str


def convert_checkpoint(src: str | Path, dst: str | Path, *, source: str | None = None, **download: Any) -> ConvertedFile:
    """Convert ``src`` to a canonical safetensors file at ``dst`` (written atomically).

    Args:
        src: a checkpoint file, an ``https://`` URL, an ``hf-hub:`` spec, or a registered name.
        dst: the file to write; its folder is created.
        source: for a registered name, which of its sources to fetch (see :func:`hub.select_sources`).
        **download: ``cache_dir``, ``offline``, ``url_map``, ``progress`` for the fetch.

    Raises:
        UnsafeCheckpointError: a pickle that would run code; nothing ran and nothing was written.
        CheckpointError: an unreadable source, or ``dst`` is the source file itself.
    """
    source_path, label, record = _local_source(src, source, download)
    dst = Path(dst).expanduser()
    if dst.exists() and dst.resolve() == source_path.resolve():
        raise CheckpointError(f"{dst} is the source file itself; choose another destination")
    checkpoint = read_checkpoint(source_path)
    metadata = canonical_metadata(checkpoint, label, hub.sha256_of(source_path), record)
    save(dst, checkpoint.state_dict, metadata)
    return ConvertedFile(dst, source_path, metadata, len(checkpoint.state_dict), dst.stat().st_size, hub.sha256_of(dst))


def canonical_metadata(checkpoint: Checkpoint, source: str, source_sha256: str, record: Any = None) -> dict[str, str]:
    """The string metadata (table above) of a canonical file holding ``checkpoint.state_dict``.

    Args:
        checkpoint: the source, read and converted by :func:`~beitv2_zoo.checkpoint.read_checkpoint`.
        source: what was converted (a name, URL, hub spec or file name).
        source_sha256: sha256 of the source file.
        record: the :class:`~beitv2_zoo.weight_record.WeightRecord` of a registered name, if any.
    """
    metadata = {
        "format": CANONICAL_FORMAT,
        "format_version": FORMAT_VERSION,
        "layout": "canonical",
        "source": source,
        "source_sha256": source_sha256,
        "source_layout": checkpoint.layout,
        "written_by": written_by(),
    }
    if record is not None:
        metadata.update(architecture=record.architecture, model_name=record.name)
    settings = _settings_of(checkpoint.state_dict)
    if settings is not None:
        metadata["model_settings"] = json.dumps(settings, sort_keys=True)
    if checkpoint.classes:
        metadata["classes"] = json.dumps(list(checkpoint.classes))
    return metadata


def written_by() -> str:
    """``'beitv2_zoo <version>'``: the ``written_by`` metadata of files this version writes."""
    return f"beitv2_zoo {__version__}"


def reads_back_unchanged(state_dict: StateDict) -> bool:
    """Whether a canonical state dict, saved and read again, is detected as already canonical
    (its keys pass through layout detection unchanged), so that the file loads as the source did."""
    again, _ = split_layout(state_dict)
    return again.keys() == state_dict.keys()


def _local_source(src: str | Path, source: str | None, download: dict[str, Any]) -> tuple[Path, str, Any]:
    """``(local file, label for the metadata, weight record or None)`` for any accepted ``src``."""
    from .registry import get_record, is_model

    text = str(src)
    if isinstance(src, str) and is_model(src):
        record = get_record(src)
        return hub.fetch_weights(record, source=source, **download), record.name, record
    if text.startswith("hf-hub:"):
        return hub.fetch_hf_spec(text, offline=download.get("offline")), text, None
    if re.match(r"^https?://", text):
        return hub.fetch_url(text, **download), text, None
    path = Path(src).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{src} is neither a checkpoint file nor a registered name (see `beitv2-zoo list`)")
    return path, path.name, None


def _settings_of(state_dict: dict[str, Any]) -> dict[str, Any] | None:
    """Constructor settings read from the tensors, or ``None`` for a checkpoint that is not a BEiT backbone."""
    from .factory import infer_architecture

    try:
        return infer_architecture(state_dict)
    except (ModelConfigError, KeyError, IndexError, ValueError):
        return None
