"""What the cache holds: list, re-verify and clean the files of ``<cache>/checkpoints``
(the ``beitv2-zoo cache`` command)."""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..weight_record import Source
from .cache import checkpoints_dir, expected_hash, hash_matches, hash_prefix_in_name, lock_path, sha256_of

logger = logging.getLogger(__package__)  # "beitv2_zoo.hub", one logger for the whole package


@dataclass(frozen=True)
class CacheEntry:
    """One file in ``<cache>/checkpoints``.

    Attributes:
        path: the file.
        size: bytes.
        partial: an unfinished download (``*.incomplete``).
        sources: registered sources cached under this name (empty for a plain URL download).
    """

    path: Path
    size: int
    partial: bool
    sources: tuple[tuple[str, Source], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Registered names whose weights this file is."""
        return tuple(dict.fromkeys(name for name, _ in self.sources))


def list_cache(cache_dir: str | Path | None = None) -> list[CacheEntry]:
    """Every file under ``<cache>/checkpoints`` (lock files excepted), sorted by name."""
    folder = checkpoints_dir(cache_dir)
    if not folder.is_dir():
        return []
    by_file = _registered_sources()
    entries = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        partial = path.name.endswith(".incomplete")
        entries.append(CacheEntry(path, path.stat().st_size, partial, () if partial else by_file.get(path.name, ())))
    return entries


def _registered_sources() -> dict[str, tuple[tuple[str, Source], ...]]:
    from ..registry import get_record, list_models

    by_file: dict[str, list[tuple[str, Source]]] = {}
    for name in list_models():
        for source in get_record(name).sources:
            if source.url:
                by_file.setdefault(source.filename, []).append((name, source))
    return {k: tuple(v) for k, v in by_file.items()}


def verify_entry(entry: CacheEntry) -> tuple[str, str]:
    """Re-hash a cached file against what is known about it.

    Returns:
        ``(status, detail)``: status ``'ok'``, ``'bad'`` (hash differs), ``'unchecked'``
        (no hash known) or ``'partial'``.
    """
    if entry.partial:
        return "partial", "unfinished download"
    actual = sha256_of(entry.path)
    checks = [source for _, source in entry.sources if source.sha256 or source.sha256_prefix]
    prefix = hash_prefix_in_name(entry.path.name)
    if not checks and prefix:
        checks = [Source(url=entry.path.name, sha256_prefix=prefix)]
    if not checks:
        return "unchecked", f"sha256 {actual} (no published hash to compare with)"
    for source in checks:
        if not hash_matches(actual, source):
            return "bad", f"sha256 {actual}, expected {expected_hash(source)}"
    return "ok", f"sha256 {actual}"


def clean_cache(cache_dir: str | Path | None = None, everything: bool = False) -> list[tuple[Path, int]]:
    """Remove unfinished downloads (``*.incomplete``), or with ``everything`` every cached checkpoint.

    A file whose download lock is held by a running process is left alone.

    Returns:
        ``(path, bytes)`` of each file removed.
    """
    from filelock import FileLock, Timeout

    removed = []
    for entry in list_cache(cache_dir):
        if not (entry.partial or everything):
            continue
        final_name = entry.path.name.split(".tmp-")[0].split(".sha256-")[0] if entry.partial else entry.path.name
        lock_file = lock_path(entry.path.with_name(final_name))
        try:
            lock = FileLock(os.fspath(lock_file)) if lock_file.parent.is_dir() else None
            if lock is not None:
                lock.acquire(timeout=0)
        except (Timeout, OSError):
            logger.warning("%s is being downloaded by another process; left alone", entry.path)
            continue
        try:
            entry.path.unlink(missing_ok=True)
            removed.append((entry.path, entry.size))
        finally:
            if lock is not None:
                lock.release()
    return removed
