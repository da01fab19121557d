"""What the cache holds: list, re-verify and clean the files of ``<cache>/checkpoints``
(the ``beitv2-zoo cache`` command).

A canonical safetensors copy (:mod:`.copies`) is one entry, whose ``copy_of`` names its
source file; its ``.sha256`` file is part of it (listed alone only when the copy is missing,
as a leftover). Copies are verified with :func:`~.copies.inspect_copy` and removed with
their source (``clean --all``), or alone when their source is gone (``clean``).
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CacheWriteError
from ..weights.schema import Source
from .cache import checkpoints_dir, expected_hash, hash_matches, hash_prefix_in_name, lock_path, sha256_of
from .copies import HASH_SUFFIX, copy_path, hash_path, inspect_copy, source_name_of

logger = logging.getLogger(__package__)  # "beitv2_zoo.hub", one logger for the whole package


@dataclass(frozen=True)
class CacheEntry:
    """One file in ``<cache>/checkpoints``.

    Attributes:
        path: the file.
        size: bytes.
        partial: an unfinished download (``*.incomplete``), or a leftover of an unfinished copy.
        sources: registered sources cached under this name (empty for a plain URL download);
            for a copy, those of its source file.
        copy_of: for a canonical safetensors copy (or its leftovers), the name of its source file.
    """

    path: Path
    size: int
    partial: bool
    sources: tuple[tuple[str, Source], ...] = ()
    copy_of: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Registered names whose weights this file is."""
        return tuple(dict.fromkeys(name for name, _ in self.sources))


def list_cache(cache_dir: str | Path | None = None) -> list[CacheEntry]:
    """Every file under ``<cache>/checkpoints`` (lock files excepted; a copy's ``.sha256`` file is
    part of the copy's entry), sorted by name."""
    folder = checkpoints_dir(cache_dir)
    if not folder.is_dir():
        return []
    by_file = _registered_sources()
    entries = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        partial = path.name.endswith(".incomplete")
        copy_of = source_name_of(path.name)
        if copy_of is not None and path.name.endswith(HASH_SUFFIX):
            if copy_path(path.parent / copy_of).is_file():
                continue  # listed with its copy
            partial = True  # a hash file without its copy: the leftover of an interrupted write
        sources = () if partial else by_file.get(copy_of or path.name, ())
        entries.append(CacheEntry(path, path.stat().st_size, partial, sources, copy_of))
    return entries


def _registered_sources() -> dict[str, tuple[tuple[str, Source], ...]]:
    from ..weights import get_record, list_models

    by_file: dict[str, list[tuple[str, Source]]] = {}
    for name in list_models(include_test=True):
        for source in get_record(name).sources:
            if source.url:
                by_file.setdefault(source.filename, []).append((name, source))
    return {k: tuple(v) for k, v in by_file.items()}


def verify_entry(entry: CacheEntry) -> tuple[str, str]:
    """Re-hash a cached file against what is known about it.

    Returns:
        ``(status, detail)``: status ``'ok'``, ``'bad'`` (hash differs), ``'unchecked'``
        (no hash known) or ``'partial'``; for a copy also ``'stale'`` (sound, but no longer
        used: its source is gone or changed, or another version wrote it; the next load
        converts it again).
    """
    if entry.partial:
        return "partial", "unfinished copy" if entry.copy_of else "unfinished download"
    if entry.copy_of is not None:
        check = inspect_copy(entry.path.parent / entry.copy_of, (source for _, source in entry.sources))
        return ("bad", check.detail) if check.status == "missing" else (check.status, check.detail)
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
    """Remove unfinished downloads (``*.incomplete``) and copies whose source file is gone, or with
    ``everything`` every cached checkpoint and copy.

    A file whose download lock is held by a running process is left alone (a copy uses the lock
    of its source file).

    Returns:
        ``(path, bytes)`` of each file removed.

    Raises:
        CacheWriteError: some files could not be removed (a read-only cache, permissions); the
            message names them and what was removed before.
    """
    from filelock import FileLock, Timeout

    removed, failed = [], []
    for entry in list_cache(cache_dir):
        orphan_copy = entry.copy_of is not None and not (entry.path.parent / entry.copy_of).is_file()
        if not (entry.partial or orphan_copy or everything):
            continue
        final_name = entry.path.name.split(".tmp-")[0].split(".sha256-")[0] if entry.partial else entry.path.name
        lock_file = lock_path(entry.path.with_name(entry.copy_of or final_name))
        try:
            lock = FileLock(os.fspath(lock_file)) if lock_file.parent.is_dir() else None
            if lock is not None:
                lock.acquire(timeout=0)
        except Timeout:
            logger.warning("%s is being downloaded by another process; left alone", entry.path)
            continue
        except OSError as error:  # the lock file cannot even be created: the cache is not writable
            failed.append(f"{entry.path.name} ({error.strerror or error})")
            continue
        try:
            entry.path.unlink(missing_ok=True)
            removed.append((entry.path, entry.size))
            if entry.copy_of is not None and not entry.partial:
                hash_path(entry.path).unlink(missing_ok=True)
        except OSError as error:
            failed.append(f"{entry.path.name} ({error.strerror or error})")
        finally:
            if lock is not None:
                lock.release()
    if failed:
        done = f"; removed {len(removed)} other file(s) first" if removed else ""
        raise CacheWriteError(f"cannot remove {len(failed)} file(s) from {checkpoints_dir(cache_dir)}: "
                              f"{', '.join(failed[:10])}{' …' if len(failed) > 10 else ''}{done}. Is the cache "
                              "read-only? Fix its permissions, or point BEITV2_ZOO_CACHE elsewhere")
    return removed
