"""Semantic segmentation of images with a built segmenter, as mmsegmentation's test pipeline does it
(``beitv2_zoo.inference_model`` builds the model by name, then calls :func:`segment`).

Per image: decode (EXIF applied, as for classification), resize keeping the aspect ratio to fit the
record's ``scale`` with mmcv's cv2 bilinear resize (:mod:`beitv2_zoo.seg_transforms`, bit-exact),
normalise, then logits from sliding windows (:func:`slide_logits`, mmseg 1.2.2's
``EncoderDecoder.slide_inference`` step for step) or from the whole image (:func:`whole_logits`),
resized back to the original size (bilinear, ``align_corners=False``) and reduced with an argmax.

One difference from mmseg, where mmseg fails: a window or image whose side is not a multiple of
the patch size (an image whose short side is below the crop after resizing) is padded on the
right and bottom with zeros (the mean colour, after normalisation: mmseg's data preprocessor pads
with 0 after normalising too), its logits are resized to the padded size and cropped back.
mmseg's BEiT would raise there; everywhere else the numbers are mmseg's.
"""

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypedDict, cast, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models.protocol import ZooModel
from .errors import ImageLoadError, InvalidInputError, ModelConfigError, NonFiniteOutputError
from .seg_transforms import normalize as seg_normalize
from .seg_transforms import rescale_size, resize_bilinear
from .transforms import MAX_ASPECT_RATIO, ImageInput, to_pil_rgb
from .weights._common import ADE20K_EVAL_512
from .weights.labels import class_names as label_set_names
from .weights.labels import default_palette
from .weights.labels import palette as label_set_palette
from .weights.schema import SegmentationPreprocessing

logger = logging.getLogger(__name__)

SEGMENTATION_TASK = "semantic-segmentation"
UPSAMPLE_CHUNK_BYTES = 64 << 20
"""Most bytes of upsampled logits held at once by :func:`upsample_argmax` (at least one channel)."""


class _SegPredictionKeys(TypedDict):
    pred_sem_seg: np.ndarray  # int64 [H, W], the original image size
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]


class SegPrediction(_SegPredictionKeys, total=False):
    """One image's segmentation: mmseg's ``pred_sem_seg`` as an int64 ``[H, W]`` array, the model's
    class names and an RGB colour per class; ``seg_logits`` (float32 ``[K, H, W]``) with ``return_logits``."""

    seg_logits: np.ndarray


def is_segmenter(model: object) -> bool:
    """Whether ``model`` is a semantic segmenter (``model.task == 'semantic-segmentation'``)."""
    return getattr(model, "task", None) == SEGMENTATION_TASK


@overload
def segment(model: "nn.Module | ZooModel", inputs: ImageInput, *, mode: str | None = ..., return_logits: bool = ...,
            on_error: str = ..., window_batch: int = ...) -> SegPrediction: ...
@overload
def segment(model: "nn.Module | ZooModel", inputs: list[ImageInput] | tuple[ImageInput, ...], *, mode: str | None = ...,
            return_logits: bool = ..., on_error: str = ..., window_batch: int = ...) -> list[SegPrediction | None]: ...


