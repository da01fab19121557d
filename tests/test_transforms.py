"""Image decoding and the evaluation transform (``beitv2_zoo.transforms``).

Every reference pipeline below is built independently of the package (timm,
torchvision, or a re-implementation of mmpretrain's rule written from its spec), and
every expected pixel value is computed from the input, never copied from a run.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

import beitv2_zoo
from beitv2_zoo.errors import BeitZooError, ImageLoadError
from beitv2_zoo.transforms import EvalTransform, create_transform, load_image, pil_to_rgb, to_pil_rgb
from beitv2_zoo.weights.schema import Preprocessing
from beitv2_zoo.weights import HALF_EVAL, IMAGENET_EVAL, TIMM_BASE_EVAL

skdata = pytest.importorskip("skimage.data")

BICUBIC = Image.Resampling.BICUBIC
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TOL = 1e-5

# (width, height) in PIL order. Chosen so that truncating vs rounding the new long edge,
# and flooring vs rounding the crop offset, give different pixels:
#   256*500/333 = 384.38 (frac < .5)    256*400/333 = 307.51 (frac > .5: int 307, round 308)
#   256*756/500 = 387.07 -> 387, crop offset (387-224)/2 = 81.5 -> round 82 (floor 81)
#   248*756/500 = 374.98 (timm scale: int 374, round 375)   248*400/333 = 297.90
NON_SQUARE_SIZES = [(333, 500), (500, 333), (333, 400), (400, 333), (500, 756), (756, 500)]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    """Real RGB photos from scikit-image (bundled with the package, no download)."""
    return {"chelsea": skdata.chelsea(), "astronaut": skdata.astronaut(), "coffee": skdata.coffee()}


def _photo_at(photos: dict[str, np.ndarray], size: tuple[int, int], name: str = "coffee") -> Image.Image:
    """A real photo resampled to ``size`` (width, height)."""
    return Image.fromarray(photos[name]).resize(size, Image.Resampling.LANCZOS)


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.double() - b.double()).abs().max().item()


def _assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    assert torch.equal(a, b), f"max abs diff {_max_abs(a, b)}"


def _rgb(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


def _jpeg_bytes(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95, **kwargs)
    return buffer.getvalue()


def _torchvision_eval(resize: int, crop: int, mean, std):
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(crop),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


def _mmpretrain_reference(image: Image.Image) -> torch.Tensor:
    """mmpretrain's BEiT v2 eval, re-implemented from its spec (not imported).

    ResizeEdge(256, edge='short', backend='pillow', interpolation='bicubic'):
    new long edge ``int(256 * long / short)``; CenterCrop(224): offsets
    ``int(round((side - 224) / 2.))``; then ``(x - mean) / std`` in float32 0..255 units.
    """
    width, height = image.size
    if width < height:
        new_w, new_h = 256, int(256 * height / width)
    else:
        new_w, new_h = int(256 * width / height), 256
    resized = np.asarray(image.resize((new_w, new_h), BICUBIC)).astype(np.float32)
    top = int(round((new_h - 224) / 2.0))
    left = int(round((new_w - 224) / 2.0))
    crop = resized[top : top + 224, left : left + 224]
    mean = np.array([123.675, 116.28, 103.53], dtype=np.float32)
    std = np.array([58.395, 57.12, 57.375], dtype=np.float32)
    return torch.from_numpy(((crop - mean) / std).transpose(2, 0, 1).copy())


# --------------------------------------------------------------------- 1. real photos


@pytest.mark.parametrize("name", ["chelsea", "astronaut", "coffee"])
def test_load_png_photo_is_lossless_rgb(tmp_path, photos, name):
    array = photos[name]
    path = tmp_path / f"{name}.png"
    Image.fromarray(array).save(path)
    image = load_image(path)
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    assert image.size == (array.shape[1], array.shape[0])
    np.testing.assert_array_equal(np.asarray(image), array)
    # a str path works too
    np.testing.assert_array_equal(np.asarray(load_image(str(path))), array)


@pytest.mark.parametrize("name", ["chelsea", "astronaut", "coffee"])
def test_load_jpeg_photo_is_rgb_of_right_size(tmp_path, photos, name):
    array = photos[name]
    path = tmp_path / f"{name}.jpg"
    path.write_bytes(_jpeg_bytes(array))
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.size == (array.shape[1], array.shape[0])
    decoded = np.asarray(image)
    # same pixels as Pillow's own decode of the file
    with Image.open(path) as reference:
        np.testing.assert_array_equal(decoded, np.asarray(reference.convert("RGB")))
    # and close to the original photo (JPEG q95 is lossy, but not transposed / channel-swapped)
    assert np.abs(decoded.astype(np.int16) - array.astype(np.int16)).mean() < 3.0
    swapped = decoded[..., ::-1].astype(np.int16)
    assert np.abs(swapped - array.astype(np.int16)).mean() > 3.0  # the check above can tell BGR from RGB


@pytest.mark.parametrize("name", ["chelsea", "astronaut", "coffee"])
@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_eval_transform_of_photo_file(tmp_path, photos, name, ext):
    path = tmp_path / f"{name}.{ext}"
    Image.fromarray(photos[name]).save(path, **({"quality": 95} if ext == "jpg" else {}))
    out = EvalTransform(IMAGENET_EVAL)(path)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == torch.float32
    assert out.shape == (3, 224, 224)
    assert torch.isfinite(out).all()
    # every value is a normalised 0..255 pixel
    for c in range(3):
        low = (0.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        high = (1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert out[c].min() >= low - TOL and out[c].max() <= high + TOL
    assert out.std() > 0.1  # a photo, not a constant image
    # the path, the decoded image and the decoded image's pixels all agree
    _assert_same(out, EvalTransform(IMAGENET_EVAL)(load_image(path)))


# ------------------------------------------------------- 2. equivalence with references


def test_preprocessing_constants_match_the_published_pipelines():
    assert (IMAGENET_EVAL.resize_size, IMAGENET_EVAL.crop_size, IMAGENET_EVAL.interpolation) == (256, 224, "bicubic")
    assert IMAGENET_EVAL.mean == pytest.approx(IMAGENET_MEAN) and IMAGENET_EVAL.std == pytest.approx(IMAGENET_STD)
    # mmpretrain writes the same numbers in 0..255 units
    assert [255 * m for m in IMAGENET_EVAL.mean] == pytest.approx([123.675, 116.28, 103.53])
    assert [255 * s for s in IMAGENET_EVAL.std] == pytest.approx([58.395, 57.12, 57.375])
    assert HALF_EVAL.mean == (0.5, 0.5, 0.5) and HALF_EVAL.std == (0.5, 0.5, 0.5)
    # timm's crop_pct=0.9 at 224 resizes to floor(224 / 0.9) = 248
    assert TIMM_BASE_EVAL.crop_size == 224 and TIMM_BASE_EVAL.resize_size == int(224 / 0.9)
    assert TIMM_BASE_EVAL.interpolation == "bicubic"


def test_size_choices_exercise_rounding():
    """Guard: the sizes used below really separate truncation from rounding."""
    for scale in (256, 248):
        fracs = [scale * max(w, h) / min(w, h) % 1 for w, h in NON_SQUARE_SIZES]
        assert any(f > 0.5 for f in fracs) and any(0 < f < 0.5 for f in fracs), (scale, fracs)
    # and at least one crop offset that is exactly x.5 with x odd (round != floor)
    longs = [int(256 * max(w, h) / min(w, h)) for w, h in NON_SQUARE_SIZES]
    assert any((L - 224) % 2 == 1 and round((L - 224) / 2) != (L - 224) // 2 for L in longs)


@pytest.fixture(scope="module")
def reference_images(photos) -> list[tuple[str, Image.Image]]:
    """Square, landscape and portrait real photos, including the rounding-sensitive sizes."""
    images = [
        ("astronaut-512x512", Image.fromarray(photos["astronaut"])),
        ("chelsea-451x300", Image.fromarray(photos["chelsea"])),
        ("coffee-600x400", Image.fromarray(photos["coffee"])),
    ]
    images += [(f"coffee-{w}x{h}", _photo_at(photos, (w, h))) for w, h in NON_SQUARE_SIZES]
    return images


@pytest.fixture(scope="module")
def few_images(reference_images) -> list[tuple[str, Image.Image]]:
    """One square, one landscape, one portrait (one with a .5 crop offset)."""
    wanted = {"astronaut-512x512", "chelsea-451x300", "coffee-500x756"}
    return [(label, image) for label, image in reference_images if label in wanted]


def test_matches_timm_eval_transform(reference_images):
    timm_data = pytest.importorskip("timm.data")
    reference = timm_data.create_transform(
        input_size=224, interpolation="bicubic", crop_pct=0.9, mean=IMAGENET_MEAN, std=IMAGENET_STD
    )
    ours = EvalTransform(TIMM_BASE_EVAL)
    shapes = set()
    for label, image in reference_images:
        expected = reference(image)
        got = ours(image)
        assert got.shape == (3, 224, 224) and got.dtype == torch.float32
        assert _max_abs(got, expected) <= TOL, label
        shapes.add("portrait" if image.height > image.width else "landscape" if image.width > image.height else "square")
    assert shapes == {"portrait", "landscape", "square"}


def test_matches_official_torchvision_eval(reference_images):
    reference = _torchvision_eval(256, 224, IMAGENET_MEAN, IMAGENET_STD)
    ours = EvalTransform(IMAGENET_EVAL)
    for label, image in reference_images:
        assert _max_abs(ours(image), reference(image)) <= TOL, label


def test_matches_mmpretrain_rule(reference_images):
    ours = EvalTransform(IMAGENET_EVAL)
    for label, image in reference_images:
        assert _max_abs(ours(image), _mmpretrain_reference(image)) <= TOL, label


def test_mmpretrain_reference_is_sensitive_to_long_edge_rounding(photos):
    """Guard that the equality above can fail: rounding the long edge changes the output."""
    image = _photo_at(photos, (333, 400))  # 256*400/333 = 307.5 -> int 307, round 308
    assert round(256 * 400 / 333) != int(256 * 400 / 333)
    rounded = image.resize((256, round(256 * 400 / 333)), BICUBIC)
    top = int(round((rounded.height - 224) / 2.0))
    crop = np.asarray(rounded.crop((16, top, 240, top + 224))).astype(np.float32)
    wrong = torch.from_numpy(((crop / 255 - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)).transpose(2, 0, 1))
    assert _max_abs(_mmpretrain_reference(image), wrong) > 1e-2


def test_half_eval_is_x_minus_127_5_over_127_5(few_images):
    from torchvision import transforms as T

    geometry = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.PILToTensor()])
    ours = EvalTransform(HALF_EVAL)
    for label, image in few_images:
        pixels = geometry(image).float()
        expected = (pixels - 127.5) / 127.5
        got = ours(image)
        assert _max_abs(got, expected) <= TOL, label
        assert got.min() >= -1 - TOL and got.max() <= 1 + TOL


def test_eval_transform_repr_names_its_settings():
    text = repr(EvalTransform(IMAGENET_EVAL))
    assert "256" in text and "224" in text and "bicubic" in text


# --------------------------------------------------------------- 3. input kinds


def test_every_input_kind_gives_the_same_tensor(tmp_path, photos):
    array = np.ascontiguousarray(photos["chelsea"])  # [H, W, 3] uint8
    path = tmp_path / "chelsea.png"
    Image.fromarray(array).save(path)
    transform = EvalTransform(IMAGENET_EVAL)
    expected = transform(path)

    chw_uint8 = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    chw_float = chw_uint8.float() / 255.0
    assert torch.equal((chw_float * 255).round().to(torch.uint8), chw_uint8)  # exact round trip
    rgba = np.concatenate([array, np.random.default_rng(0).integers(0, 256, array.shape[:2] + (1,), dtype=np.uint8)], 2)

    kinds = {
        "str path": str(path),
        "Path": path,
        "PIL": Image.fromarray(array),
        "HWC uint8 array": array,
        "non-contiguous HWC array": np.asfortranarray(array),
        "CHW uint8 tensor": chw_uint8,
        "CHW float tensor": chw_float,
        "CHW float64 tensor": chw_float.double(),
        "RGBA array": rgba,
        "uint16 array": array.astype(np.uint16) << 8 | 0x7F,
    }
    for kind, item in kinds.items():
        _assert_same(transform(item), expected)
        np.testing.assert_array_equal(_rgb(to_pil_rgb(item)), array, err_msg=kind)


def test_grayscale_input_kinds_agree(tmp_path, photos):
    gray = np.asarray(Image.fromarray(photos["coffee"]).convert("L"))
    replicated = np.repeat(gray[:, :, None], 3, axis=2)
    transform = EvalTransform(IMAGENET_EVAL)
    expected = transform(replicated)
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    kinds = {
        "2-D array": gray,
        "[H, W, 1] array": gray[:, :, None],
        "L image": Image.fromarray(gray),
        "L png": path,
        "[1, H, W] uint8 tensor": torch.from_numpy(gray.copy())[None],
        "[1, H, W] float tensor": torch.from_numpy(gray.copy())[None].float() / 255,
    }
    for kind, item in kinds.items():
        np.testing.assert_array_equal(_rgb(to_pil_rgb(item)), replicated, err_msg=kind)
        _assert_same(transform(item), expected)
    # gray in, equal channels before normalisation
    unnormalised = expected * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    assert _max_abs(unnormalised[0], unnormalised[1]) < 1e-5 and _max_abs(unnormalised[0], unnormalised[2]) < 1e-5


def test_float_tensor_is_clamped_and_rounded():
    values = torch.tensor([-0.5, 0.0, 0.3 / 255, 0.6 / 255, 100.4 / 255, 100.6 / 255, 1.0, 7.0])
    tensor = values.view(1, 1, -1).expand(3, 1, -1)
    got = np.asarray(to_pil_rgb(tensor))[0, :, 0]
    np.testing.assert_array_equal(got, [0, 0, 0, 1, 100, 101, 255, 255])


def test_tensor_on_another_device_or_with_grad_is_accepted(photos):
    array = photos["astronaut"][:40, :50]
    tensor = (torch.from_numpy(array).permute(2, 0, 1).float() / 255).requires_grad_(True)
    np.testing.assert_array_equal(_rgb(to_pil_rgb(tensor)), array)


def test_input_is_not_modified(photos):
    array = photos["astronaut"].copy()
    rgba = np.concatenate([array, np.zeros(array.shape[:2] + (1,), np.uint8)], 2)
    before = rgba.copy()
    EvalTransform(IMAGENET_EVAL)(rgba)
    np.testing.assert_array_equal(rgba, before)


# ----------------------------------------------------------------- 4. odd PIL modes


def _save_load(tmp_path: Path, image: Image.Image, name: str, **kwargs) -> tuple[str, Image.Image]:
    path = tmp_path / name
    image.save(path, **kwargs)
    with Image.open(path) as reopened:
        mode = reopened.mode
    return mode, load_image(path)


def test_mode_L_replicates_gray(tmp_path, photos):
    gray = np.asarray(Image.fromarray(photos["chelsea"]).convert("L"))
    image = Image.fromarray(gray)
    assert image.mode == "L"
    expected = np.stack([gray] * 3, axis=2)
    np.testing.assert_array_equal(_rgb(pil_to_rgb(image)), expected)
    mode, loaded = _save_load(tmp_path, image, "gray.png")
    assert mode == "L"
    np.testing.assert_array_equal(_rgb(loaded), expected)


def test_mode_RGBA_drops_alpha_without_compositing(tmp_path, photos):
    rgb = photos["astronaut"][:64, :64]
    alpha = np.zeros(rgb.shape[:2], np.uint8)
    alpha[:, 32:] = 255
    alpha[::2, :16] = 77
    image = Image.fromarray(np.dstack([rgb, alpha]))
    assert image.mode == "RGBA"
    np.testing.assert_array_equal(_rgb(pil_to_rgb(image)), rgb)  # fully transparent pixels keep their RGB
    mode, loaded = _save_load(tmp_path, image, "rgba.png")
    assert mode == "RGBA"
    np.testing.assert_array_equal(_rgb(loaded), rgb)


def _palette_image() -> tuple[Image.Image, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    indices = rng.integers(0, 16, (24, 20), dtype=np.uint8)
    image = Image.frombytes("P", (20, 24), indices.tobytes())
    image.putpalette(palette.flatten().tolist())
    return image, palette, indices


def test_mode_P_without_transparency(tmp_path):
    image, palette, indices = _palette_image()
    assert image.mode == "P" and "transparency" not in image.info
    np.testing.assert_array_equal(_rgb(pil_to_rgb(image)), palette[indices])
    mode, loaded = _save_load(tmp_path, image, "palette.png")
    assert mode == "P"
    np.testing.assert_array_equal(_rgb(loaded), palette[indices])


@pytest.mark.parametrize("transparency", [3, bytes([0, 255, 128, 0, 10] + [255] * 11)], ids=["index", "per-entry"])
def test_mode_P_with_transparency_keeps_palette_rgb(tmp_path, transparency):
    image, palette, indices = _palette_image()
    image.info["transparency"] = transparency
    expected = palette[indices]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "should be converted to RGBA" warning: handled deliberately
        np.testing.assert_array_equal(_rgb(pil_to_rgb(image)), expected)
    mode, loaded = _save_load(tmp_path, image, "palette_t.png", transparency=transparency)
    assert mode == "P"
    with Image.open(tmp_path / "palette_t.png") as reopened:
        assert "transparency" in reopened.info
    np.testing.assert_array_equal(_rgb(loaded), expected)


def test_mode_CMYK_jpeg(tmp_path):
    # four flat 32x32 blocks: (C, M, Y, K)
    blocks = [(200, 50, 0, 0), (0, 0, 0, 0), (0, 255, 128, 0), (30, 60, 90, 255)]
    cmyk = np.zeros((64, 64, 4), np.uint8)
    for i, value in enumerate(blocks):
        r, c = divmod(i, 2)
        cmyk[r * 32 : (r + 1) * 32, c * 32 : (c + 1) * 32] = value
    image = Image.frombytes("CMYK", (64, 64), cmyk.tobytes())
    path = tmp_path / "cmyk.jpg"
    image.save(path, quality=100)
    with Image.open(path) as reopened:
        assert reopened.mode == "CMYK"
        pillow_rgb = np.asarray(reopened.convert("RGB"))
    loaded = _rgb(load_image(path))
    assert loaded.shape == (64, 64, 3)
    np.testing.assert_array_equal(loaded, pillow_rgb)
    for i, (c, m, y, k) in enumerate(blocks):
        r, col = divmod(i, 2)
        centre = loaded[r * 32 + 16, col * 32 + 16].astype(int)
        expected = [0, 0, 0] if k == 255 else [255 - c, 255 - m, 255 - y]
        assert np.abs(centre - expected).max() <= 4, (blocks[i], centre, expected)


def test_mode_I16_png_keeps_top_8_bits(tmp_path):
    values = np.array([[0xABCD, 0x00FF, 0xFF00, 0xFFFF], [0x0100, 0x0000, 0x7F80, 0x1234]], dtype=np.uint16)
    image = Image.frombytes("I;16", (4, 2), values.astype("<u2").tobytes())
    expected = np.repeat((values >> 8).astype(np.uint8)[:, :, None], 3, axis=2)
    assert expected[0, 0, 0] == 0xAB
    np.testing.assert_array_equal(_rgb(pil_to_rgb(image)), expected)
    mode, loaded = _save_load(tmp_path, image, "deep.png")
    assert mode.startswith("I")  # 16-bit grayscale PNG
    np.testing.assert_array_equal(_rgb(loaded), expected)
    # a big-endian 16-bit buffer means the same numbers
    big = Image.frombytes("I;16B", (4, 2), values.astype(">u2").tobytes())
    np.testing.assert_array_equal(_rgb(pil_to_rgb(big)), expected)
    # and so does a uint16 numpy array
    np.testing.assert_array_equal(_rgb(to_pil_rgb(values)), expected)


def test_mode_I_32bit_clips_to_16bit_range():
    values = np.array([[-5, 0, 0x00FF, 0xABCD, 0xFFFF, 70000]], dtype=np.int32)
    image = Image.frombytes("I", (6, 1), values.tobytes())
    assert image.mode == "I"
    expected = (np.clip(values, 0, 0xFFFF) >> 8).astype(np.uint8)
    np.testing.assert_array_equal(_rgb(pil_to_rgb(image))[..., 0], expected)
    np.testing.assert_array_equal(np.asarray(pil_to_rgb(image))[0, :, 0], [0, 0, 0, 0xAB, 0xFF, 0xFF])


def test_mode_LA_drops_alpha(tmp_path, photos):
    gray = np.asarray(Image.fromarray(photos["coffee"][:40, :48]).convert("L"))
    alpha = np.zeros_like(gray)
    alpha[:20] = 255
    image = Image.merge("LA", (Image.fromarray(gray), Image.fromarray(alpha)))
    assert image.mode == "LA"
    expected = np.stack([gray] * 3, axis=2)
    np.testing.assert_array_equal(_rgb(pil_to_rgb(image)), expected)
    mode, loaded = _save_load(tmp_path, image, "la.png")
    assert mode == "LA"
    np.testing.assert_array_equal(_rgb(loaded), expected)


def test_mode_1_bilevel(tmp_path):
    bits = np.random.default_rng(2).integers(0, 2, (17, 23)).astype(bool)
    image = Image.fromarray(bits)
    assert image.mode == "1"
    expected = np.repeat(np.where(bits, 255, 0).astype(np.uint8)[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(_rgb(pil_to_rgb(image)), expected)
    mode, loaded = _save_load(tmp_path, image, "bits.png")
    assert mode == "1"
    np.testing.assert_array_equal(_rgb(loaded), expected)


def test_mode_F_clips_and_rounds():
    values = np.array([[-10.0, 0.4, 0.6, 100.4, 100.6, 254.6, 300.0, 1e9]], dtype=np.float32)
    image = Image.frombytes("F", (8, 1), values.tobytes())
    assert image.mode == "F"
    got = _rgb(pil_to_rgb(image))
    np.testing.assert_array_equal(got[0, :, 0], [0, 0, 1, 100, 101, 255, 255, 255])
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 0] == got[..., 2]).all()


@pytest.mark.parametrize("mode", ["YCbCr", "HSV", "RGBX", "PA"])
def test_other_modes_use_pillows_conversion(photos, mode):
    source = Image.fromarray(photos["astronaut"][:32, :32])
    if mode == "PA":  # palette + alpha: the palette colours, alpha dropped
        palette_image = source.convert("P")
        image = palette_image.convert("PA")
        expected = palette_image.convert("RGB")
    else:
        image = source.convert(mode)
        expected = image.convert("RGB")
    assert image.mode == mode
    np.testing.assert_array_equal(_rgb(pil_to_rgb(image)), np.asarray(expected))


def test_rgb_image_is_returned_usable_after_file_close(tmp_path, photos):
    path = tmp_path / "c.jpg"
    path.write_bytes(_jpeg_bytes(photos["chelsea"]))
    image = load_image(path)
    # usable after load_image has closed its file
    assert image.resize((10, 10)).size == (10, 10)
    assert np.asarray(image).shape == (300, 451, 3)


# ------------------------------------------------------------------- 5. bad input


def _missing(tmp_path, photos):
    return tmp_path / "does_not_exist.jpg"


def _directory(tmp_path, photos):
    path = tmp_path / "a_folder.jpg"
    path.mkdir()
    return path


def _text(tmp_path, photos):
    path = tmp_path / "notes_not_an_image.jpg"
    path.write_text("this is not a JPEG, it is a text file\n" * 20)
    return path


def _truncated(tmp_path, photos):
    data = _jpeg_bytes(photos["astronaut"])
    path = tmp_path / "half_written.jpg"
    path.write_bytes(data[: len(data) // 2])
    return path


def _empty(tmp_path, photos):
    path = tmp_path / "zero_bytes.png"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("make", [_missing, _directory, _text, _truncated, _empty], ids=lambda f: f.__name__[1:])
@pytest.mark.parametrize("entry", ["load_image", "to_pil_rgb", "EvalTransform"])
def test_bad_files_raise_image_load_error(tmp_path, photos, monkeypatch, make, entry):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    path = make(tmp_path, photos)
    call = {"load_image": load_image, "to_pil_rgb": to_pil_rgb, "EvalTransform": EvalTransform(IMAGENET_EVAL)}[entry]
    with pytest.raises(ImageLoadError) as info:
        call(path)
    assert isinstance(info.value, OSError) and isinstance(info.value, BeitZooError)
    assert path.name in str(info.value)


def test_truncated_jpeg_control_full_file_loads(tmp_path, photos, monkeypatch):
    """Control for the truncated case: the same bytes, complete, decode fine."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    path = tmp_path / "full.jpg"
    path.write_bytes(_jpeg_bytes(photos["astronaut"]))
    assert load_image(path).size == (512, 512)


