"""seg_transforms reproduces mmcv/OpenCV's test-time resize bit for bit, and mmcv's keep-ratio size."""

import numpy as np
import pytest
import torch

from beitv2_zoo.errors import InvalidInputError
from beitv2_zoo.seg_transforms import normalize, pad_to, rescale_size, resize_bilinear, resize_nearest

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

PHOTOS = ("astronaut", "chelsea", "coffee")


def _photo(name: str) -> np.ndarray:
    return getattr(skimage_data, name)()


def _sizes(height: int, width: int) -> list[tuple[int, int]]:
    """(new_w, new_h): ADE's keep-ratio size, downscales, upscales, odd sizes, exact halves, one axis only."""
    return [
        rescale_size(width, height),
        (width // 2, height // 2),
        (width // 3, height // 3),
        (width // 4, height // 4),
        (width - 1, height - 3),
        (width + 37, height + 11),
        (2 * width, 2 * height),
        (3 * width + 1, 3 * height - 1),
        (width, height // 2),
        (width // 2, height),
        (13, 7),
        (1, 1),
        (width, height),
    ]


@pytest.mark.parametrize("name", PHOTOS)
def test_bilinear_matches_cv2_on_photos(name):
    image = _photo(name)
    height, width = image.shape[:2]
    for size in _sizes(height, width):
        expected = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        out = resize_bilinear(image, size)
        assert out.dtype == np.uint8 and out.shape == expected.shape, size
        assert np.array_equal(out, expected), (size, int(np.abs(out.astype(int) - expected).max()))


@pytest.mark.parametrize("channels", [None, 1, 3, 4])
def test_bilinear_matches_cv2_on_random_arrays(channels):
    rng = np.random.default_rng(channels or 0)
    for _ in range(150):
        h, w, new_h, new_w = (int(v) for v in rng.integers(1, 48, 4))
        shape = (h, w) if channels is None else (h, w, channels)
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        expected = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        if channels == 1:
            expected = expected[:, :, None]  # cv2 drops a single channel axis
        assert np.array_equal(resize_bilinear(image, (new_w, new_h)), expected), (shape, new_w, new_h)


def test_bilinear_matches_cv2_on_extreme_values():
    rng = np.random.default_rng(7)
    image = (rng.integers(0, 2, (61, 83, 3)) * 255).astype(np.uint8)  # only 0 and 255: the widest products
    for size in [(40, 30), (200, 150), (41, 31), (166, 122)]:
        assert np.array_equal(resize_bilinear(image, size), cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))


@pytest.mark.parametrize("name", PHOTOS)
def test_nearest_matches_cv2(name):
    label = _photo(name)[:, :, 0]
    height, width = label.shape
    for size in _sizes(height, width):
        assert np.array_equal(resize_nearest(label, size), cv2.resize(label, size, interpolation=cv2.INTER_NEAREST))
    rng = np.random.default_rng(3)
    for _ in range(100):
        h, w, new_h, new_w = (int(v) for v in rng.integers(1, 60, 4))
        label = rng.integers(0, 151, (h, w), dtype=np.uint8)
        expected = cv2.resize(label, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
        assert np.array_equal(resize_nearest(label, (new_w, new_h)), expected)


def test_rescale_size_matches_mmcv():
    mmcv = pytest.importorskip("mmcv")
    rng = np.random.default_rng(0)
    sizes = [(683, 512), (512, 683), (4000, 3000), (1, 1), (2048, 512), (511, 513), (3, 5000), (640, 480)]
    sizes += [tuple(int(v) for v in rng.integers(1, 5000, 2)) for _ in range(500)]
    for width, height in sizes:
        for scale in [(2048, 512), (2560, 640), (512, 2048), 0.5, 1.75, 2]:
            assert rescale_size(width, height, scale) == mmcv.rescale_size((width, height), scale), (width, height, scale)


def test_rescale_size_of_ade_pictures():
    assert rescale_size(683, 512) == (683, 512)
    assert rescale_size(4000, 3000) == (683, 512)
    assert rescale_size(256, 256) == (512, 512)


def test_normalize_is_channel_first_float32():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = normalize(image, mean, std)
    assert out.dtype == torch.float32 and out.shape == (3, 2, 3)
    expected = (image.astype(np.float32) - np.float32(255) * np.array(mean, np.float32)) / (
        np.float32(255) * np.array(std, np.float32)
    )
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_pad_to_and_bad_inputs():
    padded = pad_to(torch.ones(3, 2, 3), 4, 5, value=255)
    assert padded.shape == (3, 4, 5) and padded[:, 2:].eq(255).all() and padded[:, :2, :3].eq(1).all()
    with pytest.raises(InvalidInputError):
        pad_to(torch.ones(1, 5, 5), 4, 5)
    with pytest.raises(InvalidInputError):
        resize_bilinear(np.zeros((4, 4, 3), np.float32), (2, 2))
    with pytest.raises(InvalidInputError):
        resize_bilinear(np.zeros((0, 4, 3), np.uint8), (2, 2))
    with pytest.raises(InvalidInputError):
        resize_nearest(np.zeros((4, 4), np.uint8), (0, 2))
    with pytest.raises(InvalidInputError):
        rescale_size(0, 10)
