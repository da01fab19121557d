"""A record's evaluation transform in timm's ``pretrained_cfg`` keys.

With ``model.pretrained_cfg = pretrained_cfg_of(record)``, timm's
``resolve_model_data_config(model)`` + ``create_transform(**cfg)`` rebuild the record's own
evaluation pipeline: crop_pct 0.9 for timm's base records (0.95 large), and for mmpretrain's and
the official records ``224 / 256 = 0.875``, bicubic, ImageNet mean/std (without it timm silently
falls back to its defaults).
"""

import math
from typing import Any

from .schema import Preprocessing, SegmentationPreprocessing, WeightRecord


def crop_pct_of(p: Preprocessing) -> float:
    """timm's ``crop_pct`` for ``p``: the stated one, else ``crop / resize``, chosen so that timm's
    ``floor(crop_size / crop_pct)`` gives back ``resize_size`` exactly (a float quotient may land a
    hair below it)."""
    if p.crop_pct is not None:
        return p.crop_pct
    pct = p.crop_size / p.resize_size
    while math.floor(p.crop_size / pct) < p.resize_size:
        pct = math.nextafter(pct, 0.0)
    return pct


def pretrained_cfg_of(record_or_preprocessing: WeightRecord | Preprocessing, num_classes: int | None = None) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` dict for a weight record (or a bare :class:`Preprocessing`).

    Args:
        record_or_preprocessing: the record the weights came from, or only its transform.
        num_classes: classes of the model's head; by default the record's (1000 for a bare transform).

    Returns:
        ``url``, ``hf_hub_id``, ``input_size`` ``(3, crop, crop)``, ``fixed_input_size``, ``interpolation``,
        ``crop_pct``, ``crop_mode`` (``'center'``), ``mean``, ``std`` (tuples in [0, 1] units),
        ``num_classes``, ``pool_size`` (``None``), ``first_conv`` (``'patch_embed.proj'``),
        ``classifier`` (``'head'``), ``license`` and ``architecture`` (the record's name, or ``None``).
        For a segmenter (a :class:`SegmentationPreprocessing`): ``fixed_input_size`` ``False`` (it takes any
        multiple of the patch size), ``first_conv`` ``'backbone.patch_embed.proj'`` and ``classifier``
        ``'decode_head.conv_seg'``.
    """
    record = record_or_preprocessing if isinstance(record_or_preprocessing, WeightRecord) else None
    p = record.preprocessing if record is not None else record_or_preprocessing
    if not isinstance(p, Preprocessing):
        raise TypeError(f"expected a WeightRecord or a Preprocessing, got {type(record_or_preprocessing).__name__}")
    if num_classes is None:
        num_classes = record.num_classes if record is not None else 1000
    segmenter = isinstance(p, SegmentationPreprocessing)
    hub = next((s.hf_repo for s in record.sources if s.hf_repo), None) if record is not None else None
    return {
        "url": "",
        "hf_hub_id": hub,
        "architecture": record.name if record is not None else None,
        "input_size": (3, p.crop_size, p.crop_size),
        "fixed_input_size": not segmenter,
        "interpolation": p.interpolation,
        "crop_pct": crop_pct_of(p),
        "crop_mode": "center",
        "mean": tuple(p.mean),
        "std": tuple(p.std),
        "num_classes": num_classes,
        "pool_size": None,
        "first_conv": "backbone.patch_embed.proj" if segmenter else "patch_embed.proj",
        "classifier": "decode_head.conv_seg" if segmenter else "head",
        "license": record.license if record is not None else None,
    }