def test_decompression_bomb_raises_image_load_error(tmp_path, photos, monkeypatch):
    path = tmp_path / "too_many_pixels.png"
    Image.fromarray(photos["coffee"]).resize((100, 100)).save(path)
    assert load_image(path).size == (100, 100)  # control: fine at the default limit
    # Pillow raises DecompressionBombError only above 2 x MAX_IMAGE_PIXELS; 10_000 > 2 * 1_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert isinstance(info.value, OSError)
    message = str(info.value)
    assert path.name in message
    assert "MAX_IMAGE_PIXELS" in message  # says how to get past it
    with pytest.raises(ImageLoadError):
        EvalTransform(IMAGENET_EVAL)(path)


@pytest.mark.parametrize(
    "item, error, words",
    [
        (np.zeros((8, 8, 3), np.float64), TypeError, ["uint8", "float64"]),
        (np.zeros((8, 8, 3), np.float32), TypeError, ["uint8"]),
        (np.zeros((8, 8, 3), bool), TypeError, ["uint8"]),
        (np.zeros((8, 8, 2), np.uint8), ValueError, ["(8, 8, 2)"]),
        (np.zeros((2, 8, 8, 3), np.uint8), ValueError, ["(2, 8, 8, 3)"]),
        (np.zeros((8,), np.uint8), ValueError, ["(8,)"]),
        (torch.zeros(1, 3, 8, 8), ValueError, ["[1, 3, 8, 8]"]),
        (torch.zeros(8, 8, 3), ValueError, ["[8, 8, 3]"]),
        (torch.zeros(2, 8, 8), ValueError, ["[2, 8, 8]"]),
        (torch.zeros(3, 8, 8, dtype=torch.int32), TypeError, ["int32"]),
        (torch.zeros(3, 8, 8, dtype=torch.bool), TypeError, ["bool"]),
        ([[0, 1], [2, 3]], TypeError, ["list"]),
        (b"\xff\xd8\xff", TypeError, ["bytes"]),
        (None, TypeError, ["NoneType"]),
    ],
    ids=[
        "np-float64",
        "np-float32",
        "np-bool",
        "np-2-channels",
        "np-4d",
        "np-1d",
        "tensor-4d",
        "tensor-hwc",
        "tensor-2-channels",
        "tensor-int32",
        "tensor-bool",
        "list",
        "bytes",
        "none",
    ],
)
def test_to_pil_rgb_rejects_unsupported_inputs(item, error, words):
    with pytest.raises(error) as info:
        to_pil_rgb(item)
    message = str(info.value)
    for word in words:
        assert word in message, message
    with pytest.raises(error):
        EvalTransform(IMAGENET_EVAL)(item)


