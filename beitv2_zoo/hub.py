"""Download and cache checkpoint files.

Files land in ``<cache>/checkpoints/<file name>``, where ``<cache>`` is
``$BEITV2_ZOO_CACHE``, else ``$XDG_CACHE_HOME/beitv2_zoo``, else ``~/.cache/beitv2_zoo``.
A download streams into a unique temporary file beside the target, is hashed on the way,
checked against the record's sha256 (full or file-name prefix) and only then renamed
into place, so a cache file is always complete. Hugging Face Hub sources go through
``huggingface_hub`` and its own cache.

Environment, read at every call: ``BEITV2_ZOO_CACHE``, ``BEITV2_ZOO_OFFLINE=1`` (never
touch the network), ``BEITV2_ZOO_URL_MAP`` (``old_prefix=new_prefix`` pairs separated by
commas, to use a mirror).
"""

import hashlib
import os
import re
import sys
import tempfile
from pathlib import Path

from .errors import HashMismatchError, WeightsDownloadError
from .weight_record import Source, WeightRecord

_CHUNK = 1 << 20
_TIMEOUT_S = (10, 60)  # connect, read


def cache_dir() -> Path:
    """The root of this package's cache (not created)."""
    if os.environ.get("BEITV2_ZOO_CACHE"):
        return Path(os.environ["BEITV2_ZOO_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "beitv2_zoo"


def is_offline() -> bool:
    """Whether ``BEITV2_ZOO_OFFLINE`` asks for no network access."""
    return os.environ.get("BEITV2_ZOO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def map_url(url: str) -> str:
    """Apply the first matching ``BEITV2_ZOO_URL_MAP`` prefix rewrite to ``url``."""
    for pair in filter(None, (p.strip() for p in os.environ.get("BEITV2_ZOO_URL_MAP", "").split(","))):
        old, sep, new = pair.partition("=")
        if sep and url.startswith(old):
            return new + url[len(old) :]
    return url


def cached_file(source: Source) -> Path:
    """Where ``source`` is (or would be) cached."""
    return cache_dir() / "checkpoints" / source.filename


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_matches(actual: str, source: Source) -> bool:
    if source.sha256:
        return actual == source.sha256.lower()
    if source.sha256_prefix:
        return actual.startswith(source.sha256_prefix.lower())
    return True


def _expected_hash(source: Source) -> str:
    return source.sha256 or (f"{source.sha256_prefix}…" if source.sha256_prefix else "(none published)")


def fetch_source(source: Source, progress: bool = True) -> Path:
    """Return a verified local copy of ``source``, downloading it if it is not cached."""
    if source.hf_repo:
        return _fetch_hf(source.hf_repo, source.hf_filename or "model.safetensors")
    target = cached_file(source)
    if target.is_file():
        actual = sha256_of(target)
        if _hash_matches(actual, source):
            return target
        target.unlink()
        raise HashMismatchError(
            f"cached file {target} has sha256 {actual}, expected {_expected_hash(source)}; it was deleted, "
            "run again to download it afresh"
        )
    url = map_url(source.url or "")
    if is_offline():
        raise WeightsDownloadError(f"offline (BEITV2_ZOO_OFFLINE is set) and {target} is not cached; place {url} there")
    return download(url, target, source, progress)


def download(url: str, target: Path, source: Source, progress: bool = True) -> Path:
    """Stream ``url`` into ``target`` through a temporary file; verify, then rename atomically."""
    import requests
    from tqdm.auto import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".incomplete", delete=False)
    temp = Path(handle.name)
    try:
        with handle, requests.get(url, stream=True, timeout=_TIMEOUT_S) as response:
            response.raise_for_status()
            total = int(response.headers.get("Content-Length") or 0) or None
            digest = hashlib.sha256()
            show = progress and sys.stderr.isatty()
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not show, file=sys.stderr) as bar:
                for chunk in response.iter_content(_CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        actual = digest.hexdigest()
        if not _hash_matches(actual, source):
            raise HashMismatchError(f"{url} downloaded with sha256 {actual}, expected {_expected_hash(source)}; discarded")
        os.replace(temp, target)
        return target
    except requests.RequestException as error:
        raise WeightsDownloadError(f"{url}: {describe_request_error(error)}") from None
    finally:
        temp.unlink(missing_ok=True)


def describe_request_error(error: Exception) -> str:
    """A short, one-line reason for a failed request ("HTTP 404 Not Found", "cannot resolve host …")."""
    response = getattr(error, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} {response.reason}"
    text = " ".join(str(error).split())
    for pattern, label in ((r"Failed to resolve '([^']+)'", "cannot resolve host {}"),
                           (r"Connection refused", "connection refused"),
                           (r"[Tt]imed? ?out", "timed out")):
        match = re.search(pattern, text)
        if match:
            return label.format(*match.groups())
    return f"{type(error).__name__}: {text[:160]}"


def _fetch_hf(repo: str, filename: str) -> Path:
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo, filename, revision=revision, local_files_only=is_offline()))
    except Exception as error:  # huggingface_hub raises many types; report them all the same way
        raise WeightsDownloadError(f"hf-hub:{repo}/{filename}: {type(error).__name__}: {error}") from None


def fetch_url(url: str, progress: bool = True) -> Path:
    """Download any ``http(s)://`` URL into the cache.

    A file name ending in ``-<hex>.<ext>`` (the torch.hub / OpenMMLab convention) is
    checked against that sha256 prefix; other files are taken as served.
    """
    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    match = re.search(r"-([a-f0-9]{8,64})\.", name)
    return fetch_source(Source(url=url, sha256_prefix=match.group(1) if match else None, host="url"), progress)


def fetch_hf_spec(spec: str) -> Path:
    """``'hf-hub:org/repo[@rev]'`` or ``'hf-hub:org/repo[@rev]/file'`` → local path via huggingface_hub."""
    body = spec[len("hf-hub:") :]
    parts = body.split("/")
    if len(parts) < 2:
        raise WeightsDownloadError(f"{spec!r} is not of the form hf-hub:org/repo[@revision]")
    repo = "/".join(parts[:2])
    filename = "/".join(parts[2:]) or "model.safetensors"
    return _fetch_hf(repo, filename)


def fetch_weights(record: WeightRecord, progress: bool = True) -> Path:
    """Try each source of ``record`` in order; return the first verified local file.

    Raises:
        WeightsDownloadError: in one line naming each URL tried and its failure, the cache path to
            place the file at, and the local-file alternative.
    """
    if not record.sources:
        raise WeightsDownloadError(f"{record.name} has no published weights; use pretrained=False or a local file")
    failures = []
    for source in record.sources:
        try:
            return fetch_source(source, progress)
        except HashMismatchError:
            raise
        except WeightsDownloadError as error:
            failures.append(" ".join(str(error).split()))
    first = record.sources[0]
    place = f"place the file at {cached_file(first)}" if first.url else f"download hf-hub:{first.hf_repo}"
    raise WeightsDownloadError(
        f"could not get weights for {record.name}: {' | '.join(failures)}; {place} or use a local copy "
        "(--weights PATH on the command line, pretrained=PATH in Python)"
    )
