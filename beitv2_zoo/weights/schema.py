"""The shape of a weight record: frozen dataclasses, no behaviour beyond small derived properties."""

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Source:
    """One place a checkpoint file can be fetched from.

    Attributes:
        url: direct download URL (``None`` for a Hugging Face Hub source), or
            ``package:<package>/<path>`` for a file shipped inside the installed package
            (see :mod:`beitv2_zoo.hub.packaged`).
        sha256: the full sha256 of the file, where known.
        sha256_prefix: the hash prefix in the file name (``…-73e11905.pth``), where that is all we know.
        hf_repo: Hugging Face Hub repository id, e.g. ``'timm/beitv2_base_patch16_224.in1k_ft_in1k'``.
        hf_filename: file inside ``hf_repo``.
        host: who serves it: ``'openmmlab'``, ``'official'`` or ``'hf-hub'``.
    """

    url: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    hf_repo: str | None = None
    hf_filename: str | None = None
    host: str = "official"

    @property
    def filename(self) -> str:
        """The file's base name, used as its cache file name."""
        if self.url is not None:
            return self.url.rsplit("/", 1)[-1].split("?", 1)[0]
        return f"{(self.hf_repo or '').replace('/', '--')}--{self.hf_filename}"


@dataclass(frozen=True)
class Preprocessing:
    """Evaluation transform: resize the short edge, centre-crop, normalise.

    ``mean``/``std`` are in ``[0, 1]`` units (mmpretrain's 123.675/58.395 = 0.485/0.229).
    ``crop_pct`` is the ratio a source states (timm's 0.9), where it states one; it sets
    the resize for other crop sizes. Otherwise ``crop_size / resize_size`` is used.
    """

    resize_size: int = 256
    crop_size: int = 224
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    crop_pct: float | None = None

    def resize_for(self, crop_size: int) -> int:
        """Short-edge size for another crop size at the same crop ratio (``floor(crop / crop_pct)``)."""
        if crop_size == self.crop_size:
            return self.resize_size
        return math.floor(crop_size / (self.crop_pct or self.crop_size / self.resize_size))


@dataclass(frozen=True)
class SegmentationPreprocessing(Preprocessing):
    """Evaluation of a segmenter, as mmsegmentation's test pipeline and ``test_cfg`` state it.

    The image is resized keeping its aspect ratio to fit ``scale`` (mmcv's ``(long, short)`` bound:
    ``(2048, 512)`` makes the short side 512 unless the long side would pass 2048), with mmcv's
    default cv2 bilinear resize; it is normalised with ``mean``/``std`` (``[0, 1]`` units); logits come
    from ``mode='slide'`` windows of ``crop_size`` every ``stride`` pixels (or ``'whole'``: the image at
    once) and are resized back to the original image. ``resize_size`` is the short side (``scale[1]``).
    """

    resize_size: int = 512
    crop_size: int = 512
    interpolation: str = "bilinear"
    scale: tuple[int, int] = (2048, 512)
    stride: int = 341
    mode: str = "slide"


@dataclass(frozen=True)
class Metric:
    """A published evaluation result: classification accuracy (``top1``/``top5``) or segmentation
    scores (``miou``, ``miou_ms`` multi-scale with flips, ``macc``, ``aacc``), in percent."""

    dataset: str
    top1: float | None = None
    top5: float | None = None
    source: str = ""
    miou: float | None = None
    miou_ms: float | None = None
    macc: float | None = None
    aacc: float | None = None


@dataclass(frozen=True)
class WeightRecord:
    """Everything known about one named checkpoint.

    Attributes:
        name: the registry name.
        architecture: key of :data:`beitv2_zoo.models.ARCHITECTURES`.
        model_kwargs: constructor settings beyond the architecture (pooling, layer scale, …).
        num_classes: classes of the head in the file; ``0`` for a model without a
            classification head (a pretraining model or a tokenizer).
        label_set: ``'imagenet-1k'``, ``'imagenet-21k'``, ``'ade20k'``, … (see :mod:`beitv2_zoo.weights.labels`);
            ``None`` without a classification head.
        task: ``'image-classification'``, ``'semantic-segmentation'``, ``'masked-image-modeling'`` (a BEiT v2
            pretraining model) or ``'visual-tokenizer'`` (a VQ-KD tokenizer).
        sources: where the file can be fetched, tried in order.
        preprocessing: the evaluation transform the metrics were measured with.
        metrics: published results, each with its source.
        params: parameter count of the model built from this record.
        gmacs: multiply-accumulates per image at the crop size, in billions.
        license: licence of the weights as stated by their publisher.
        paper: arXiv URL.
        converted_from: URL of the original file when this one is a re-packaging.
        upstream: the name this one was fine-tuned from, if registered or known.
        training_data: datasets seen, in order.
        aliases: other names that resolve to this record.
        notes: anything a user should know (evaluation protocol differences, …).
        tokenizer: for a pretraining model, the name of the tokenizer record whose weights
            are attached as ``model.tokenizer`` when this record's file does not hold them.
    """

    name: str
    architecture: str
    num_classes: int
    label_set: str | None
    sources: tuple[Source, ...]
    preprocessing: Preprocessing
    params: int
    gmacs: float
    license: str
    paper: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    task: str = "image-classification"
    metrics: tuple[Metric, ...] = ()
    converted_from: str | None = None
    upstream: str | None = None
    training_data: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    notes: str = ""
    tokenizer: str | None = None
