"""Download, verify and cache checkpoint files.

Where files go
    ``<cache>/checkpoints/<file name>`` for a registered file (its published name), and
    ``<cache>/checkpoints/url-<sha256(url)[:16]>--<file name>`` for any other URL, so two sources
    never share an entry (:func:`cached_file`). ``<cache>`` is the ``cache_dir=`` argument, else
    ``$BEITV2_ZOO_CACHE``, else ``$XDG_CACHE_HOME/beitv2_zoo``, else ``~/.cache/beitv2_zoo``.
    Hugging Face Hub files stay in huggingface_hub's own cache (``HF_HUB_CACHE``).

Settings, read at every call (never at import) through :mod:`beitv2_zoo.settings`, each with a
    keyword argument that wins:
    ``BEITV2_ZOO_CACHE`` (``cache_dir=``), ``BEITV2_ZOO_OFFLINE=1`` (``offline=``: no network;
    a missing file is an error naming the path to place it at), ``BEITV2_ZOO_URL_MAP``
    (``url_map=``: comma-separated ``old_prefix=new_prefix`` rewrites, for mirrors),
    ``BEITV2_ZOO_PROGRESS`` (``progress=``: ``1`` shows the bar even when stderr is not a
    terminal, ``0`` hides it), ``BEITV2_ZOO_SAFETENSORS_COPY`` (``safetensors_copy=``: ``0``
    turns off the copies described below), and the :class:`DownloadPolicy` variables
    ``BEITV2_ZOO_TIMEOUT`` / ``BEITV2_ZOO_RETRIES`` / ``BEITV2_ZOO_BACKOFF`` (``policy=``).

How a URL source is fetched (:func:`fetch_source`)
    1. A cached file is re-hashed and returned if its sha256 matches the record (the full
       hash where known, else the ``-<hex>.`` prefix of the file name). A file that does not
       match is deleted with a warning and downloaded again (offline: an error).
    2. Otherwise a per-file lock ``<cache>/.locks/checkpoints/<file>.lock`` is taken, so that of N
       processes asking at once one downloads and the others wait and then reuse its file.
       The check of step 1 is repeated under the lock.
    3. The download streams into a temporary file owned by this process,
       ``<file>.tmp-<random>.incomplete``, hashing on the way. Connection errors, time-outs,
       HTTP 429 and 5xx are retried with exponential back-off; other HTTP errors are not.
       A retry resumes with an HTTP ``Range`` request when the server answers ``206`` and
       restarts from byte 0 when it answers ``200``.
    4. The finished file's sha256 is checked; a mismatch deletes it and raises
       :class:`HashMismatchError` naming both hashes. Only a verified file is renamed onto
       the final name, so that name never holds a partial or unverified file.
    5. If the download fails for a transient reason (or is interrupted) and the record has
       a hash, the partial file is kept as ``<file>.sha256-<hash16>.incomplete``; the next
       call, from any process, claims it by an atomic rename and resumes it. A claimed
       partial always ends in the hash check of step 4, so a resumed file is verified end to end.
    Correctness never depends on the lock (on file systems where ``flock`` does nothing,
    processes may download twice, but every file still lands whole and verified).

Safetensors copies (:mod:`.copies`; ``BEITV2_ZOO_SAFETENSORS_COPY=0`` or ``safetensors_copy=False``
    turns them off)
    A verified pickle (``.pth``, ``.bin``) in the cache may have a sibling
    ``<file>.canonical.safetensors`` holding its state dict already converted to the canonical
    layout, plus ``<file>.canonical.safetensors.sha256``. With ``for_loading=True`` (what
    ``get_model`` asks for) a sound copy is returned instead of the pickle: only the copy is
    hashed, and the pickle is never opened. The copy is *written* by
    :mod:`beitv2_zoo.checkpoint.cache_copy` (called by :mod:`beitv2_zoo.resolve`): this package
    names, verifies and removes copies, and never reads a tensor.

Disk-full, quota and permission errors raise :class:`CacheWriteError` (a
:class:`WeightsDownloadError`), naming the folder, and remove this process's temporary file.

Modules
    This file holds the public fetch functions and re-exports the names of the others:
    ``settings`` (policy, environment, URL map), ``cache`` (layout and hashes), ``download``
    (reuse, lock, verified download; steps 1–5), ``transfer`` (one HTTP body with retries and
    resume), ``partial`` (the temporary file), ``disk`` (cache-write errors, free space),
    ``copies`` (names and checks of the canonical safetensors copies of cached pickles),
    ``hf`` (the Hugging Face Hub), ``inventory`` (list, verify and clean the cache) and
    ``packaged`` (``package:`` sources: files shipped inside the installed package).
"""