# ------------------------------------------------------------ 6. create_transform


def test_create_transform_for_model_at_other_img_size_keeps_crop_pct(photos, few_images):
    model = beitv2_zoo.get_model("test_beit_tiny", img_size=256)
    transform = create_transform(model)
    assert isinstance(transform, EvalTransform)
    prep = transform.preprocessing
    assert prep.crop_size == 256
    assert prep.resize_size == int(256 / 0.875) == 292
    assert (prep.interpolation, prep.mean, prep.std) == ("bicubic", IMAGENET_EVAL.mean, IMAGENET_EVAL.std)
    for label, image in few_images:
        out = transform(image)
        assert out.shape == (3, 256, 256) and out.dtype == torch.float32
        assert _max_abs(out, _torchvision_eval(292, 256, IMAGENET_MEAN, IMAGENET_STD)(image)) <= TOL, label
    # and the model accepts it
    with torch.no_grad():
        logits = model(transform(Image.fromarray(photos["chelsea"]))[None])
    assert logits.shape == (1, 1000)


def test_create_transform_for_model_at_record_size_is_the_record(photos):
    model = beitv2_zoo.get_model("test_beit_tiny")
    transform = create_transform(model)
    assert transform.preprocessing == model.weights_info.preprocessing == IMAGENET_EVAL
    image = Image.fromarray(photos["astronaut"])
    assert transform(image).shape == (3, 224, 224)


