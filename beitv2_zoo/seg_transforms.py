"""The segmentation test-time image pipeline of mmseg, reproduced with numpy and torch.

mmseg resizes with mmcv's ``Resize`` (``keep_ratio=True``), which calls OpenCV: ``cv2.resize`` with
``INTER_LINEAR`` on ``uint8`` pictures and ``INTER_NEAREST`` on label maps. This module computes the
same target size (:func:`rescale_size`) and the same pixels (:func:`resize_bilinear`,
:func:`resize_nearest`) without OpenCV:

* OpenCV's ``INTER_LINEAR`` on 8-bit images works in fixed point: per axis, the source position
  ``(d + 0.5) * scale - 0.5`` is computed in float32 and its two weights are rounded to 11 bits
  (``round(w * 2048)``); a horizontal pass makes integer rows ``a0 * p0 + a1 * p1``, and a vertical
  pass combines two of them. ``cv2`` runs that pass vectorised, over whole rows: it drops the low 4
  bits of each row value, keeps the high 16 bits of each product with its weight, adds the two and
  rounds away the last 2 bits (``((r0 >> 4) * b0 >> 16) + ((r1 >> 4) * b1 >> 16) + 2 >> 2``), which
  differs from rounding ``r0 * b0 + r1 * b1`` once in about one value in ten; this is the rounding
  reproduced here (checked against opencv-python 4.10 and 5.0 on x86-64).
* Exactly halving both sides is done by OpenCV as an area average: ``(a + b + c + d + 2) >> 2``.
* ``INTER_NEAREST`` takes source index ``floor(d * (1 / (dst / src)))`` (in double, as OpenCV does).
"""

from collections.abc import Sequence

import numpy as np
import torch

from .errors import InvalidInputError

_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS  # 2048


def rescale_size(width: int, height: int, scale: tuple[int, int] | float = (2048, 512)) -> tuple[int, int]:
    """The size mmcv's ``imrescale`` (``Resize(keep_ratio=True)``) gives a ``width x height`` image.

    With a pair, the image is scaled as large as fits: its long side at most ``max(scale)`` and its
    short side at most ``min(scale)``; with a number, by that factor. Each side is rounded half up.

    Returns:
        ``(new_width, new_height)``.
    """
    if width <= 0 or height <= 0:
        raise InvalidInputError(f"cannot rescale an image of size {width}x{height}")
    if isinstance(scale, tuple):
        long_edge, short_edge = max(scale), min(scale)
        factor = min(long_edge / max(height, width), short_edge / min(height, width))
    else:
        if scale <= 0:
            raise InvalidInputError(f"scale factor must be positive, got {scale}")
        factor = float(scale)
    return int(width * factor + 0.5), int(height * factor + 0.5)


def _check_image(image: np.ndarray, size: Sequence[int]) -> tuple[np.ndarray, int, int]:
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidInputError(f"expected a non-empty [H, W] or [H, W, C] array, got {getattr(image, 'shape', image)!r}")
    new_w, new_h = (int(s) for s in size)
    if new_w <= 0 or new_h <= 0:
        raise InvalidInputError(f"target size must be positive, got {tuple(size)}")
    return image, new_w, new_h


