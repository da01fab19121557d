"""Make the canonical safetensors copy of a verified cached pickle (its names and checks are in
:mod:`beitv2_zoo.hub.copies`), so that later loads memory-map it instead of unpickling.

How :func:`ensure_copy` proceeds, after :func:`beitv2_zoo.hub.fetch_weights` has returned a file
    1. A safetensors file, or a copy the hub already found sound, is returned as it is.
    2. Under the file's download lock (so of N processes one converts and the others reuse its
       copy), the copy is checked again; a stale or bad one is deleted with a warning.
    3. The pickle is read safely, converted to the canonical layout and written as the copy
       (atomically, with no filler tensor so that any strict loader accepts it; its weight
       matrices 64-byte aligned; then its ``.sha256`` file), and the copy is returned.
    A copy that cannot be written (read-only cache, disk full, a lock that cannot be taken)
    never fails the load: a warning is logged and the verified pickle is returned. A pickle
    that is not a checkpoint this package converts is returned as it is, and the loader
    reports the problem as it would without copies.
"""

import logging
import os
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path

import torch

from ..errors import BeitZooError, CheckpointError
from ..hub.cache import cached_file, hash_matches, sha256_of
from ..hub.copies import COPY_SUFFIX, COPY_VERSION, copy_path, hash_path, inspect_copy, remove_copy
from ..hub.disk import check_free_space, writing
from ..hub.download import download_lock
from ..hub.settings import DownloadPolicy
from ..weights.schema import Source
from .aligned import ALIGNMENT, save_aligned
from .canonical import canonical_metadata, reads_back_unchanged
from .reading import read_checkpoint
from .safetensors_io import looks_like_safetensors

logger = logging.getLogger(__name__)


def ensure_copy(fetched: Path, sources: Iterable[Source], policy: DownloadPolicy) -> Path:
    """The file a loader should read for the verified download ``fetched``: its canonical copy
    (made now if needed), or ``fetched`` itself when no copy applies or one cannot be written.

    Args:
        fetched: what the hub returned (a verified download, or an already-verified copy).
        sources: the record's sources; the one cached under ``fetched``'s name is used to
            check that the pickle is still the promised file.
        policy: the download policy (its lock time-out).
    """
    if fetched.name.endswith(COPY_SUFFIX) or looks_like_safetensors(fetched):
        return fetched
    source = next((s for s in sources if s.url and cached_file(s, fetched.parent.parent) == fetched), None)
    source = source or Source(url=fetched.name)
    try:
        with download_lock(fetched, policy):
            return _copy_under_lock(fetched, source)
    except (BeitZooError, OSError, RuntimeError, ValueError) as error:  # the copy never fails a load
        logger.warning("could not keep a safetensors copy of %s (%s); loading the file itself. "
                       "BEITV2_ZOO_SAFETENSORS_COPY=0 stops trying", fetched, " ".join(str(error).split()))
        return fetched


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


def write_copy(source_file: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write the copy of ``source_file`` atomically, then its ``.sha256`` file; returns the copy's path.

    ``tensors`` are canonical CPU tensors; ``metadata`` the string metadata (the ``cache_copy_*``
    and ``source_size`` fields are added here). A failure leaves neither file behind.

    Raises:
        CacheWriteError: the cache cannot be written (disk full, permission).
    """
    copy = copy_path(source_file)
    metadata = {**metadata, "cache_copy_of": source_file.name, "cache_copy_version": COPY_VERSION,
                "source_size": str(source_file.stat().st_size)}
    temp = copy.with_name(f"{copy.name}.tmp-{uuid.uuid4().hex[:8]}.incomplete")
    try:
        with writing(copy):
            check_free_space(copy, sum(t.numel() * t.element_size() + ALIGNMENT for t in tensors.values()))
            digest = save_aligned(copy, tensors, metadata, temp=temp, fillers=False)
            os.chmod(copy, stat.S_IMODE(source_file.stat().st_mode))  # readable by whoever may read the source
            write_text_atomically(hash_path(copy), f"{digest}  {copy.name}\n")
    except BaseException:
        for path in (copy, hash_path(copy)):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                logger.warning("could not remove %s; delete it by hand (or run `beitv2-zoo cache clean`)", path)
        raise
    return copy


def write_text_atomically(path: Path, text: str) -> None:
    """Write a small UTF-8 text file under a temporary name, then rename it onto ``path``."""
    temp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}.incomplete")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