def segment(
    model: "nn.Module | ZooModel",
    inputs: ImageInput | Sequence[ImageInput],
    *,
    mode: str | None = None,
    return_logits: bool = False,
    on_error: str = "raise",
    window_batch: int = 1,
) -> SegPrediction | list[SegPrediction | None]:
    """Segment one image or a list of images with a built segmenter (``model.task == 'semantic-segmentation'``).

    Args:
        model: a segmenter from :func:`beitv2_zoo.get_model`; ``model(x)`` maps normalised
            ``[B, 3, h, w]`` (multiples of the patch size) to logits ``[B, K, h/s, w/s]``
            (``s = model.output_stride``). It runs in its own dtype and on its own device, under
            ``torch.inference_mode``.
        inputs: a path, a PIL image, an RGB ``uint8`` HWC array, a CHW tensor, or a list of them.
        mode: ``'slide'`` (windows of the crop size every ``stride`` pixels, averaged where they
            overlap) or ``'whole'`` (the resized image at once); ``None``: the preprocessing's mode.
        return_logits: also return ``seg_logits``, float32 ``[K, H, W]`` at the original size
            (``K × H × W × 4`` bytes: 7.2 GB for 150 classes on a 4000×3000 photo).
        on_error: ``'raise'`` (an unreadable file raises :class:`ImageLoadError`; no pixels, NaN
            pixels or an aspect ratio over 64:1, :class:`InvalidInputError`) or ``'skip'`` (logged,
            the result is ``None``).
        window_batch: windows per forward pass in ``'slide'`` mode. 1 (the default) runs them one
            by one as mmseg does, so the logits are mmseg's bit for bit; more is faster on a GPU
            and may differ in the last bits (batched kernels sum in another order).

    Preprocessing comes from ``model.weights_info.preprocessing`` when it is a
    :class:`~beitv2_zoo.weights.schema.SegmentationPreprocessing`, else ``ADE20K_EVAL_512`` scaled
    to the model's ``img_size`` (see :func:`seg_preprocessing`).

    Memory: besides the model's activations (one window at a time), ``K × h × w × 4`` bytes for the
    logits at the resized size ``h × w`` (ADE20K's scale keeps ``h × w`` at most 2048 × 512: 630 MB
    for 150 classes, 210 MB for a 4:3 photo), at most :data:`UPSAMPLE_CHUNK_BYTES` (64 MB) of
    upsampled logits or one channel at the original size, whichever is larger, and about 20 bytes per
    original pixel (the decoded pixels, the int64 labels, a running maximum). The ``[K, H, W]``
    float logits at the original size are never held unless ``return_logits``. Measured on a
    4000 × 3000 photo with the tiny test segmenter (150 classes, crop 512, on the CPU): 430-440 MB above
    the resident size before the call (``tests/test_segment.py::test_memory_stays_bounded_on_a_big_photo``),
    where the full logits alone would be 7.2 GB.

    Returns:
        Per image a :class:`SegPrediction`: ``pred_sem_seg`` (int64 ``[H, W]``, the original size),
        ``classes`` (the model's class names, or label indices as strings when it has none),
        ``palette`` (an RGB tuple per class), and ``seg_logits`` with ``return_logits``. A list of
        inputs gives a list (``None`` for a skipped image).

    Raises:
        ModelConfigError: ``model`` is not a segmenter.
        NonFiniteOutputError: the model's logits hold NaN or infinite values.
    """
    if not is_segmenter(model):
        raise ModelConfigError(f"segment() needs a semantic segmenter (task {SEGMENTATION_TASK!r}); "
                               f"{type(model).__name__} has task {getattr(model, 'task', None)!r}: use inference_model")
    if mode not in (None, "slide", "whole"):
        raise ValueError(f"mode must be 'slide', 'whole' or None, got {mode!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not isinstance(window_batch, int) or isinstance(window_batch, bool) or window_batch < 1:
        raise ValueError(f"window_batch must be a positive int, got {window_batch!r}")

    model = cast(nn.Module, model)
    single = not isinstance(inputs, (list, tuple))
    items: list[ImageInput] = [cast(ImageInput, inputs)] if single else list(cast(Sequence[ImageInput], inputs))
    preprocessing = seg_preprocessing(model)
    mode = mode or preprocessing.mode
    classes, colours = segmentation_labels(model)
    parameter = next(model.parameters())
    results: list[SegPrediction | None] = []
    for item in items:
        try:
            pixels = _decode(item)
            size = (int(pixels.shape[0]), int(pixels.shape[1]))
            image = preprocess(pixels, preprocessing)
            del pixels  # only its size is needed from here on
        except (ImageLoadError, InvalidInputError) as error:
            if on_error == "raise":
                raise
            logger.warning("skipped: %s", error)
            results.append(None)
            continue
        with torch.inference_mode():
            x = image.unsqueeze(0).to(parameter.device, parameter.dtype)
            if mode == "slide":
                logits = slide_logits(model, x, preprocessing.crop_size, preprocessing.stride, window_batch=window_batch)
            else:
                logits = whole_logits(model, x)
            _check_finite(logits)
            full = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)[0] if return_logits else None
            labels = upsample_argmax(logits, size) if full is None else full.argmax(dim=0)
            prediction: SegPrediction = {"pred_sem_seg": labels.cpu().numpy(), "classes": classes, "palette": colours}
            if full is not None:
                _check_finite(full)
                prediction["seg_logits"] = full.cpu().numpy()
        results.append(prediction)
    return results[0] if single else results  # type: ignore[return-value]  # None: one input skipped