def _linear_taps(src: int, dst: int, clamp_ends: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's linear taps along one axis: first source index ``[dst]`` and the two 11-bit weights.

    ``clamp_ends`` (the horizontal axis): positions left of the first or right of the last source
    pixel take that pixel with weight 2048. Vertically OpenCV keeps the weights and clips the rows.
    """
    scale = 1.0 / (float(dst) / float(src))  # OpenCV's scale_x = 1 / inv_scale_x, in double
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(pos).astype(np.int64)
    frac = (pos - first.astype(np.float32)).astype(np.float32)
    if clamp_ends:
        left = first < 0
        right = first >= src - 1
        frac[left | right] = 0.0
        first[left] = 0
        first[right] = src - 1
    w0 = np.rint((np.float32(1.0) - frac) * np.float32(_COEF_SCALE)).astype(np.int64)
    w1 = np.rint(frac * np.float32(_COEF_SCALE)).astype(np.int64)
    return first, w0, w1


def _resize_linear_fixed(image: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """``cv2.resize(INTER_LINEAR)`` on uint8 ``[H, W, C]`` (fixed point, two passes)."""
    height, width, channels = image.shape
    x0, a0, a1 = _linear_taps(width, new_w, clamp_ends=True)
    y0, b0, b1 = _linear_taps(height, new_h, clamp_ends=False)
    x1 = np.minimum(x0 + 1, width - 1)
    rows0, rows1 = np.clip(y0, 0, height - 1), np.clip(y0 + 1, 0, height - 1)

    # horizontal pass on the source rows that are used: int32 values up to 255 * 2048
    used, inverse = np.unique(np.concatenate([rows0, rows1]), return_inverse=True)
    rows = image[used]  # [U, W, C] uint8
    horiz = rows[:, x0].astype(np.int32)
    horiz *= a0.astype(np.int32)[None, :, None]
    right = rows[:, x1].astype(np.int32)
    right *= a1.astype(np.int32)[None, :, None]
    horiz += right
    del right
    # vertical pass as OpenCV vectorises it: 4 + 16 bits truncated, the last 2 rounded (22 fraction bits)
    horiz >>= 4
    out = horiz[inverse[:new_h]]  # [new_h, new_w, C]
    out *= b0.astype(np.int32)[:, None, None]
    out >>= 16
    bottom = horiz[inverse[new_h:]]
    bottom *= b1.astype(np.int32)[:, None, None]
    bottom >>= 16
    out += bottom
    del bottom
    out += 2
    out >>= 2
    return np.clip(out, 0, 255).astype(np.uint8)


def _halve_area(image: np.ndarray) -> np.ndarray:
    """OpenCV's fast area average for an exact 2x reduction: ``(a + b + c + d + 2) >> 2``."""
    total = (
        image[0::2, 0::2].astype(np.uint16)
        + image[0::2, 1::2]
        + image[1::2, 0::2]
        + image[1::2, 1::2]
    )
    return ((total + 2) >> 2).astype(np.uint8)


def resize_bilinear(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)`` on a uint8 image, bit for bit.

    Args:
        image: uint8 ``[H, W, C]`` or ``[H, W]``.
        size: ``(new_w, new_h)`` (OpenCV's order).

    Returns:
        uint8 ``[new_h, new_w, C]`` (``[new_h, new_w]`` for a 2-D input).
    """
    image, new_w, new_h = _check_image(image, size)
    if image.dtype != np.uint8:
        raise InvalidInputError(f"resize_bilinear reproduces OpenCV on uint8 images, got {image.dtype}")
    flat = image.ndim == 2
    pixels = image[:, :, None] if flat else image
    height, width = pixels.shape[:2]
    if (new_w, new_h) == (width, height):
        out = pixels.copy()
    elif width == 2 * new_w and height == 2 * new_h:
        out = _halve_area(pixels)
    else:
        out = _resize_linear_fixed(pixels, new_w, new_h)
    return out[:, :, 0] if flat else out


def resize_nearest(label: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)``: source index ``floor(d / (dst / src))``.

    Args:
        label: ``[H, W]`` (or ``[H, W, C]``) of any dtype.
        size: ``(new_w, new_h)``.

    Returns:
        ``[new_h, new_w]`` of the same dtype.
    """
    label, new_w, new_h = _check_image(label, size)
    height, width = label.shape[:2]
    # OpenCV's step is 1 / (dst / src) in double, not src / dst: the two round differently
    rows = np.minimum(np.floor(np.arange(new_h) * (1.0 / (new_h / height))).astype(np.int64), height - 1)
    cols = np.minimum(np.floor(np.arange(new_w) * (1.0 / (new_w / width))).astype(np.int64), width - 1)
    return label[rows[:, None], cols[None, :]]


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(image - 255 * mean) / (255 * std)`` per channel as float32 ``[C, H, W]``.

    Args:
        image: uint8 ``[H, W, C]`` (RGB).
        mean, std: per channel, in [0, 1] units (``weights.schema`` convention).
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != len(mean) or len(mean) != len(std):
        raise InvalidInputError(f"expected [H, W, {len(mean)}] pixels, got {getattr(image, 'shape', image)!r}")
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    mean_t = torch.tensor([255.0 * m for m in mean], dtype=torch.float32)[:, None, None]
    std_t = torch.tensor([255.0 * s for s in std], dtype=torch.float32)[:, None, None]
    return (pixels - mean_t) / std_t


def pad_to(image: torch.Tensor, height: int, width: int, value: float = 0.0) -> torch.Tensor:
    """Pad ``[..., H, W]`` at the bottom and right to ``height x width`` with ``value`` (mmseg's
    ``SegDataPreProcessor`` pads this way, with 0 for images and 255 for labels)."""
    pad_h, pad_w = height - image.shape[-2], width - image.shape[-1]
    if pad_h < 0 or pad_w < 0:
        raise InvalidInputError(f"cannot pad {tuple(image.shape[-2:])} down to {(height, width)}")
    if pad_h == 0 and pad_w == 0:
        return image
    return torch.nn.functional.pad(image, (0, pad_w, 0, pad_h), value=value)
