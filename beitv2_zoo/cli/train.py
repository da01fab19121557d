"""``beitv2-zoo train`` and ``beitv2-zoo test``: registered from the training subpackage, which owns their parsers."""

from ..train.commands import register

__all__ = ["register"]
