"""Image decoding and the evaluation transform of a weight record.

The transform reproduces the pipelines the published numbers were measured with:
mmpretrain's ``ResizeEdge(256, edge='short', backend='pillow', interpolation='bicubic')``
(new long edge truncated with ``int()``) then ``CenterCrop(224)`` (offsets rounded), the
official ``Resize(256) + CenterCrop(224)``, and timm's ``crop_pct`` resize; all with
Pillow's bicubic filter, then ``(x - mean) / std`` in float32.
"""

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError, InvalidInputError
from .weights.schema import Preprocessing
from .weights import IMAGENET_EVAL

ImageInput = Union[str, Path, Image.Image, np.ndarray, torch.Tensor]
"""What :func:`to_pil_rgb` accepts: a path, a PIL image, an RGB ``uint8`` HWC array, or a CHW tensor."""

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
"""File suffixes (any case) that :func:`expand_images` takes from folders."""

_FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def expand_images(paths: Sequence[Path]) -> list[Path]:
    """Files as given; folders replaced by the image files below them, sorted."""
    images: list[Path] = []
    for path in paths:
        if path.is_dir():
            images.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            images.append(path)
    return images


def load_image(path: str | Path) -> Image.Image:
    """Decode an image file fully and return it as 8-bit RGB, upright.

    The EXIF orientation tag is applied (a phone photo stored sideways with orientation 6 is
    turned upright), as mmpretrain's loader does with either of its backends (OpenCV's
    ``IMREAD_COLOR`` and mmcv's Pillow path). timm's and the official evaluation's loaders
    ignore the tag; on images without one (every ImageNet photo) all of them agree.

    Raises:
        ImageLoadError: the file does not exist, is not an image, is truncated, has no pixels,
            or is larger than Pillow's decompression-bomb limit. The message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(f"image {path} does not exist")
    if path.is_dir():
        raise ImageLoadError(f"{path} is a directory; pass the image files inside it")
    try:
        with Image.open(path) as image:
            image.load()
            if 0 in image.size:
                raise ImageLoadError(f"image {path} has no pixels ({image.size[0]}x{image.size[1]})")
            return pil_to_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as error:
        raise ImageLoadError(
            f"image {path} is too large to decode safely ({error}). If you trust it, raise "
            "PIL.Image.MAX_IMAGE_PIXELS before loading, or downscale the file first."
        ) from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path} is not an image Pillow can read (unknown or unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"image {path} cannot be decoded ({error}); the file is probably truncated or corrupt") from None


def pil_to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB deliberately.

    * ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's own conversion;
    * ``RGBA``, ``LA``, ``PA``: the alpha channel is dropped (as OpenCV's ``IMREAD_COLOR``
      does in mmpretrain), not composited;
    * 16-bit (``I;16*``) and 32-bit integer (``I``): the top 8 bits of a 16-bit range
      (OpenCV's 16→8 bit rule); ``F`` (float): clipped to ``[0, 255]``;
    * ``1`` (bilevel): black and white.
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image, dtype=np.int64)
        gray = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "F":
        if not np.isfinite(np.asarray(image)).all():
            raise InvalidInputError("the float image holds NaN or infinite values; it cannot be classified")
        gray = np.clip(np.asarray(image, dtype=np.float32), 0, 255).round().astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        return image.convert("RGBA").convert("RGB")
    return image.convert("RGB")


def to_pil_rgb(item: ImageInput) -> Image.Image:
    """Turn one input of any accepted kind into an 8-bit RGB Pillow image.

    Arrays are RGB ``uint8`` ``[H, W, 3]`` (or ``[H, W]`` gray; ``uint16`` keeps its top
    8 bits). Tensors are ``[3, H, W]`` (or ``[1, H, W]``), ``uint8`` or float in ``[0, 1]``.
    """
    if isinstance(item, (str, Path)):
        return load_image(item)
    if isinstance(item, Image.Image):
        return pil_to_rgb(item)
    if isinstance(item, torch.Tensor):
        return _tensor_to_pil(item)
    if isinstance(item, np.ndarray):
        return _array_to_pil(item)
    raise TypeError(f"unsupported input type {type(item).__name__}: pass a path, PIL image, numpy array or tensor")


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if 0 in array.shape:
        raise InvalidInputError(f"the image array has no pixels (shape {list(array.shape)})")
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    if array.dtype != np.uint8:
        raise TypeError(f"numpy images must be uint8 (or uint16), got {array.dtype}; scale float images to 0..255 first")
    if array.ndim == 2:
        return Image.fromarray(array, mode="L").convert("RGB")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(array[:, :, :3]), mode="RGB")
    if array.ndim == 3 and array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], mode="L").convert("RGB")
    raise InvalidInputError(f"numpy images must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]; got shape {array.shape}")


def _tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
        raise InvalidInputError(f"image tensors must be [3, H, W] or [1, H, W], got {list(tensor.shape)}")
    tensor = tensor.detach().cpu()
    if 0 in tensor.shape:
        raise InvalidInputError(f"the image tensor has no pixels (shape {list(tensor.shape)})")
    if tensor.dtype != torch.uint8:
        if not tensor.is_floating_point():
            raise TypeError(f"image tensors must be uint8 or float in [0, 1], got {tensor.dtype}")
        if not bool(torch.isfinite(tensor).all()):
            raise InvalidInputError("the image tensor holds NaN or infinite values; it cannot be classified")
        tensor = (tensor.float().clamp(0, 1) * 255).round().to(torch.uint8)
    array = tensor.permute(1, 2, 0).numpy()
    return _array_to_pil(array[:, :, 0] if array.shape[2] == 1 else array)


MAX_ASPECT_RATIO = 64
"""Longest side over shortest side that the evaluation resize accepts. Resizing the short edge of
a 100000 × 1 image to 256 would make a 25.6-million × 256 image (26 GB); the centre crop uses
a square from the middle anyway, so such an image cannot be classified meaningfully."""


def short_edge_size(width: int, height: int, size: int) -> tuple[int, int]:
    """``(new_width, new_height)`` with the short edge ``size`` and the long edge ``int(size * long / short)``.

    Raises:
        InvalidInputError: no pixels, or an aspect ratio over :data:`MAX_ASPECT_RATIO` (checked
            before any pixel is resized).
    """
    if width <= 0 or height <= 0:
        raise InvalidInputError(f"the image has no pixels ({width}x{height})")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InvalidInputError(f"a {width}x{height} image has an aspect ratio over {MAX_ASPECT_RATIO}:1; its short edge "
                                f"resized to {size} would make it {max(width, height) * size // min(width, height):,} "
                                "pixels long. Crop it first")
    return (size, int(size * height / width)) if width < height else (int(size * width / height), size)


def resize_short_edge(image: Image.Image, size: int, interpolation: str = "bicubic") -> Image.Image:
    """Scale so the short edge is ``size``; the long edge is ``int(size * long / short)`` (truncated)."""
    new_size = short_edge_size(*image.size, size)
    if new_size == image.size:
        return image
    return image.resize(new_size, _FILTERS[interpolation])


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """Crop the central ``size × size`` square; offsets are ``round((side - size) / 2)``."""
    width, height = image.size
    if width < size or height < size:
        raise ValueError(f"image {width}x{height} is smaller than the crop {size}")
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def normalize(image: Image.Image, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """RGB ``uint8`` image → float32 ``[3, H, W]`` as ``(x - 255·mean) / (255·std)``."""
    pixels = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)
    scaled_mean = torch.tensor([255.0 * m for m in mean], dtype=torch.float32).view(3, 1, 1)
    scaled_std = torch.tensor([255.0 * s for s in std], dtype=torch.float32).view(3, 1, 1)
    return (pixels - scaled_mean) / scaled_std


class EvalTransform:
    """Callable evaluation transform built from a :class:`Preprocessing`.

    ``transform(image)`` → normalised float32 ``[3, crop, crop]``.
    """

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.preprocessing = preprocessing

    def __call__(self, item: ImageInput) -> torch.Tensor:
        prep = self.preprocessing
        image = to_pil_rgb(item)
        try:
            image = resize_short_edge(image, prep.resize_size, prep.interpolation)
        except InvalidInputError as error:
            if isinstance(item, (str, Path)):  # name the file, as a decoding failure would
                raise ImageLoadError(f"image {item}: {error}") from None
            raise
        return normalize(center_crop(image, prep.crop_size), prep.mean, prep.std)

    def __repr__(self) -> str:
        p = self.preprocessing
        return (
            f"EvalTransform(resize_short_edge={p.resize_size}, {p.interpolation}; center_crop={p.crop_size}; "
            f"mean={p.mean}, std={p.std})"
        )


def create_transform(source: Any) -> EvalTransform:
    """The evaluation transform of a model (from ``get_model``), a weight record, or a :class:`Preprocessing`."""
    if isinstance(source, Preprocessing):
        return EvalTransform(source)
    record = getattr(source, "weights_info", source)
    preprocessing = getattr(record, "preprocessing", None)
    if preprocessing is None:
        preprocessing = IMAGENET_EVAL
    crop = getattr(getattr(source, "patch_embed", None), "img_size", preprocessing.crop_size)
    if crop != preprocessing.crop_size:  # a model built with another img_size keeps the record's crop ratio
        preprocessing = dataclasses.replace(preprocessing, resize_size=preprocessing.resize_for(crop), crop_size=crop)
    return EvalTransform(preprocessing)