def seg_preprocessing(model: nn.Module) -> SegmentationPreprocessing:
    """The evaluation pipeline of ``model``: its record's :class:`SegmentationPreprocessing`, or
    ``ADE20K_EVAL_512``. When the model's ``img_size`` differs from that crop, the crop becomes
    ``img_size`` and ``scale``, ``resize_size`` and ``stride`` are scaled by the same ratio (512 → 640
    gives ``ADE20K_EVAL_640``'s (2560, 640) and 426), so the windows still overlap as published."""
    preprocessing = getattr(getattr(model, "weights_info", None), "preprocessing", None)
    if not isinstance(preprocessing, SegmentationPreprocessing):
        preprocessing = ADE20K_EVAL_512
    crop = model_img_size(model)
    if crop is None or crop == preprocessing.crop_size:
        return preprocessing
    ratio = crop / preprocessing.crop_size
    return dataclasses.replace(
        preprocessing, crop_size=crop, resize_size=max(1, round(preprocessing.resize_size * ratio)),
        scale=(max(1, round(preprocessing.scale[0] * ratio)), max(1, round(preprocessing.scale[1] * ratio))),
        stride=max(1, min(crop, round(preprocessing.stride * ratio))))


def segmentation_labels(model: nn.Module) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    """``(class names, palette)`` of a segmenter: ``model.class_names`` (label indices as strings
    when ``None``) and its label set's palette (ADE20K's for ADE20K's names), else a generated one."""
    num_classes: int = model.num_classes  # type: ignore[assignment]
    names = getattr(model, "class_names", None)
    classes = tuple(names) if names and len(names) == num_classes else tuple(str(i) for i in range(num_classes))
    label_set = getattr(getattr(model, "weights_info", None), "label_set", None)
    candidates = [label_set] if label_set else []
    if classes == label_set_names("ade20k"):
        candidates.insert(0, "ade20k")
    for candidate in candidates:
        try:
            colours = label_set_palette(candidate)
        except ValueError:  # a label set without names here
            continue
        if len(colours) == num_classes:
            return classes, colours
    return classes, default_palette(num_classes)


def preprocess(pixels: np.ndarray, preprocessing: SegmentationPreprocessing) -> torch.Tensor:
    """RGB ``uint8 [H, W, 3]`` → normalised float32 ``[3, h, w]``, resized keeping the aspect ratio to fit
    ``preprocessing.scale`` with mmcv's cv2 bilinear resize (unchanged when already that size)."""
    height, width = pixels.shape[:2]
    new_w, new_h = rescale_size(width, height, preprocessing.scale)
    if (new_w, new_h) != (width, height):
        pixels = resize_bilinear(pixels, (new_w, new_h))
    return seg_normalize(pixels, preprocessing.mean, preprocessing.std)


