"""A verified file in the cache for one URL: reuse a good copy, else download under the file's lock.

The lock lets one of N processes download while the others wait and reuse its file. The body
streams into ``<file>.tmp-<random>.incomplete``; only a file whose sha256 matches is renamed
onto the final name. A transient failure with a known hash leaves the bytes as
``<file>.sha256-<hash16>.incomplete``, which the next call claims by an atomic rename and resumes.
"""

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import CacheWriteError, HashMismatchError, WeightsDownloadError
from ..weights.schema import Source
from .cache import expected_hash, hash_matches, lock_path, resumable_partial, sha256_of
from .disk import cache_write_error, writing
from .partial import PartialFile
from .settings import DownloadPolicy, HubSettings
from .transfer import PermanentHTTPError, transfer

logger = logging.getLogger(__package__)  # "beitv2_zoo.hub", one logger for the whole package


def fetch_file(url: str, target: Path, source: Source, settings: HubSettings) -> Path:
    """``target``, verified against ``source``: the cached file if it matches, else downloaded from ``url``.

    Raises:
        HashMismatchError: the download (or, offline, the cached file) has the wrong sha256.
        CacheWriteError: the cache cannot be written.
        WeightsDownloadError: offline without the file, an HTTP error, or retries exhausted.
    """
    if _reusable(target, source, settings, deleting=False):
        return target
    if settings.offline:
        raise WeightsDownloadError(
            f"offline (BEITV2_ZOO_OFFLINE / offline=True) and {target} is not cached; download {url} and place it at "
            f"{target}, or pass the file itself (pretrained=PATH)"
        )
    with download_lock(target, settings.policy):
        if _reusable(target, source, settings, deleting=True):  # another process may have fetched it meanwhile
            return target
        return _download(url, target, source, settings)


def _reusable(target: Path, source: Source, settings: HubSettings, deleting: bool) -> bool:
    """Whether ``target`` exists and verifies. A corrupt file is deleted when offline (then an error is
    raised, since it cannot be replaced) or when ``deleting`` (under the download lock)."""
    if not target.is_file():
        return False
    actual = sha256_of(target)
    if hash_matches(actual, source):
        return True
    problem = f"cached file {target} has sha256 {actual}, expected {expected_hash(source)}"
    if settings.offline:
        target.unlink(missing_ok=True)
        raise HashMismatchError(f"{problem}; it was deleted. Offline, so it cannot be downloaded again: place a good copy there")
    if deleting:
        logger.warning("%s (corrupted or replaced); deleting it and downloading it again", problem)
        target.unlink(missing_ok=True)
    return False


@contextmanager
def download_lock(target: Path, policy: DownloadPolicy) -> Iterator[None]:
    """Hold the lock of ``target`` (an OS file lock, released if the process dies)."""
    from filelock import FileLock

    path = lock_path(target)
    with writing(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(os.fspath(path))
    with writing(path):
        acquired = _try_acquire(lock, 0.0)
        if not acquired:
            logger.info("waiting for another process to finish downloading %s", target)
            acquired = _try_acquire(lock, policy.lock_timeout_s)
    if not acquired:
        raise WeightsDownloadError(
            f"waited {policy.lock_timeout_s:.0f} s for another process downloading {target} (lock {path}); "
            "if no such process is running, delete the lock file and retry"
        )
    try:
        yield
    finally:
        lock.release()


def _try_acquire(lock: Any, timeout_s: float) -> bool:
    """Acquire ``lock`` within ``timeout_s`` seconds; ``False`` if another holder kept it."""
    from filelock import Timeout  # a TimeoutError, hence an OSError: keep it apart from file-system errors

    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        return False
    return True


def _download(url: str, target: Path, source: Source, settings: HubSettings) -> Path:
    """Download ``url`` into ``target`` (the caller holds the lock); verify, then rename atomically."""
    owned = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex[:8]}.incomplete")
    shared = resumable_partial(target, source)
    _claim(shared, owned)
    try:
        with PartialFile(owned) as partial:
            if partial.size:
                logger.info("resuming %s from byte %d", target.name, partial.size)
            transfer(url, partial, settings, label=target.name)
            actual = partial.finish()
        if not hash_matches(actual, source):
            raise HashMismatchError(
                f"{url} downloaded with sha256 {actual}, expected {expected_hash(source)}; the file was deleted. "
                "The server may be serving another file: try another source (beitv2-zoo download NAME --source S) "
                "or a mirror (BEITV2_ZOO_URL_MAP)"
            )
        with writing(target):
            os.replace(owned, target)
        return target
    except BaseException as error:
        _hand_back(owned, shared, keep=_worth_resuming(error))
        raise


def _claim(shared: Path | None, owned: Path) -> None:
    """Atomically take over a partial file left by an earlier call, if there is one."""
    if shared is None:
        return
    try:
        os.replace(shared, owned)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise cache_write_error(error, owned) from None


def _worth_resuming(error: BaseException) -> bool:
    if isinstance(error, (HashMismatchError, CacheWriteError, PermanentHTTPError)):
        return False
    return isinstance(error, (WeightsDownloadError, KeyboardInterrupt, SystemExit))


def _hand_back(owned: Path, shared: Path | None, keep: bool) -> None:
    """Leave the bytes of an interrupted download for a later call, or delete them."""
    try:
        if keep and shared is not None and owned.is_file() and owned.stat().st_size > 0:
            os.replace(owned, shared)
        else:
            owned.unlink(missing_ok=True)
    except OSError:
        logger.warning("could not clean up %s; delete it by hand (or run `beitv2-zoo cache clean`)", owned)
