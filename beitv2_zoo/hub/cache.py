"""The cache's layout and the hash checks: where each file, partial download and lock lives,
and whether a file's sha256 is the one its source promises.

::

    <cache>/checkpoints/<file>                              a verified download
    <cache>/checkpoints/<file>.tmp-<random>.incomplete      a download in progress (one process's own)
    <cache>/checkpoints/<file>.sha256-<hash16>.incomplete   an interrupted download, waiting to be resumed
    <cache>/checkpoints/<file>.canonical.safetensors[.sha256]   a pickle's canonical copy and its hash (see copies.py)
    <cache>/.locks/checkpoints/<file>.lock                  the per-file download (and conversion) lock
"""

import hashlib
import re
from pathlib import Path

from ..weights.schema import Source
from .settings import cache_root

CHUNK = 1 << 20
"""Bytes per read or write."""


def checkpoints_dir(cache_dir: str | Path | None = None) -> Path:
    """The folder holding downloaded files."""
    return cache_root(cache_dir) / "checkpoints"


def cached_file(source: Source, cache_dir: str | Path | None = None) -> Path:
    """Where ``source`` is (or would be) cached.

    A registered file keeps its published name (unique by construction, and the name an
    offline user is told to place). An arbitrary URL (``host='url'``) is keyed by the whole
    URL, query included: ``url-<sha256(url)[:16]>--<file name>``, so two URLs that end in the
    same name never share an entry, and a URL with no file name still gets a file.
    """
    if source.host == "url" and source.url:
        identity = hashlib.sha256(source.url.encode("utf-8")).hexdigest()[:16]
        return checkpoints_dir(cache_dir) / f"url-{identity}--{_safe_name(source.filename)}"
    return checkpoints_dir(cache_dir) / _safe_name(source.filename)


def _safe_name(name: str) -> str:
    """``name`` as one harmless path component (``'download'`` when it is empty or a dot name)."""
    cleaned = re.sub(r"[^A-Za-z0-9._+=-]", "_", name)[:200]
    return "download" if cleaned.strip(".") == "" else cleaned


def _resume_key(source: Source) -> str | None:
    known = source.sha256 or source.sha256_prefix
    return f"sha256-{known.lower()[:16]}" if known else None


def resumable_partial(target: Path, source: Source) -> Path | None:
    """``<file>.sha256-<hash16>.incomplete``: where an interrupted download of ``source`` waits to be resumed.

    Only sources with a known hash get one, so a resumed file is always verified.
    """
    key = _resume_key(source)
    return target.with_name(f"{target.name}.{key}.incomplete") if key else None


def lock_path(target: Path) -> Path:
    """``<cache>/.locks/checkpoints/<file>.lock``: outside the folder of checkpoints, like huggingface_hub's."""
    return target.parent.parent / ".locks" / target.parent.name / f"{target.name}.lock"


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_prefix_in_name(filename: str) -> str | None:
    """The sha256 prefix in an OpenMMLab file name (``…_20221114-73e11905.pth`` → ``'73e11905'``).

    Only that pattern counts (a date, a dash, 8 to 64 lowercase hex digits, the suffix): the
    digits of ``beit-finetune-20240101.pth`` are a date, not a hash. Records state other hashes
    themselves (``Source.sha256_prefix``).
    """
    match = re.search(r"_\d{8}-([a-f0-9]{8,64})\.[A-Za-z0-9]+$", filename.split("?", 1)[0])
    return match.group(1) if match else None


def hash_matches(actual: str, source: Source) -> bool:
    """``actual`` agrees with the source's full hash, else its prefix; a source without a hash accepts anything."""
    if source.sha256:
        return actual == source.sha256.lower()
    if source.sha256_prefix:
        return actual.startswith(source.sha256_prefix.lower())
    return True


def expected_hash(source: Source) -> str:
    """The hash a source promises, for messages (``'73e11905…'`` for a prefix)."""
    return source.sha256 or (f"{source.sha256_prefix}…" if source.sha256_prefix else "(none published)")
