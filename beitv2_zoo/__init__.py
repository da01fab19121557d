"""beitv2_zoo: BEiT v2 (and BEiT) models, weights and inference without a toolbox.

>>> from beitv2_zoo import inference_model, get_model, list_models
>>> list_models('*beitv2*')[:2]
['beit-base-p16_beitv2-in21k-pre_3rdparty_in1k', 'beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k']
"""

from .errors import (
    BeitZooError,
    CheckpointError,
    CheckpointMismatchError,
    HashMismatchError,
    ImageLoadError,
    ModelConfigError,
    UnknownModelError,
    UnsafeCheckpointError,
    WeightsDownloadError,
)
from .factory import get_model
from .inference import inference_model
from .registry import get_record, list_models
from .transforms import create_transform
from .version import __version__

__all__ = [
    "BeitZooError",
    "CheckpointError",
    "CheckpointMismatchError",
    "HashMismatchError",
    "ImageLoadError",
    "ModelConfigError",
    "UnknownModelError",
    "UnsafeCheckpointError",
    "WeightsDownloadError",
    "__version__",
    "create_transform",
    "get_model",
    "get_record",
    "inference_model",
    "list_models",
]
