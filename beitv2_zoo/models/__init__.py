"""Model definitions, and the table that maps an architecture name to a class and its settings."""

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .beit import BEIT_ARCHITECTURES, Beit, build_beit
from .features import FeatureExtractor, FeatureInfo, features_only
from .mim import MIM_ARCHITECTURES, BeitV2Pretrain
from .quantizer import NormEMAQuantizer
from .segmentation import SEGMENTATION_ARCHITECTURES, BeitSegmenter
from .vqkd import VQKD, VQKD_ARCHITECTURES


@dataclass(frozen=True)
class Architecture:
    """A buildable architecture: ``model_class(**settings, **overrides)``.

    Attributes:
        model_class: the ``nn.Module`` subclass.
        settings: its constructor keywords for this architecture.
        is_classifier: takes ``num_classes`` and produces logits (``inference_model`` works):
            an image classifier or a semantic segmenter.
        task: ``'image-classification'``, ``'semantic-segmentation'``, ``'masked-image-modeling'``
            or ``'visual-tokenizer'`` (the values of :attr:`WeightRecord.task`).
    """

    model_class: type[nn.Module]
    settings: dict[str, Any] = field(default_factory=dict)
    is_classifier: bool = True
    task: str = "image-classification"

    def build(self, **overrides: Any) -> nn.Module:
        return self.model_class(**{**self.settings, **overrides})


ARCHITECTURES: dict[str, Architecture] = {
    **{name: Architecture(Beit, settings) for name, settings in BEIT_ARCHITECTURES.items()},
    **{name: Architecture(BeitV2Pretrain, settings, is_classifier=False, task="masked-image-modeling")
       for name, settings in MIM_ARCHITECTURES.items()},
    **{name: Architecture(VQKD, settings, is_classifier=False, task="visual-tokenizer")
       for name, settings in VQKD_ARCHITECTURES.items()},
    **{name: Architecture(BeitSegmenter, settings, is_classifier=True, task="semantic-segmentation")
       for name, settings in SEGMENTATION_ARCHITECTURES.items()},
}
"""Every architecture name a weight record may use."""

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "BEIT_ARCHITECTURES",
    "Beit",
    "BeitSegmenter",
    "BeitV2Pretrain",
    "FeatureExtractor",
    "FeatureInfo",
    "MIM_ARCHITECTURES",
    "NormEMAQuantizer",
    "SEGMENTATION_ARCHITECTURES",
    "VQKD",
    "VQKD_ARCHITECTURES",
    "build_beit",
    "features_only",
]
