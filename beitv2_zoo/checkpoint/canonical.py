"""Write any supported checkpoint as a safetensors file in the canonical layout (``beitv2-zoo convert``).

The source may be a local file (mmpretrain, official or timm layout; ``.pth`` or
``.safetensors``), an ``https://`` URL, ``hf-hub:org/repo[@rev][/file]``, or a registered
name (its weights are fetched as ``pretrained=True`` would). It is read safely (weights-only
unpickling: a pickle that would run code is refused), converted to the official key names,
and written atomically with string metadata:

=================  ==========================================================================
``format``         ``'pt'`` (what transformers and other readers require); ``beitv2_zoo_format``:
                   ``'1'`` (our marker; files with the older ``format: beitv2_zoo`` still read as
                   canonical); ``format_version``: ``'1'``; ``layout``: ``'canonical'``
``source``         what was converted: the name, URL or hub spec as given, or the file name
``source_sha256``  sha256 of the source file
``source_layout``  ``'mmpretrain'``, ``'official'``, ``'timm'`` (or ``'canonical'``)
``architecture``   the registry architecture key, when the source is a registered name
``model_name``     the registered name, when known
``model_settings`` JSON of the :class:`~beitv2_zoo.models.Beit` settings read from the tensors
``classes``        JSON list of class names, when the source carries them (mmpretrain ``meta``)
=================  ==========================================================================

``get_model(name, pretrained=DST)`` and ``get_model(DST)`` load the result; ``beitv2_zoo.api.convert_checkpoint``
resolves the source and calls :func:`write_canonical`.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ModelConfigError
from ..hub import sha256_of
from ..version import written_by
from .infer import infer_architecture
from .keymaps import StateDict
from .layouts import split_layout
from .reading import Checkpoint, format_metadata
from .safetensors_io import save

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


def write_canonical(checkpoint: Checkpoint, dst: str | Path, source: str, source_sha256: str,
                    record: Any = None) -> ConvertedFile:
    """Write ``checkpoint`` as a canonical safetensors file at ``dst`` (atomically), with the metadata above.

    Raises:
        CheckpointError: ``dst`` is the source file itself.
    """
    dst = Path(dst).expanduser()
    if dst.exists() and dst.resolve() == checkpoint.path.resolve():
        raise CheckpointError(f"{dst} is the source file itself; choose another destination")
    metadata = canonical_metadata(checkpoint, source, source_sha256, record)
    save(dst, checkpoint.state_dict, metadata)
    return ConvertedFile(dst, checkpoint.path, metadata, len(checkpoint.state_dict), dst.stat().st_size, sha256_of(dst))


def canonical_metadata(checkpoint: Checkpoint, source: str, source_sha256: str, record: Any = None) -> dict[str, str]:
    """The string metadata (table above) of a canonical file holding ``checkpoint.state_dict``.

    Args:
        checkpoint: the source, read and converted by :func:`~beitv2_zoo.checkpoint.read_checkpoint`.
        source: what was converted (a name, URL, hub spec or file name).
        source_sha256: sha256 of the source file.
        record: the :class:`~beitv2_zoo.weights.schema.WeightRecord` of a registered name, if any.
    """
    metadata = {
        **format_metadata(),
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


def reads_back_unchanged(state_dict: StateDict) -> bool:
    """Whether a canonical state dict, saved and read again, is detected as already canonical
    (its keys pass through layout detection unchanged), so that the file loads as the source did."""
    again, _ = split_layout(state_dict)
    return again.keys() == state_dict.keys()


def _settings_of(state_dict: dict[str, Any]) -> dict[str, Any] | None:
    """Constructor settings read from the tensors, or ``None`` for a checkpoint that is not a BEiT backbone."""
    try:
        return infer_architecture(state_dict)
    except (ModelConfigError, KeyError, IndexError, ValueError):
        return None