def slide_logits(model: nn.Module, image: torch.Tensor, crop: int | tuple[int, int], stride: int | tuple[int, int],
                 *, window_batch: int = 1) -> torch.Tensor:
    """Logits of ``image`` from overlapping windows, exactly as mmseg 1.2.2's ``slide_inference``.

    Per axis there are ``max(side - crop + stride - 1, 0) // stride + 1`` window starts
    ``i × stride``; a window that would pass the edge is moved back inside (``end = min(start + crop,
    side)``, ``start = max(end - crop, 0)``), so every window is ``min(crop, side)`` wide. Each
    window's logits are resized to the window (bilinear, ``align_corners=False``), added into a
    full-size sum in raster order, and the sum is divided by how many windows cover each pixel.

    Args:
        model: ``[B, 3, h, w]`` → ``[B, K, h', w']`` logits (any ``h'``, ``w'``).
        image: normalised ``[1, 3, H, W]``, in the model's dtype and device.
        crop: window ``(height, width)``, or one int for both.
        stride: step ``(height, width)``, or one int for both; at most the crop, or pixels would be missed.
        window_batch: windows per forward pass (1: mmseg's order, bit-exact).

    Returns:
        float32 ``[1, K, H, W]``.
    """
    crop_h, crop_w = (crop, crop) if isinstance(crop, int) else crop
    stride_h, stride_w = (stride, stride) if isinstance(stride, int) else stride
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"slide_logits takes one image [1, 3, H, W], got {list(image.shape)}")
    if not (0 < stride_h <= crop_h and 0 < stride_w <= crop_w):
        raise ValueError(f"stride {(stride_h, stride_w)} must be positive and at most the crop {(crop_h, crop_w)}")
    height, width = image.shape[-2:]
    windows = [(y1, y2, x1, x2) for y1, y2 in window_spans(height, crop_h, stride_h)
               for x1, x2 in window_spans(width, crop_w, stride_w)]
    total: torch.Tensor | None = None
    count = torch.zeros((1, 1, height, width), dtype=torch.float32, device=image.device)
    for first in range(0, len(windows), window_batch):
        group = windows[first:first + window_batch]
        crops = torch.cat([image[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in group])
        low, padded = _model_logits(model, crops)
        if total is None:
            total = torch.zeros((1, low.shape[1], height, width), dtype=torch.float32, device=image.device)
        for channels, logits in _upsampled_chunks(low, padded, crops.shape[-2:]):
            for index, (y1, y2, x1, x2) in enumerate(group):
                total[:, channels, y1:y2, x1:x2] += logits[index:index + 1]
        for y1, y2, x1, x2 in group:
            count[:, :, y1:y2, x1:x2] += 1
    assert total is not None and bool((count > 0).all())
    return total.div_(count)


def window_spans(side: int, crop: int, stride: int) -> list[tuple[int, int]]:
    """``(start, end)`` of mmseg's sliding windows along one axis of length ``side``."""
    spans = []
    for index in range(max(side - crop + stride - 1, 0) // stride + 1):
        end = min(index * stride + crop, side)
        spans.append((max(end - crop, 0), end))
    return spans


def whole_logits(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Logits of the whole ``[B, 3, H, W]`` image at once, resized to ``H × W``: float32 ``[B, K, H, W]``."""
    return _window_logits(model, image)


def upsample_argmax(logits: torch.Tensor, size: tuple[int, int], chunk_bytes: int = UPSAMPLE_CHUNK_BYTES) -> torch.Tensor:
    """``F.interpolate(logits, size, 'bilinear', align_corners=False)[0].argmax(0)`` in bounded memory.

    Channels are upsampled a few at a time (each channel's interpolation is independent of the
    others, so bit-identical) and a running maximum keeps the first class on ties, as
    ``torch.argmax`` does. At most ``chunk_bytes`` of upsampled logits (but at least one channel)
    exist at once, plus the running maximum (4 bytes a pixel) and the labels (8 bytes a pixel).

    Args:
        logits: ``[1, K, h, w]`` float.
        size: ``(H, W)``.

    Returns:
        int64 ``[H, W]``.
    """
    num_classes = logits.shape[1]
    plane = max(1, size[0] * size[1] * logits.element_size())
    chunk = max(1, min(num_classes, chunk_bytes // plane))
    best: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    for first in range(0, num_classes, chunk):
        part = F.interpolate(logits[:, first:first + chunk], size=size, mode="bilinear", align_corners=False)[0]
        if part.shape[0] == 1:
            values, index = part[0], None
        else:
            index = part.argmax(dim=0)
            values = part.gather(0, index.unsqueeze(0))[0]
            index += first
        if best is None or labels is None:
            best = values.clone() if index is None else values
            labels = torch.full(size, first, dtype=torch.int64, device=logits.device) if index is None else index
            continue
        better = values > best  # strictly: an earlier class keeps a tie
        torch.maximum(best, values, out=best)  # in place (no NaN here: the logits were checked)
        if index is None:
            labels.masked_fill_(better, first)
        else:
            torch.where(better, index, labels, out=labels)
        del part, values, index, better
    assert best is not None and labels is not None
    _check_finite(best)
    return labels


# ----------------------------------------------------------------- helpers
def model_img_size(model: nn.Module) -> int | None:
    """The side the segmenter was built for (``img_size``), or ``None`` when it does not say."""
    for owner in (model, getattr(model, "backbone", None), getattr(getattr(model, "backbone", None), "patch_embed", None)):
        value = getattr(owner, "img_size", None)
        if isinstance(value, (tuple, list)) and value:
            value = value[0]
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(model, "build_settings", {}).get("img_size")
    return value if isinstance(value, int) and value > 0 else None


def model_patch_size(model: nn.Module) -> int:
    """The patch size: every input side must be a multiple of it (``output_stride × 4`` when not stated)."""
    for owner in (model, getattr(model, "backbone", None), getattr(getattr(model, "backbone", None), "patch_embed", None)):
        value = getattr(owner, "patch_size", None)
        if isinstance(value, (tuple, list)) and value:
            value = value[0]
        if isinstance(value, int) and value > 0:
            return value
    return int(getattr(model, "output_stride", 4)) * 4


def _window_logits(model: nn.Module, crops: torch.Tensor) -> torch.Tensor:
    """``model`` on ``[B, 3, h, w]``, logits resized to ``h × w`` (see :func:`_model_logits`): float32 ``[B, K, h, w]``."""
    low, padded = _model_logits(model, crops)
    out = low.new_empty((low.shape[0], low.shape[1], *crops.shape[-2:]))
    for channels, part in _upsampled_chunks(low, padded, crops.shape[-2:]):
        out[:, channels] = part
    return out


def _model_logits(model: nn.Module, crops: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """``model`` on ``[B, 3, h, w]``: its low-resolution logits ``[B, K, h', w']`` as float32, and the
    ``(height, width)`` it ran at.

    A side that is not a multiple of the patch size, or is shorter than two patches (the adapter's
    1/32 level pools two patches into one), is padded at the right or bottom with zeros (the mean
    colour, after normalisation) to the next size that is; the logits are then resized to that size
    and cropped back (:func:`_upsampled_chunks`).
    """
    height, width = crops.shape[-2:]
    patch = model_patch_size(model)
    padded = (max(-(-height // patch) * patch, 2 * patch), max(-(-width // patch) * patch, 2 * patch))
    if padded != (height, width):
        crops = F.pad(crops, (0, padded[1] - width, 0, padded[0] - height))
    logits = model(crops)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or logits.shape[0] != crops.shape[0]:
        raise ModelConfigError(f"a segmenter must return logits [B, K, h, w]; got {getattr(logits, 'shape', type(logits))}")
    return logits.float(), padded


def _upsampled_chunks(logits: torch.Tensor, padded: tuple[int, int], size: Sequence[int],
                      chunk_bytes: int = UPSAMPLE_CHUNK_BYTES) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(channels, logits [B, k, h, w])``: ``logits`` resized to ``padded`` (bilinear,
    ``align_corners=False``, as mmseg's ``resize``) and cropped to ``size = (h, w)``, a few channels at a
    time; each channel's interpolation is independent of the others, so the values are those of one call."""
    height, width = int(size[0]), int(size[1])
    plane = max(1, logits.shape[0] * padded[0] * padded[1] * 4)
    chunk = max(1, min(logits.shape[1], chunk_bytes // plane))
    for first in range(0, logits.shape[1], chunk):
        part = F.interpolate(logits[:, first:first + chunk], size=padded, mode="bilinear", align_corners=False)
        yield slice(first, first + chunk), (part[:, :, :height, :width] if padded != (height, width) else part)


def _decode(item: ImageInput) -> np.ndarray:
    """Any accepted input → RGB ``uint8 [H, W, 3]``, with the aspect-ratio guard of the classifier's transform.

    Raises:
        ImageLoadError: a file that cannot be decoded, or whose aspect ratio is too large (naming it).
        InvalidInputError: an in-memory image with no pixels, NaN pixels or too large an aspect ratio.
    """
    pixels = np.array(to_pil_rgb(item))  # writable, for torch.from_numpy
    height, width = pixels.shape[:2]
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        message = (f"a {width}x{height} image has an aspect ratio over {MAX_ASPECT_RATIO}:1; resized to fit the "
                   "segmentation scale its short side would vanish. Crop it first")
        if isinstance(item, (str, Path)):
            raise ImageLoadError(f"image {item}: {message}")
        raise InvalidInputError(message)
    return pixels


def _check_finite(values: torch.Tensor) -> None:
    """Raise on a NaN or an infinity, without a tensor-sized temporary (``amax``/``amin`` propagate NaN)."""
    if not bool(torch.isfinite(torch.stack([values.amax(), values.amin()])).all()):
        raise NonFiniteOutputError("the segmenter produced NaN or infinite logits, so no class can be trusted; its "
                                   "weights hold non-finite values (check them with torch.isfinite)")


__all__ = ["SegPrediction", "is_segmenter", "seg_preprocessing", "segment", "segmentation_labels", "slide_logits",
           "upsample_argmax", "whole_logits", "window_spans"]
