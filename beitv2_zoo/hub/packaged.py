"""Weights shipped inside an installed package: ``Source(url='package:<package>/<path>', sha256=…)``.

A few kilobyte-to-megabyte checkpoints (the CPU reproduction's classifier) travel with the
wheel as package data, so that their names work with no network and no cache at all. The
file is used where it is installed (nothing is copied into the cache); its sha256 is checked
on every fetch, like a cached download's.
"""

from importlib import resources
from pathlib import Path

from ..errors import HashMismatchError, WeightsDownloadError
from ..weights.schema import Source
from .cache import expected_hash, hash_matches, sha256_of

PACKAGE_SCHEME = "package:"


def is_packaged(source: Source) -> bool:
    """Whether ``source`` names a file inside an installed package."""
    return bool(source.url) and source.url.startswith(PACKAGE_SCHEME)  # type: ignore[union-attr]


def packaged_file(source: Source) -> Path:
    """The verified local path of a ``package:`` source.

    Raises:
        WeightsDownloadError: the file is not installed (a broken or partial install).
        HashMismatchError: the installed file's sha256 differs from the record's.
    """
    package, _, relative = source.url[len(PACKAGE_SCHEME):].partition("/")  # type: ignore[index]
    try:
        path = Path(str(resources.files(package).joinpath(relative)))
    except ModuleNotFoundError:
        path = Path(relative)
    if not path.is_file():
        raise WeightsDownloadError(f"{source.url}: the packaged file {path} is missing; reinstall beitv2-zoo")
    actual = sha256_of(path)
    if not hash_matches(actual, source):
        raise HashMismatchError(f"{path} (from {source.url}) has sha256 {actual}, the record says "
                                f"{expected_hash(source)}; reinstall beitv2-zoo")
    return path
