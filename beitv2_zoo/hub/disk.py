"""Writing the cache safely: file-system errors (disk full, quota, permission) become a
:class:`CacheWriteError` naming the path, and a download checks the free space before its body.
"""

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import BeitZooError, CacheWriteError

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a file-system error while writing the cache into a :class:`CacheWriteError`."""
    try:
        yield
    except BeitZooError:
        raise
    except OSError as error:
        raise cache_write_error(error, path) from None


def cache_write_error(error: OSError, path: Path) -> CacheWriteError:
    """The :class:`CacheWriteError` for ``error``, raised while writing ``path``: the reason and the way out."""
    if error.errno in _NO_SPACE:
        reason = f"no space left ({error.strerror}); free some space"
    elif error.errno == errno.EFBIG:
        reason = f"the file is larger than this file system or process allows ({error.strerror})"
    elif error.errno in _NO_PERMISSION:
        reason = f"permission denied ({error.strerror}); make the folder writable"
    else:
        reason = f"{type(error).__name__}: {error.strerror or error}"
    return CacheWriteError(
        f"cannot write {path}: {reason}, or point BEITV2_ZOO_CACHE (cache_dir=) at another folder. "
        "No partial file was left under the final name"
    )


def check_free_space(path: Path, needed: int) -> None:
    """Raise :class:`CacheWriteError` if the folder of ``path`` has less than ``needed`` bytes free
    (nothing happens when the free space cannot be read)."""
    try:
        free = _free_bytes(path.parent)
    except OSError:
        return
    if needed > free:
        raise CacheWriteError(
            f"cannot write {path}: no space left (the download needs {needed / 1e6:.1f} MB more, "
            f"{free / 1e6:.1f} MB are free in {path.parent}); free some space, or point BEITV2_ZOO_CACHE "
            "(cache_dir=) at another folder. No partial file was left under the final name"
        )


def _free_bytes(folder: Path) -> int:
    """Free bytes on the file system holding ``folder``."""
    return shutil.disk_usage(folder).free