from pathlib import Path

from ..errors import HashMismatchError, WeightsDownloadError
from ..weights.schema import Source, WeightRecord
from .cache import (
    cached_file,
    checkpoints_dir,
    expected_hash,
    hash_matches,
    hash_prefix_in_name,
    resumable_partial,
    sha256_of,
)
from .copies import copy_path, inspect_copy
from .download import fetch_file
from .hf import HF_DEFAULT_FILES, HubFileMissing, fetch_hf, hf_environment
from .inventory import CacheEntry, clean_cache, list_cache, verify_entry
from .packaged import PACKAGE_SCHEME, is_packaged, packaged_file
from .settings import (
    DownloadPolicy,
    HubSettings,
    UrlMap,
    cache_root,
    is_offline,
    map_url,
    parse_url_map,
    resolve_settings,
)
from .transfer import describe_request_error


def fetch_source(
    source: Source,
    *,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    url_map: UrlMap | None = None,
    progress: bool | None = None,
    policy: DownloadPolicy | None = None,
    for_loading: bool = False,
    safetensors_copy: bool | None = None,
) -> Path:
    """A verified local copy of ``source``, downloaded if it is not cached (see the module docstring).

    ``for_loading=True`` returns the file a loader should read: for a pickle that has a sound
    canonical safetensors copy, the copy (unless ``safetensors_copy``, default
    ``BEITV2_ZOO_SAFETENSORS_COPY``, is off); :func:`beitv2_zoo.resolve.source_file` also makes one.

    Raises:
        HashMismatchError: the file's sha256 differs from the record (the file was deleted).
        CacheWriteError: the cache cannot be written (disk full, permission).
        WeightsDownloadError: offline without the file, an HTTP error, or retries exhausted.
    """
    return _fetch(source, resolve_settings(cache_dir, offline, url_map, progress, policy, safetensors_copy), for_loading)


def fetch_url(
    url: str,
    *,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    url_map: UrlMap | None = None,
    progress: bool | None = None,
    policy: DownloadPolicy | None = None,
    for_loading: bool = False,
    safetensors_copy: bool | None = None,
) -> Path:
    """Download any ``http(s)://`` URL into the cache.

    A file name in the OpenMMLab pattern ``…_<YYYYMMDD>-<hex>.<ext>`` is checked against that
    sha256 prefix; other files are taken as served (other digits in a name are not a hash). ``for_loading`` and
    ``safetensors_copy``: as in :func:`fetch_source`.
    """
    source = Source(url=url, sha256_prefix=hash_prefix_in_name(url.rsplit("/", 1)[-1]), host="url")
    return _fetch(source, resolve_settings(cache_dir, offline, url_map, progress, policy, safetensors_copy), for_loading)


def fetch_hf_spec(spec: str, *, offline: bool | None = None) -> Path:
    """``'hf-hub:org/repo[@rev]'`` or ``'hf-hub:org/repo[@rev]/path/in/repo'`` → local path via huggingface_hub.

    Without a file name, ``model.safetensors`` is tried first, then ``pytorch_model.bin``.
    Files live in huggingface_hub's cache (``HF_HUB_CACHE``); ``offline`` (default
    ``BEITV2_ZOO_OFFLINE``), like ``HF_HUB_OFFLINE``, allows that cache only.
    """
    body = spec[len("hf-hub:") :] if spec.startswith("hf-hub:") else spec
    parts = body.split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise WeightsDownloadError(f"{spec!r} is not of the form hf-hub:org/repo[@revision][/file]")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    is_offline_now = is_offline() if offline is None else bool(offline)
    failures = []
    for candidate in (filename,) if filename else HF_DEFAULT_FILES:
        try:
            return fetch_hf(repo, candidate, is_offline_now)
        except HubFileMissing as error:  # try the next file name; any other failure ends the search
            failures.append(str(error))
    raise WeightsDownloadError(" | ".join(failures))


