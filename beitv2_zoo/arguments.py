"""Command-line argument checking shared by ``beitv2-zoo`` and ``python -m beitv2_zoo.train``: every bad
argument is one line on stderr and exit status 2.

argparse's own errors (a missing or malformed value) go through :class:`OneLineParser`; values
that can only be judged once the command runs (a device that this machine lacks, a block index
past the model's depth) raise :class:`UsageError`, which ``beitv2-zoo``'s ``main`` prints the same way.
"""

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from .errors import UsageError

USAGE_EXIT = 2
"""The exit status of a bad argument (as argparse uses it)."""

__all__ = ["USAGE_EXIT", "OneLineParser", "UsageError", "checked_device", "existing_file", "non_negative_int",
           "positive_int"]


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``error: …; see beitv2-zoo X --help``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(USAGE_EXIT)


def positive_int(text: str) -> int:
    """An ``int`` ≥ 1 (``--topk``, ``--batch-size``)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An ``int`` ≥ 0 (``--workers``)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def existing_file(text: str) -> Path:
    """A path that is a file now (``plot-log LOG``)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a file" if path.exists() else f"{text} does not exist")
    return path


def checked_device(text: str | None) -> str:
    """A torch device this machine has: ``cpu``, ``cuda``, ``cuda:N`` (N below the GPU count), ``mps``.

    Raises:
        UsageError: anything else, naming what is available.
    """
    import torch

    if text is None:
        return "cpu"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {text!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return text
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {text}: this machine has no usable CUDA GPU; use --device cpu")
        if device.index is not None and device.index >= count:
            raise UsageError(f"--device {text}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        return text
    if device.type == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return text
    raise UsageError(f"--device {text}: not a device a model can run on here; use cpu or cuda")
