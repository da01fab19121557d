"""beitv2_zoo: BEiT v2 (and BEiT) models, weights and inference without a toolbox.

>>> from beitv2_zoo import inference_model, get_model, list_models
>>> list_models('*beitv2*')[:2]
['beit-base-p16_beitv2-in21k-pre_3rdparty_in1k', 'beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k']

Names that need PyTorch (``get_model``, ``inference_model``, ``create_transform``, ``SegPrediction``) are
imported on first use, so ``import beitv2_zoo``, ``list_models`` and the command line's
``list``/``info`` start without loading torch.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    BeitZooError,
    CheckpointError,
    CheckpointMismatchError,
    CheckpointWriteError,
    HashMismatchError,
    ImageLoadError,
    InvalidInputError,
    MissingDependencyError,
    ModelConfigError,
    NonFiniteOutputError,
    UnknownModelError,
    UnsafeCheckpointError,
    WeightsDownloadError,
)
from .weights import get_record, list_models
from .version import __version__

if TYPE_CHECKING:
    from .api import get_model, inference_model
    from .pretrained import push_to_hub, save_pretrained
    from .segment import SegPrediction
    from .transforms import create_transform

_LAZY = {"get_model": "api", "inference_model": "api", "create_transform": "transforms",
         "save_pretrained": "pretrained", "push_to_hub": "pretrained", "SegPrediction": "segment"}
"""Public name → submodule that defines it, imported when the name is first used. The function
``segment`` is not re-exported: its name is the submodule's, so ``beitv2_zoo.segment`` would be the
function or the module depending on what was imported first; call ``inference_model`` (which
segments with a segmenter) or ``from beitv2_zoo.segment import segment``."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BeitZooError",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointWriteError",
    "HashMismatchError",
    "ImageLoadError",
    "InvalidInputError",
    "MissingDependencyError",
    "ModelConfigError",
    "NonFiniteOutputError",
    "SegPrediction",
    "UnknownModelError",
    "UnsafeCheckpointError",
    "WeightsDownloadError",
    "__version__",
    "create_transform",
    "get_model",
    "get_record",
    "inference_model",
    "list_models",
    "push_to_hub",
    "save_pretrained",
]
