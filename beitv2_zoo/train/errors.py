"""Errors of the training subpackage; each says what to do next."""

from ..errors import BeitZooError


class RecipeError(BeitZooError, ValueError):
    """An unknown recipe, an unknown ``key=value`` override, or a value of the wrong type."""


class NonFiniteLossError(BeitZooError, FloatingPointError):
    """The loss became NaN or infinite; training stopped before the bad step touched the weights."""


class ResumeError(BeitZooError, RuntimeError):
    """A checkpoint that cannot continue this run (another global batch, another task, a damaged file)."""


class DataError(BeitZooError, OSError):
    """A data folder or annotation file that cannot be used (missing, empty, malformed)."""
