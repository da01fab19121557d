"""Semantic segmentation: the BEiT + UPerNet segmenter and its parts.

==================  ==========================================================
:mod:`.adapter`     ``fpn1..fpn4``: one ViT map per tapped block → 4 levels
:mod:`.uper_head`   the UPerNet decode head (pooling pyramid + FPN)
:mod:`.fcn_head`    the auxiliary FCN head (training only)
:mod:`.segmenter`   :class:`BeitBackbone`, :class:`BeitSegmenter`, the named sizes
==================  ==========================================================
"""

from .adapter import build_adapter
from .fcn_head import FcnHead
from .segmenter import (
    DEFAULT_OUT_INDICES,
    SEGMENTATION_ARCHITECTURES,
    BeitBackbone,
    BeitSegmenter,
)
from .uper_head import PyramidPooling, UperHead

__all__ = [
    "DEFAULT_OUT_INDICES",
    "SEGMENTATION_ARCHITECTURES",
    "BeitBackbone",
    "BeitSegmenter",
    "FcnHead",
    "PyramidPooling",
    "UperHead",
    "build_adapter",
]
