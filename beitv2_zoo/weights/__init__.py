"""The registry and its records, as data: ``schema`` (the record types), ``_common`` (shared constants),
one table per family (``classification``, ``pretraining``, ``segmentation``, ``reproduction``), ``registry`` (lookup),
``labels`` (class-name sets) and ``files`` (weights shipped inside the package).

Adding a weight for an existing architecture is one :class:`WeightRecord` in one table
(then ``beitv2-zoo cards --write`` regenerates its card and the README table).
"""

from .registry import ALL_RECORDS, TEST_PREFIX, aliases_of, get_record, is_model, list_models, register, unregister
from ._common import (ADE20K_EVAL_512, ADE20K_EVAL_640, HALF_EVAL, IMAGENET_EVAL, TIMM_BASE_EVAL, TIMM_LARGE_EVAL,
                      TOKENIZER_EVAL)
from .schema import Metric, Preprocessing, SegmentationPreprocessing, Source, WeightRecord

__all__ = [
    "ADE20K_EVAL_512",
    "ADE20K_EVAL_640",
    "ALL_RECORDS",
    "HALF_EVAL",
    "IMAGENET_EVAL",
    "TIMM_BASE_EVAL",
    "TIMM_LARGE_EVAL",
    "TOKENIZER_EVAL",
    "Metric",
    "Preprocessing",
    "SegmentationPreprocessing",
    "Source",
    "TEST_PREFIX",
    "WeightRecord",
    "aliases_of",
    "get_record",
    "is_model",
    "list_models",
    "register",
    "unregister",
]
