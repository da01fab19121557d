"""Typed errors. Each message says what went wrong and what to do next."""


class BeitZooError(Exception):
    """Base class of every error this package raises on purpose."""


class UnknownModelError(BeitZooError, ValueError):
    """A model name that is not registered; the message lists the closest names."""


class UsageError(BeitZooError, ValueError):
    """A command-line value that is well formed but cannot be used (``--device cuda`` without CUDA, …); exit status 2."""


class ModelConfigError(BeitZooError, ValueError):
    """An argument that cannot build a model (``num_classes <= 0``, an ``img_size`` off the patch grid, …)."""


class ImageLoadError(BeitZooError, OSError):
    """An input image that does not exist, cannot be decoded, or is not an image at all."""


class InvalidInputError(BeitZooError, ValueError):
    """An input that is an image in form but cannot be classified honestly (NaN or infinite pixels, no pixels)."""


class NonFiniteOutputError(BeitZooError, RuntimeError):
    """A model produced NaN or infinite scores (its weights were changed into non-finite values); no result is returned."""


class MissingDependencyError(BeitZooError, ImportError):
    """An optional feature whose package is not installed; the message names the ``pip install`` that adds it."""


class CheckpointError(BeitZooError, RuntimeError):
    """A checkpoint file that cannot be read (truncated, corrupt, not a checkpoint)."""


class CheckpointWriteError(BeitZooError, OSError):
    """A weights or training-checkpoint file that could not be written (disk full, permission); the message
    names the folder and its free space, and no partial file is left under the final name."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that would call code (``os.system``, ``eval``, …) while loading; nothing was run."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose keys or shapes do not fit the model; the message lists every difference."""


class WeightsDownloadError(BeitZooError, OSError):
    """Weights that could not be fetched; the message names the URL, the cache path and ``--weights PATH``."""


class HashMismatchError(WeightsDownloadError):
    """A downloaded or cached file whose sha256 differs from the record; the bad file has been deleted."""


class CacheWriteError(WeightsDownloadError):
    """The cache folder cannot be written (disk full, quota, permission); no partial file is left
    under the final name, and the message names the folder and how to point the cache elsewhere."""
