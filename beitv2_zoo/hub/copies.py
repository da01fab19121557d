"""Canonical safetensors copies of cached pickles: their names, their check, writing and removing them.

A ``.pth`` (or ``.bin``, any PyTorch pickle) must be unpickled into memory and converted on
every load, while a safetensors file in the canonical layout is memory-mapped with no copy.
So, after a pickle in the cache has been verified, the loader keeps its
converted state dict beside it (written by :mod:`beitv2_zoo.checkpoint.cache_copy`; this
module only names, checks and removes copies, so the download layer never reads tensors)::

    <cache>/checkpoints/<file>                                   the verified download (``….pth``)
    <cache>/checkpoints/<file>.canonical.safetensors             its canonical copy, tensors 64-byte aligned
    <cache>/checkpoints/<file>.canonical.safetensors.sha256      the copy's sha256 (``sha256sum`` format)
    <cache>/checkpoints/<file>.canonical.safetensors.tmp-<random>.incomplete    a copy being written

The copy's name keeps the whole source name (suffix included), so it can never collide with
another download, and ``sha256sum -c`` checks it by hand. It holds exactly the
model's tensors (no filler: ``timm``'s strict ``load_state_dict`` accepts it), ordered so
that every tensor whose size is a multiple of 64 bytes (every weight matrix) starts on a
64-byte boundary (:mod:`beitv2_zoo.checkpoint.aligned`), and the mapped model computes bit for
bit what the model loaded from the pickle computes; it gets the source file's permissions.
Its metadata is what ``beitv2-zoo convert`` writes (``format: pt``, ``beitv2_zoo_format``, ``layout``, ``source`` = the URL, ``source_sha256``,
``source_layout``, ``written_by``, ``model_settings``, ``classes``) plus:

======================  ================================================================
``cache_copy_of``       the source file's name
``cache_copy_version``  :data:`COPY_VERSION`
``source_size``         the source file's size in bytes
======================  ================================================================

A copy is used only when (:func:`inspect_copy`) the source file is still there with the
recorded size, the copy was written by this version of beitv2_zoo, the recorded
``source_sha256`` is the one the record promises, and the copy's own sha256 equals its
``.sha256`` file. The last check replaces re-hashing the source: each reuse hashes one file,
the copy. Anything else makes the copy ``'stale'`` or ``'bad'``; the loader then deletes it
(with a warning) and converts the verified source again.
"""

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..weights.schema import Source
from .cache import expected_hash, hash_matches, hash_prefix_in_name, sha256_of
from ..version import written_by
from .disk import writing

logger = logging.getLogger(__package__)

COPY_SUFFIX = ".canonical.safetensors"
"""Appended to the source file's name."""
HASH_SUFFIX = ".sha256"
"""Appended to the copy's name for the file holding its sha256."""
COPY_VERSION = "2"
"""Bump when the copy's contents change meaning: older copies are then converted again
(``"2"``: ``format: pt`` metadata and no ``__pad__.*`` filler tensors)."""
_MAX_HEADER = 100 * 2**20
"""Bytes: a copy's header is a few kilobytes; anything far larger is damage."""
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CopyCheck:
    """What :func:`inspect_copy` found.

    Attributes:
        status: ``'ok'`` (use it), ``'missing'`` (no copy), ``'stale'`` (a sound copy that no
            longer fits: source gone or resized, another beitv2_zoo version) or ``'bad'``
            (damaged, unverifiable, or converted from a file other than the promised one).
        detail: a sentence for messages (the copy's sha256 when ``'ok'``).
    """

    status: str
    detail: str

    @property
    def usable(self) -> bool:
        return self.status == "ok"


def copy_path(source_file: Path) -> Path:
    """``<file>.canonical.safetensors`` beside ``source_file``."""
    return source_file.with_name(source_file.name + COPY_SUFFIX)


def hash_path(copy: Path) -> Path:
    """``<copy>.sha256``: the copy's recorded sha256."""
    return copy.with_name(copy.name + HASH_SUFFIX)


