"""The segmentation training transform of the BEiT v2 ADE20K configs (mmseg 0.x's pipeline), and the
cheap evaluation transform used to monitor a run.

Training, in mmseg's order (``reference/segmentation_ade20k.md`` §5):

1. ``reduce_zero_label``: class 0 ('other') → 255 (ignored), class ``k`` → ``k - 1``;
2. random resize: a ratio ``r`` uniform in ``ratio_range``, the bound ``(int(L·r), int(S·r))`` of
   ``scale = (L, S)``, and mmcv's keep-ratio size for it (:func:`~beitv2_zoo.seg_transforms.rescale_size`);
   the image with OpenCV's bilinear resize, the label with nearest;
3. random crop of ``crop × crop`` (smaller sides stay whole): while the crop's most frequent class
   (255 not counted) covers ``cat_max_ratio`` or more of its counted pixels, or it has fewer than two
   classes, draw again, at most 10 times (then the 11th draw is kept);
4. horizontal flip with probability ``hflip``;
5. photometric distortion (:func:`photometric_distortion`);
6. normalise (ImageNet mean / std), pad at the bottom and right to the crop: image 0 (after
   normalisation, as mmseg's ``Pad`` and ``SegDataPreProcessor``), label 255.

Every random draw comes from one ``numpy.random.Generator`` seeded with the sample's seed
(``train.data.sample_seed(seed, epoch, index)``), so a sample is the same whatever the number of
workers or processes and wherever a resumed run starts. The draws follow mmseg's distributions
(``randint`` bounds exclusive, so the hue shift is in ``[-18, 17]``), not its random stream.

OpenCV's 8-bit HSV conversions are written out in numpy (:func:`rgb_to_hsv`, :func:`hsv_to_rgb`):
the forward one with OpenCV's 12-bit fixed-point tables (equal to ``cv2`` on all 2^24 colours), the
inverse in float32 as OpenCV's vectorised and scalar loops do (with the AVX2 build's 32-pixel
blocks: equal on all 11.8M HSV triples in the vectorised part of a row; the scalar tail of a row
differs by 1 on 429 of them).
"""

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from ..seg_transforms import (
    normalize,
    pad_to,
    rescale_size,
    resize_bilinear,
    resize_nearest,
)

IGNORE = 255
_HSV_SHIFT = 12


def reduce_zero_label(label: np.ndarray) -> np.ndarray:
    """ADE20K's label shift: 0 → 255, ``k`` → ``k - 1`` (255 stays 255). uint8 ``[H, W]`` → uint8 ``[H, W]``."""
    shifted = label.astype(np.int16) - 1
    shifted[label == 0] = IGNORE
    shifted[label == IGNORE] = IGNORE
    return shifted.astype(np.uint8)


# ----------------------------------------------------------------------------- HSV, as OpenCV's uint8 code
def _division_tables() -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's ``sdiv_table[v] = round(255·2^12 / v)`` and ``hdiv_table180[d] = round(180·2^12 / (6 d))`` (0 at 0)."""
    index = np.arange(256, dtype=np.float64)
    with np.errstate(divide="ignore"):
        sdiv = np.where(index > 0, np.rint((255 << _HSV_SHIFT) / index), 0)
        hdiv = np.where(index > 0, np.rint((180 << _HSV_SHIFT) / (6.0 * index)), 0)
    return sdiv.astype(np.int64), hdiv.astype(np.int64)