def select_sources(record: WeightRecord, which: str | None = None) -> tuple[Source, ...]:
    """The record's sources, or only those whose host is ``which`` (``'openmmlab'``, ``'official'``,
    ``'hf-hub'``), or the one at 1-based position ``which``.

    Raises:
        ValueError: ``which`` matches no source; the message lists the record's sources.
    """
    if which is None:
        return record.sources
    chosen = tuple(s for s in record.sources if s.host == which)
    if not chosen and which.isdigit() and 1 <= int(which) <= len(record.sources):
        chosen = (record.sources[int(which) - 1],)
    if not chosen:
        hosts = ", ".join(f"{i}={s.host}" for i, s in enumerate(record.sources, start=1)) or "none"
        raise ValueError(f"{record.name} has no source {which!r}; its sources are: {hosts}")
    return chosen


def fetch_weights(
    record: WeightRecord,
    *,
    source: str | None = None,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    url_map: UrlMap | None = None,
    progress: bool | None = None,
    policy: DownloadPolicy | None = None,
    for_loading: bool = False,
    safetensors_copy: bool | None = None,
) -> Path:
    """Try each source of ``record`` in order (or only ``source``, see :func:`select_sources`);
    return the first verified local file (with ``for_loading``, the file to load: see :func:`fetch_source`).

    Raises:
        HashMismatchError: a source served a file with the wrong hash (not masked by other sources).
        WeightsDownloadError: in one line naming each source tried and its failure, the cache
            path to place the file at, and the local-file alternative.
    """
    if not record.sources:
        raise WeightsDownloadError(f"{record.name} has no published weights; use pretrained=False or a local file")
    settings = resolve_settings(cache_dir, offline, url_map, progress, policy, safetensors_copy)
    failures = []
    candidates = select_sources(record, source)
    for candidate in candidates:
        try:
            return _fetch(candidate, settings, for_loading)
        except HashMismatchError:
            raise
        except WeightsDownloadError as error:
            failures.append(" ".join(str(error).split()))
    first = next((s for s in candidates if s.url), None)
    place = f"place the file at {cached_file(first, settings.cache_dir)}" if first else f"download hf-hub:{candidates[0].hf_repo}"
    raise WeightsDownloadError(
        f"could not get weights for {record.name}: {' | '.join(failures)}; {place}, or load a copy you have "
        "(pretrained=PATH in Python; --weights PATH for predict, attention and tokens)"
    )


def _fetch(source: Source, settings: HubSettings, for_loading: bool = False) -> Path:
    if is_packaged(source):  # shipped inside the package: no cache, no network
        return packaged_file(source)
    if source.hf_repo:
        return fetch_hf(source.hf_repo, source.hf_filename or HF_DEFAULT_FILES[0], settings.offline)
    if not source.url:
        raise WeightsDownloadError("a source needs a url or an hf_repo")
    target = cached_file(source, settings.cache_dir)
    if for_loading and settings.safetensors_copy and inspect_copy(target, (source,)).usable:
        return copy_path(target)  # a sound canonical copy: the pickle is neither hashed nor opened
    return fetch_file(map_url(source.url, settings.url_map), target, source, settings)


__all__ = [
    "HF_DEFAULT_FILES",
    "PACKAGE_SCHEME",
    "CacheEntry",
    "DownloadPolicy",
    "HubSettings",
    "UrlMap",
    "cache_root",
    "cached_file",
    "checkpoints_dir",
    "clean_cache",
    "describe_request_error",
    "expected_hash",
    "fetch_hf_spec",
    "fetch_source",
    "fetch_url",
    "fetch_weights",
    "hash_matches",
    "hash_prefix_in_name",
    "hf_environment",
    "inspect_copy",
    "is_offline",
    "list_cache",
    "map_url",
    "parse_url_map",
    "resolve_settings",
    "resumable_partial",
    "select_sources",
    "sha256_of",
    "verify_entry",
]