def source_name_of(name: str) -> str | None:
    """The source file name a copy (or its hash file, or a copy being written) belongs to; ``None`` for other names."""
    name = name.split(".tmp-")[0]
    if name.endswith(COPY_SUFFIX + HASH_SUFFIX):
        name = name[: -len(HASH_SUFFIX)]
    return name[: -len(COPY_SUFFIX)] if name.endswith(COPY_SUFFIX) and len(name) > len(COPY_SUFFIX) else None


def inspect_copy(source_file: Path, sources: Iterable[Source] = ()) -> CopyCheck:
    """Check the copy of ``source_file`` against ``sources`` (those promising a hash are compared
    with the recorded ``source_sha256``; with none, a ``-<hex>.`` prefix in the file name is).

    Cheap checks come first (metadata, sizes); the copy is hashed only when they pass. A file
    that cannot be read makes the copy ``'bad'``; this never raises.
    """
    copy = copy_path(source_file)
    try:
        return _inspect(copy, source_file, sources)
    except (OSError, ValueError) as error:
        return CopyCheck("bad", f"{copy} cannot be read ({' '.join(str(error).split())})")


def _inspect(copy: Path, source_file: Path, sources: Iterable[Source]) -> CopyCheck:
    if not copy.is_file():
        return CopyCheck("missing", f"{copy} does not exist")
    recorded = _recorded_hash(hash_path(copy))
    if recorded is None:
        return CopyCheck("bad", f"{copy} has no readable sha256 in {hash_path(copy).name}")
    metadata = _metadata_of(copy)
    if metadata.get("cache_copy_of") != source_file.name or metadata.get("cache_copy_version") != COPY_VERSION:
        return CopyCheck("bad", f"{copy} is not a version-{COPY_VERSION} copy of {source_file.name}")
    if metadata.get("written_by") != written_by():
        return CopyCheck("stale", f"{copy} was written by {metadata.get('written_by')}, this is {written_by()}")
    if not source_file.is_file():
        return CopyCheck("stale", f"{copy}: its source {source_file.name} is gone")
    if metadata.get("source_size") != str(source_file.stat().st_size):
        return CopyCheck("stale", f"{copy} was converted from a {metadata.get('source_size')}-byte "
                                  f"{source_file.name}, which now has {source_file.stat().st_size} bytes")
    source_hash = metadata.get("source_sha256", "")
    for source in _hashed(sources, source_file.name):
        if not _HEX64.match(source_hash) or not hash_matches(source_hash, source):
            return CopyCheck("bad", f"{copy} was converted from a file with sha256 {source_hash or '(none)'}, "
                                    f"expected {expected_hash(source)}")
    actual = sha256_of(copy)
    if actual != recorded:
        return CopyCheck("bad", f"{copy} has sha256 {actual}, recorded {recorded} (corrupted or replaced)")
    return CopyCheck("ok", f"sha256 {actual} (canonical copy of {source_file.name}, sha256 {source_hash})")


def _metadata_of(copy: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, read from its header alone (no tensor is touched).

    Raises:
        ValueError: the file does not start with a readable safetensors header.
    """
    with copy.open("rb") as file:
        size_bytes = file.read(8)
        if len(size_bytes) != 8:
            raise ValueError("shorter than a safetensors header")
        size = int.from_bytes(size_bytes, "little")
        if not 2 <= size <= min(_MAX_HEADER, copy.stat().st_size - 8):
            raise ValueError(f"declares a {size}-byte header")
        header = json.loads(file.read(size))
    metadata = header.get("__metadata__", {}) if isinstance(header, dict) else {}
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def _hashed(sources: Iterable[Source], source_name: str) -> list[Source]:
    checks = [s for s in sources if s.sha256 or s.sha256_prefix]
    prefix = hash_prefix_in_name(source_name)
    return checks or ([Source(url=source_name, sha256_prefix=prefix)] if prefix else [])


def _recorded_hash(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    digest = text.split(maxsplit=1)[0].lower() if text.strip() else ""
    return digest if _HEX64.match(digest) else None


def remove_copy(source_file: Path) -> None:
    """Delete the copy of ``source_file`` and its ``.sha256`` file, if they exist.

    Raises:
        CacheWriteError: they cannot be deleted (a read-only cache).
    """
    copy = copy_path(source_file)
    for path in (copy, hash_path(copy)):
        with writing(path):
            path.unlink(missing_ok=True)
