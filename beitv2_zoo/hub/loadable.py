"""The file a loader should read for one URL source: the canonical safetensors copy of a cached
pickle (memory-mapped at load) when there is a sound one, else the verified download itself.

How :func:`fetch_loadable` proceeds (the copy's names and checks are in :mod:`.copies`)
    1. With copies on (``BEITV2_ZOO_SAFETENSORS_COPY``, ``safetensors_copy=``), a copy that
       passes :func:`~.copies.inspect_copy` is returned at once: the pickle is neither hashed
       nor opened (only its size is read).
    2. Otherwise the pickle is fetched exactly as :func:`~.download.fetch_file` always does
       (reused if its sha256 verifies, else downloaded and verified). A safetensors download
       gets no copy; it is returned as it is.
    3. Under the file's download lock (so of N processes one converts and the others reuse its
       copy), the copy is checked again; a stale or bad one is deleted with a warning. The
       pickle is then read safely, converted to the canonical layout and written as the copy
       (atomically, then its ``.sha256`` file), and the copy is returned.
    A copy that cannot be written (read-only cache, disk full, a lock that cannot be taken)
    never fails the load: a warning is logged and the verified pickle is returned. A pickle
    that is not a checkpoint this package converts is returned as it is, and the loader
    reports the problem as it would without copies.
"""

import logging
from pathlib import Path

from ..errors import BeitZooError, CheckpointError
from ..weight_record import Source
from .cache import hash_matches, sha256_of
from .copies import copy_path, inspect_copy, remove_copy, write_copy
from .download import download_lock, fetch_file
from .settings import HubSettings

logger = logging.getLogger(__package__)


def fetch_loadable(url: str, target: Path, source: Source, settings: HubSettings) -> Path:
    """The verified copy of ``target`` if copies are on and one is (or can be) made, else ``target``
    verified and fetched from ``url`` as :func:`fetch_file` does (same errors)."""
    if settings.safetensors_copy and inspect_copy(target, (source,)).usable:
        return copy_path(target)
    fetched = fetch_file(url, target, source, settings)
    if not settings.safetensors_copy or _is_safetensors(fetched):
        return fetched
    try:
        with download_lock(target, settings.policy):
            return _copy_under_lock(fetched, source)
    except (BeitZooError, OSError, RuntimeError, ValueError) as error:  # the copy never fails a load
        logger.warning("could not keep a safetensors copy of %s (%s); loading the file itself. "
                       "BEITV2_ZOO_SAFETENSORS_COPY=0 stops trying", fetched, " ".join(str(error).split()))
        return fetched


def _is_safetensors(path: Path) -> bool:
    from ..safetensors_io import looks_like_safetensors

    return looks_like_safetensors(path)


def _copy_under_lock(source_file: Path, source: Source) -> Path:
    """Reuse a copy another process made meanwhile, else replace a stale or bad one by a new conversion."""
    check = inspect_copy(source_file, (source,))
    if check.usable:
        return copy_path(source_file)
    if check.status != "missing":
        logger.warning("%s; deleting it and converting %s again", check.detail, source_file.name)
        remove_copy(source_file)
    return _convert(source_file, source)


def _convert(source_file: Path, source: Source) -> Path:
    """Write the canonical copy of the verified pickle ``source_file``; ``source_file`` itself when it
    is not a checkpoint whose canonical form would load the same."""
    from ..checkpoint import read_checkpoint
    from ..convert_file import canonical_metadata, reads_back_unchanged

    try:
        checkpoint = read_checkpoint(source_file)
    except CheckpointError as error:  # the loader reads the file again and reports this itself
        logger.info("no safetensors copy of %s: %s", source_file.name, error)
        return source_file
    if not reads_back_unchanged(checkpoint.state_dict):
        logger.info("no safetensors copy of %s: its canonical keys would be read as another layout", source_file.name)
        return source_file
    digest = sha256_of(source_file)
    if not hash_matches(digest, source):  # replaced since it was verified: let the next load start over
        logger.warning("%s changed while it was being converted; loading it without a copy", source_file)
        return source_file
    metadata = canonical_metadata(checkpoint, source.url or source_file.name, digest)
    copy = write_copy(source_file, checkpoint.state_dict, metadata)
    logger.info("wrote %s, a memory-mappable canonical copy of %s", copy.name, source_file.name)
    return copy
