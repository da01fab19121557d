"""Images and inputs from issue 12 (items 1–4): each got a wrong answer or a raw error from 0.1.

EXIF orientation, extreme aspect ratios (checked before the resize allocates anything), NaN
pixels, NaN scores and images with no pixels.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from beitv2_zoo import ImageLoadError, InvalidInputError, NonFiniteOutputError, create_transform, get_model, inference_model
from beitv2_zoo.cli import main
from beitv2_zoo.transforms import load_image

from .conftest import EXAMPLE_IMAGE

TINY = "test_beit_tiny"
ORIENTATION = 0x0112


def rotated_jpeg(path, orientation: int = 6):
    """A 400×300 JPEG stored sideways, with the EXIF tag that says how to turn it upright."""
    image = Image.open(EXAMPLE_IMAGE).convert("RGB").resize((400, 300))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    image.save(path, exif=exif, quality=95)
    return path


def test_exif_orientation_is_applied_as_mmpretrain_does(tmp_path):
    path = rotated_jpeg(tmp_path / "phone.jpg")
    assert Image.open(path).size == (400, 300)
    upright = load_image(path)
    assert upright.size == (300, 400)
    assert np.array_equal(np.asarray(upright), np.asarray(Image.open(path).convert("RGB").transpose(Image.Transpose.ROTATE_270)))


def test_exif_orientation_matches_mmcv(tmp_path):
    mmcv = pytest.importorskip("mmcv")
    path = rotated_jpeg(tmp_path / "phone.jpg")
    for backend in ("cv2", "pillow"):
        decoded = mmcv.imfrombytes(path.read_bytes(), flag="color", backend=backend)
        assert decoded.shape[:2] == (400, 300), backend  # height 400, width 300, as ours


def test_an_extreme_aspect_ratio_is_refused_before_the_resize(tmp_path):
    path = tmp_path / "line.png"
    Image.new("RGB", (100_000, 1), (200, 10, 10)).save(path)
    assert path.stat().st_size < 2000
    with pytest.raises(ImageLoadError, match="line.png.*aspect ratio"):
        create_transform(get_model(TINY))(path)


def test_predict_on_a_folder_skips_and_names_an_extreme_image(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (20_000, 3)).save(folder / "thin.png")
    Image.open(EXAMPLE_IMAGE).save(folder / "cat.jpg")
    assert main(["predict", str(folder), "--model", TINY, "--weights", _tiny_weights(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "cat.jpg" in captured.out and "thin.png" not in captured.out
    assert "skipped 1" in captured.err


def _tiny_weights(tmp_path) -> str:
    path = tmp_path / "tiny.pth"
    torch.save(get_model(TINY).state_dict(), path)
    return str(path)


def test_a_nan_image_tensor_is_refused():
    image = torch.rand(3, 64, 64)
    image[0, 5, 5] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        inference_model(get_model(TINY), image)


def test_nan_scores_are_an_error_not_a_label():
    model = get_model(TINY)
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteOutputError):
        inference_model(model, EXAMPLE_IMAGE)


@pytest.mark.parametrize("empty", [np.zeros((0, 0, 3), np.uint8), torch.zeros(3, 0, 0), torch.zeros(3, 0, 5, dtype=torch.uint8)])
def test_an_image_without_pixels_is_refused(empty):
    with pytest.raises(InvalidInputError, match="no pixels"):
        inference_model(get_model(TINY), empty)


def test_a_zero_sized_pil_image_is_refused():
    with pytest.raises(InvalidInputError, match="no pixels"):
        inference_model(get_model(TINY), Image.new("RGB", (0, 0)))


def test_an_empty_list_gives_an_empty_list():
    assert inference_model(get_model(TINY), []) == []


@pytest.mark.parametrize("bad", [torch.rand(64, 64), np.zeros((4, 4, 2), np.uint8)])
def test_a_tensor_or_array_of_the_wrong_shape_is_a_typed_error(bad):
    with pytest.raises(InvalidInputError, match="must be"):
        inference_model(get_model(TINY), bad)


def test_a_folder_that_is_not_a_saved_model_says_so(tmp_path):
    from beitv2_zoo import CheckpointError

    with pytest.raises(CheckpointError, match="config.json"):
        get_model(tmp_path)