def test_create_transform_from_record_and_preprocessing():
    record = beitv2_zoo.get_model("test_beit_tiny").weights_info
    assert create_transform(record).preprocessing == record.preprocessing
    custom = Preprocessing(resize_size=160, crop_size=128, interpolation="bilinear", mean=(0.5,) * 3, std=(0.25,) * 3)
    assert create_transform(custom).preprocessing is custom
    # no record at all -> ImageNet eval
    assert create_transform(SimpleNamespace(weights_info=None)).preprocessing == IMAGENET_EVAL


def test_create_transform_keeps_a_timm_records_ratio():
    fake = SimpleNamespace(
        weights_info=SimpleNamespace(preprocessing=TIMM_BASE_EVAL), patch_embed=SimpleNamespace(img_size=256)
    )
    prep = create_transform(fake).preprocessing
    assert prep.crop_size == 256
    # timm's own rule at 256: floor(256 / 0.9) = 284 (the 224/248 ratio would give 283)
    assert prep.resize_size == math.floor(256 / 0.9) == 284
    assert prep.crop_pct == 0.9
    assert EvalTransform(prep)(torch.zeros(3, 300, 400)).shape == (3, 256, 256)


def test_custom_preprocessing_with_other_interpolation_matches_torchvision(few_images):
    from torchvision import transforms as T

    prep = Preprocessing(resize_size=160, crop_size=128, interpolation="bilinear", mean=(0.5,) * 3, std=(0.25,) * 3)
    reference = T.Compose(
        [
            T.Resize(160, interpolation=T.InterpolationMode.BILINEAR),
            T.CenterCrop(128),
            T.ToTensor(),
            T.Normalize((0.5,) * 3, (0.25,) * 3),
        ]
    )
    for label, image in few_images:
        assert _max_abs(EvalTransform(prep)(image), reference(image)) <= TOL, label