_SDIV, _HDIV = _division_tables()


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` → uint8 HSV ``[H, W, 3]``, H in 0..179 (OpenCV's ``COLOR_RGB2HSV``)."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    v = np.maximum(np.maximum(r, g), b)
    diff = v - np.minimum(np.minimum(r, g), b)
    s = (diff * _SDIV[v] + (1 << (_HSV_SHIFT - 1))) >> _HSV_SHIFT
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * _HDIV[diff] + (1 << (_HSV_SHIFT - 1))) >> _HSV_SHIFT
    h = np.where(h < 0, h + 180, h)
    return np.stack([h, s, v], axis=-1).astype(np.uint8)


# sector → which of (v, p, q, t) is (r, g, b); OpenCV's table lists (b, g, r)
_SECTORS = np.array([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])


def _hsv_to_rgb_float(hsv: np.ndarray, vectorised: bool) -> np.ndarray:
    """OpenCV's float32 HSV → RGB of uint8 input, rounded to uint8.

    ``vectorised``: its SIMD loop, whose ``1 - s·h`` terms are fused multiply-adds (one rounding;
    emulated exactly in float64, the product of two float32 being exact there) and whose float →
    uint8 conversion truncates. Otherwise its scalar code: separate roundings, round to nearest even.
    """
    f32 = np.float32
    h = hsv[..., 0].astype(f32) * f32(6.0 / 180.0)
    s = hsv[..., 1].astype(f32) * f32(1.0 / 255.0)
    v = hsv[..., 2].astype(f32) * f32(1.0 / 255.0)
    sector = np.clip(np.floor(h), 0, 5).astype(np.int64)  # H ≤ 179: h < 6
    frac = (h - sector).astype(f32)
    one = f32(1.0)
    if vectorised:
        near = (1.0 - s.astype(np.float64) * frac).astype(f32)
        far = (1.0 - s.astype(np.float64) * (one - frac)).astype(f32)
    else:
        near, far = one - s * frac, one - s * (one - frac)
    tab = np.stack([v, v * (one - s), v * near, v * far], axis=-1)
    rgb = np.take_along_axis(tab, _SECTORS[sector], axis=-1) * f32(255.0)
    rounded = np.floor(rgb) if vectorised else np.rint(rgb)
    return np.clip(rounded, 0, 255).astype(np.uint8)


def hsv_to_rgb(hsv: np.ndarray, simd_block: int = 32) -> np.ndarray:
    """uint8 HSV ``[H, W, 3]`` (H in 0..179) → uint8 RGB, as OpenCV's ``COLOR_HSV2RGB``.

    OpenCV converts each row in blocks of ``simd_block`` pixels with its vectorised code and the
    last ``W mod simd_block`` pixels with its scalar code, which round differently (by at most 1);
    32 is the block of its AVX2 build (8 float lanes × 4). Measured against ``cv2`` 5.0 on all 11.8M
    HSV triples: the vectorised part equal everywhere, the scalar part off by 1 on 429 of them.
    ``simd_block=0``: the scalar code everywhere.
    """
    width = hsv.shape[1]
    bulk = width - width % simd_block if simd_block > 0 else 0
    if bulk == width:
        return _hsv_to_rgb_float(hsv, vectorised=True)
    out = _hsv_to_rgb_float(hsv, vectorised=False)
    if bulk:
        out[:, :bulk] = _hsv_to_rgb_float(hsv[:, :bulk], vectorised=True)
    return out


# ----------------------------------------------------------------------------- photometric distortion
def _convert(pixels: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """``uint8(clip(float32(x)·alpha + beta, 0, 255))``: truncation, as mmseg's ``convert``."""
    return np.clip(pixels.astype(np.float32) * np.float32(alpha) + np.float32(beta), 0, 255).astype(np.uint8)


def photometric_distortion(rgb: np.ndarray, rng: np.random.Generator, brightness_delta: float = 32,
                           contrast_range: tuple[float, float] = (0.5, 1.5),
                           saturation_range: tuple[float, float] = (0.5, 1.5), hue_delta: int = 18) -> np.ndarray:
    """mmseg's ``PhotoMetricDistortion`` on uint8 RGB ``[H, W, 3]``; each step applies with probability 0.5.

    Order: brightness (``+ U(-δ, δ)``); a coin picks whether contrast (``× U(0.5, 1.5)``) comes
    first or last; saturation (HSV S channel ``× U(0.5, 1.5)``); hue (``H + randint(-18, 18) mod 180``).
    """
    if rng.integers(2):
        rgb = _convert(rgb, beta=rng.uniform(-brightness_delta, brightness_delta))
    contrast_last = not rng.integers(2)  # mmseg's mode 0: contrast after hue
    if not contrast_last and rng.integers(2):
        rgb = _convert(rgb, alpha=rng.uniform(*contrast_range))
    if rng.integers(2):
        hsv = rgb_to_hsv(rgb)
        hsv[..., 1] = _convert(hsv[..., 1], alpha=rng.uniform(*saturation_range))
        rgb = hsv_to_rgb(hsv)
    if rng.integers(2):
        hsv = rgb_to_hsv(rgb)
        hsv[..., 0] = (hsv[..., 0].astype(np.int64) + int(rng.integers(-hue_delta, hue_delta))) % 180
        rgb = hsv_to_rgb(hsv)
    if contrast_last and rng.integers(2):
        rgb = _convert(rgb, alpha=rng.uniform(*contrast_range))
    return rgb


# ----------------------------------------------------------------------------- geometry
def random_rescale(pixels: np.ndarray, label: np.ndarray, scale: tuple[int, int], ratio_range: tuple[float, float],
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """mmseg 0.x ``Resize(img_scale=scale, ratio_range=…)`` with ``keep_ratio``: image bilinear, label nearest."""
    low, high = ratio_range
    ratio = rng.random() * (high - low) + low
    bound = (int(scale[0] * ratio), int(scale[1] * ratio))
    size = rescale_size(pixels.shape[1], pixels.shape[0], bound)
    if size == (pixels.shape[1], pixels.shape[0]):
        return pixels, label
    return resize_bilinear(pixels, size), resize_nearest(label, size)


def crop_box(label: np.ndarray, crop: int, cat_max_ratio: float, rng: np.random.Generator,
             ignore_index: int = IGNORE, tries: int = 10) -> tuple[int, int]:
    """Top-left corner ``(y, x)`` of mmseg's ``RandomCrop(crop, cat_max_ratio)`` on a label ``[H, W]``."""
    height, width = label.shape
    margin_h, margin_w = max(height - crop, 0), max(width - crop, 0)

    def draw() -> tuple[int, int]:
        return int(rng.integers(0, margin_h + 1)), int(rng.integers(0, margin_w + 1))

    y, x = draw()
    if cat_max_ratio < 1.0:
        for _ in range(tries):
            counts = np.bincount(label[y:y + crop, x:x + crop].ravel(), minlength=256)
            counts = np.delete(counts, ignore_index)
            counts = counts[counts > 0]
            if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
                break
            y, x = draw()
    return y, x


class SegmentationTrainTransform:
    """``(RGB image, uint8 label [H, W], seed) → {'image': float32 [3, crop, crop], 'label': int64 [crop, crop]}``.

    See the module docstring for the steps; ``mean`` / ``std`` in [0, 1] units.
    """

    def __init__(self, crop_size: int, scale: tuple[int, int] = (2048, 512), ratio_range: tuple[float, float] = (0.5, 2.0),
                 cat_max_ratio: float = 0.75, hflip: float = 0.5, photometric: bool = True,
                 reduce_zero_label: bool = True, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225), ignore_index: int = IGNORE) -> None:
        self.crop_size, self.scale, self.ratio_range = crop_size, tuple(scale), tuple(ratio_range)
        self.cat_max_ratio, self.hflip, self.photometric = cat_max_ratio, hflip, photometric
        self.reduce_zero_label, self.mean, self.std, self.ignore_index = reduce_zero_label, mean, std, ignore_index

    def __call__(self, image: Image.Image, label: np.ndarray, seed: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(seed)
        pixels = np.asarray(image.convert("RGB"))
        if self.reduce_zero_label:
            label = reduce_zero_label(label)
        pixels, label = random_rescale(pixels, label, self.scale, self.ratio_range, rng)
        y, x = crop_box(label, self.crop_size, self.cat_max_ratio, rng, self.ignore_index)
        pixels = pixels[y:y + self.crop_size, x:x + self.crop_size]
        label = label[y:y + self.crop_size, x:x + self.crop_size]
        if rng.random() < self.hflip:
            pixels, label = pixels[:, ::-1], label[:, ::-1]
        if self.photometric:
            pixels = photometric_distortion(np.ascontiguousarray(pixels), rng)
        return _pack(pixels, label, self.crop_size, self.mean, self.std, self.ignore_index)


class SegmentationEvalTransform:
    """The monitoring evaluation's input: the image resized to fit in ``crop × crop`` (bilinear, aspect
    kept), its label resized to the same size (nearest), both padded to the crop (0 / ``ignore_index``).

    ``(RGB image, uint8 label, seed) → {'image': [3, crop, crop], 'label': int64 [crop, crop]}``; no randomness.
    """

    def __init__(self, crop_size: int, reduce_zero_label: bool = True, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225), ignore_index: int = IGNORE) -> None:
        self.crop_size, self.reduce_zero_label = crop_size, reduce_zero_label
        self.mean, self.std, self.ignore_index = mean, std, ignore_index

    def __call__(self, image: Image.Image, label: np.ndarray, seed: int) -> dict[str, torch.Tensor]:
        pixels = np.asarray(image.convert("RGB"))
        if self.reduce_zero_label:
            label = reduce_zero_label(label)
        size = rescale_size(pixels.shape[1], pixels.shape[0], (self.crop_size, self.crop_size))
        if size != (pixels.shape[1], pixels.shape[0]):
            pixels, label = resize_bilinear(pixels, size), resize_nearest(label, size)
        return _pack(pixels, label, self.crop_size, self.mean, self.std, self.ignore_index)


def _pack(pixels: np.ndarray, label: np.ndarray, crop: int, mean: Sequence[float], std: Sequence[float],
          ignore_index: int) -> dict[str, torch.Tensor]:
    pixels = np.require(pixels, requirements=["C", "W"])  # a decoded image's view is read-only
    image = pad_to(normalize(pixels, mean, std), crop, crop, 0.0)
    target = pad_to(torch.from_numpy(label.astype(np.int64)), crop, crop, ignore_index)
    return {"image": image, "label": target}
