"""The temporary file a download streams into, hashing on the way, and from which a later call resumes."""

import hashlib
import os
from pathlib import Path
from typing import IO

from .cache import CHUNK
from .disk import writing


class PartialFile:
    """A temporary file this process owns: its bytes so far, their count and their sha256.

    A file left by an earlier call is re-hashed on opening, so that the final hash covers
    every byte of the finished file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self.validator: str | None = None  # ETag / Last-Modified of the response the bytes came from
        self._digest = hashlib.sha256()
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle: IO[bytes] = path.open("a+b")
            self._handle.seek(0)
            for chunk in iter(lambda: self._handle.read(CHUNK), b""):
                self._digest.update(chunk)
                self.size += len(chunk)

    def __enter__(self) -> "PartialFile":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._handle.closed:  # only after a failure: the bytes are handed back or deleted next
            try:
                self._handle.close()
            except OSError:  # e.g. a full disk refusing the buffered tail; the original error is the story
                pass

    def append(self, data: bytes) -> None:
        """Write ``data`` at the end."""
        with writing(self.path):
            self._handle.write(data)
        self._digest.update(data)
        self.size += len(data)

    def restart(self) -> None:
        """Drop every byte (the server sent the whole file again)."""
        with writing(self.path):
            self._handle.seek(0)
            self._handle.truncate()
        self._digest, self.size, self.validator = hashlib.sha256(), 0, None

    def finish(self) -> str:
        """Flush to disk, close; return the hex sha256 of the content."""
        with writing(self.path):
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        return self._digest.hexdigest()
