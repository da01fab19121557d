"""``beitv2_zoo.segment``: mmseg's slide inference, the bounded-memory argmax, and the result dicts."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from beitv2_zoo import get_model
from beitv2_zoo.errors import ImageLoadError, InvalidInputError, ModelConfigError, NonFiniteOutputError
from beitv2_zoo.models import ARCHITECTURES
from beitv2_zoo.segment import (seg_preprocessing, segment, segmentation_labels, slide_logits, upsample_argmax,
                                whole_logits, window_spans)
from beitv2_zoo.weights import ADE20K_EVAL_512, ADE20K_EVAL_640
from beitv2_zoo.weights.labels import class_names, palette

from .conftest import REPO, randomize_

CROP = 64  # the tiny segmenter's record: 64-pixel windows, scale (256, 64), stride 43


def varied_segmenter():
    """The tiny BEiT + UPerNet segmenter (150 ADE20K classes, a 64-pixel crop) with varied weights, plain
    batch norms and no class bias, so that its labels follow the picture."""
    model = randomize_(get_model("test_beit_tiny_upernet"))
    with torch.no_grad():
        model.decode_head.conv_seg.bias.zero_()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.fill_(1.0)
                module.bias.zero_()
    return model


@pytest.fixture(scope="module")
def tiny():
    model = varied_segmenter()
    assert model.class_names == class_names("ade20k") and seg_preprocessing(model).crop_size == CROP
    return model


class Standin(nn.Module):
    """The segmenter contract in a few lines: ``[B, 3, H, W]`` (multiples of 16) → ``[B, K, H/4, W/4]``."""

    task = "semantic-segmentation"

    def __init__(self, num_classes: int = 5, img_size: int = 32, broken: bool = False) -> None:
        super().__init__()
        self.num_classes, self.img_size, self.patch_size, self.output_stride = num_classes, img_size, 16, 4
        self.class_names, self.weights_info, self.broken = None, None, broken
        self.proj = nn.Conv2d(3, num_classes, 4, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % 16 == 0 and x.shape[-1] % 16 == 0, x.shape
        logits = self.proj(x)
        return logits * float("nan") if self.broken else logits


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB ``uint8`` picture with some structure (not noise)."""
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    channels = [np.sin(xx / rng.uniform(5, 20) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(5, 20)) for _ in range(3)]
    return ((np.stack(channels, axis=-1) + 1) * 127.5).astype(np.uint8)


def _mmseg_slide(model, image, crop, stride):
    """mmseg 1.2.2's slide_inference written out plainly: one window at a time, zero-padded sums."""
    _, _, height, width = image.shape
    rows = max(height - crop + stride - 1, 0) // stride + 1
    cols = max(width - crop + stride - 1, 0) // stride + 1
    total, count = None, torch.zeros(1, 1, height, width)
    for row in range(rows):
        for col in range(cols):
            y2, x2 = min(row * stride + crop, height), min(col * stride + crop, width)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            window = model(image[:, :, y1:y2, x1:x2])
            window = F.interpolate(window, size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=False)
            padded = F.pad(window, (x1, width - x2, y1, height - y2))
            total = padded if total is None else total + padded
            count[:, :, y1:y2, x1:x2] += 1
    return total / count


# ----------------------------------------------------------------- results
def test_results_are_at_the_original_size(tiny):
    image = _photo(100, 150)
    result = segment(tiny, image)
    assert set(result) == {"pred_sem_seg", "classes", "palette"}
    labels = result["pred_sem_seg"]
    assert labels.shape == (100, 150) and labels.dtype == np.int64
    assert 0 <= labels.min() and labels.max() < 150 and len(np.unique(labels)) > 1
    assert result["classes"] == class_names("ade20k") and result["palette"] == palette("ade20k")

    with_logits = segment(tiny, image, return_logits=True)
    logits = with_logits["seg_logits"]
    assert logits.shape == (150, 100, 150) and logits.dtype == np.float32
    assert np.array_equal(logits.argmax(axis=0), labels)
    assert np.array_equal(with_logits["pred_sem_seg"], labels)


def test_inputs_of_every_kind_give_the_same_labels(tiny, tmp_path):
    image = _photo(70, 90, seed=1)
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    expected = segment(tiny, image)["pred_sem_seg"]
    tensor = torch.from_numpy(image).permute(2, 0, 1)
    for item in (path, str(path), Image.fromarray(image), tensor, tensor.float() / 255):
        assert np.array_equal(segment(tiny, item)["pred_sem_seg"], expected)


def test_slide_and_whole_agree_on_an_image_of_the_crop_size(tiny):
    x = torch.from_numpy(_photo(CROP, CROP)).permute(2, 0, 1).float().unsqueeze(0) / 50 - 2.5
    with torch.inference_mode():
        assert torch.equal(slide_logits(tiny, x, CROP, 43), whole_logits(tiny, x))
    image = _photo(CROP, CROP, seed=2)  # fits the scale (256, 64) as it is: no resize
    slide = segment(tiny, image, mode="slide", return_logits=True)
    whole = segment(tiny, image, mode="whole", return_logits=True)
    assert np.array_equal(slide["seg_logits"], whole["seg_logits"])
    assert np.array_equal(slide["pred_sem_seg"], whole["pred_sem_seg"])


def test_slide_is_mmsegs_window_loop_bit_for_bit(tiny):
    x = torch.randn(1, 3, 80, 150, generator=torch.Generator().manual_seed(0))  # 2 × 3 windows, overlapping
    with torch.inference_mode():
        expected = _mmseg_slide(tiny, x, CROP, 43)
        assert torch.equal(slide_logits(tiny, x, CROP, 43), expected)
        batched = slide_logits(tiny, x, CROP, 43, window_batch=4)
    torch.testing.assert_close(batched, expected, rtol=0, atol=1e-5)


def test_window_spans_follow_mmsegs_grid():
    assert window_spans(512, 512, 341) == [(0, 512)]
    assert window_spans(400, 512, 341) == [(0, 400)]  # a side below the crop: one smaller window
    assert window_spans(683, 512, 341) == [(0, 512), (171, 683)]
    assert window_spans(2048, 512, 341) == [(0, 512), (341, 853), (682, 1194), (1023, 1535), (1364, 1876),
                                            (1536, 2048)]
    assert window_spans(853, 512, 341) == [(0, 512), (341, 853)]
    assert window_spans(854, 512, 341) == [(0, 512), (341, 853), (342, 854)]


def test_windows_off_the_patch_grid_are_padded_and_cropped_back(tiny):
    x = torch.randn(1, 3, 40, 150, generator=torch.Generator().manual_seed(1))  # 40 rows: windows 40 × 64
    with torch.inference_mode():
        logits = slide_logits(tiny, x, CROP, 43)
        window = tiny(F.pad(x[:, :, :, :CROP], (0, 0, 0, 8)))  # 48 × 64 in, 12 × 16 out
        first = F.interpolate(window, size=(48, CROP), mode="bilinear", align_corners=False)[:, :, :40]
    assert logits.shape == (1, 150, 40, 150)
    assert torch.equal(logits[:, :, :, :43], first[:, :, :, :43])  # the columns only the first window covers
    result = segment(tiny, _photo(30, 600))  # resized to 256 × 13: windows of 13 × 64, padded to 16 × 64
    assert result["pred_sem_seg"].shape == (30, 600)


def test_whole_mode_is_one_pass_over_the_resized_image(tiny):
    image = _photo(90, 120, seed=3)
    result = segment(tiny, image, mode="whole")
    from beitv2_zoo.segment import preprocess

    x = preprocess(image, seg_preprocessing(tiny)).unsqueeze(0)  # 64 × 85: padded to 64 × 96
    with torch.inference_mode():
        logits = whole_logits(tiny, x)
    assert logits.shape == (1, 150, 64, 85)
    expected = F.interpolate(logits, size=(90, 120), mode="bilinear", align_corners=False)[0].argmax(0)
    assert np.array_equal(result["pred_sem_seg"], expected.numpy())


# ----------------------------------------------------------------- the argmax
@pytest.mark.parametrize("chunk_bytes", [1, 4 * 101 * 67 * 5, 1 << 40])
def test_chunked_argmax_is_the_full_argmax_bit_for_bit(chunk_bytes):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 37, 23, 31, generator=generator)
    logits[:, 20] = logits[:, 4] = logits.max(dim=1).values + 1  # a tie everywhere: the first class wins
    logits[:, :, :5] = torch.randint(0, 3, (1, 37, 5, 31), generator=generator).float()  # many ties
    full = F.interpolate(logits, size=(101, 67), mode="bilinear", align_corners=False)[0].argmax(dim=0)
    chunked = upsample_argmax(logits, (101, 67), chunk_bytes=chunk_bytes)
    assert chunked.dtype == torch.int64 and torch.equal(chunked, full)
    assert bool((chunked[40:] == 4).all())


def test_chunked_argmax_downsamples_too():
    logits = torch.randn(1, 9, 64, 48, generator=torch.Generator().manual_seed(2))
    full = F.interpolate(logits, size=(17, 30), mode="bilinear", align_corners=False)[0].argmax(dim=0)
    assert torch.equal(upsample_argmax(logits, (17, 30), chunk_bytes=1), full)


# ----------------------------------------------------------------- preprocessing and labels
def test_preprocessing_follows_the_models_crop(tiny):
    assert seg_preprocessing(Standin(img_size=512)) == ADE20K_EVAL_512
    scaled = seg_preprocessing(Standin(img_size=640))
    assert (scaled.crop_size, scaled.scale, scaled.stride, scaled.resize_size) == (640, (2560, 640), 426, 640)
    assert scaled == ADE20K_EVAL_640
    assert (seg_preprocessing(tiny).scale, seg_preprocessing(tiny).stride) == ((256, 64), 43)


def test_labels_of_a_model_without_names():
    names, colours = segmentation_labels(Standin(num_classes=5))
    assert names == ("0", "1", "2", "3", "4") and len(colours) == 5 and colours[0] == (120, 120, 120)


# ----------------------------------------------------------------- errors
def test_bad_inputs_raise_typed_errors(tiny, tmp_path):
    with pytest.raises(ImageLoadError, match="does not exist"):
        segment(tiny, tmp_path / "missing.png")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageLoadError, match="bad.jpg"):
        segment(tiny, tmp_path / "bad.jpg")
    with pytest.raises(InvalidInputError, match="no pixels"):
        segment(tiny, np.zeros((0, 5, 3), dtype=np.uint8))
    with pytest.raises(InvalidInputError, match="aspect ratio"):
        segment(tiny, np.zeros((2, 300, 3), dtype=np.uint8))
    Image.fromarray(np.zeros((2, 300, 3), dtype=np.uint8)).save(tmp_path / "strip.png")
    with pytest.raises(ImageLoadError, match="strip.png.*aspect ratio"):
        segment(tiny, tmp_path / "strip.png")
    with pytest.raises(InvalidInputError, match="NaN"):
        segment(tiny, torch.full((3, 8, 8), float("nan")))
    with pytest.raises(TypeError, match="uint8"):
        segment(tiny, np.zeros((8, 8, 3), dtype=np.float64))
    with pytest.raises(ValueError, match="mode"):
        segment(tiny, _photo(8, 8), mode="tiles")
    with pytest.raises(ValueError, match="on_error"):
        segment(tiny, _photo(8, 8), on_error="ignore")


def test_a_classifier_is_refused():
    classifier = ARCHITECTURES["test_beit_tiny"].build()
    with pytest.raises(ModelConfigError, match="segment"):
        segment(classifier, _photo(32, 32))


def test_nan_logits_raise():
    with pytest.raises(NonFiniteOutputError, match="NaN"):
        segment(Standin(broken=True), _photo(40, 50))


def test_the_contract_is_enough():
    """Any module with the segmenter attributes works (here one built for 32-pixel windows)."""
    result = segment(Standin(), _photo(45, 70))
    assert result["pred_sem_seg"].shape == (45, 70) and result["classes"] == ("0", "1", "2", "3", "4")


def test_a_list_skips_unreadable_images(tiny, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(_photo(50, 60)).save(good)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    results = segment(tiny, [good, tmp_path / "bad.png", _photo(30, 40)], on_error="skip")
    assert [r is None for r in results] == [False, True, False]
    assert results[0]["pred_sem_seg"].shape == (50, 60) and results[2]["pred_sem_seg"].shape == (30, 40)
    with pytest.raises(ImageLoadError, match="bad.png"):
        segment(tiny, [good, tmp_path / "bad.png"])
    assert segment(tiny, []) == []


# ----------------------------------------------------------------- memory
_MEASURE = """
import json
import numpy as np
from beitv2_zoo.models import ARCHITECTURES
from beitv2_zoo.segment import segment
model = ARCHITECTURES["test_beit_tiny_upernet"].build().eval()   # crop 512, 150 classes: ADE20K's pipeline
segment(model, np.zeros((64, 64, 3), dtype=np.uint8))          # torch's one-time allocations
row = (np.arange(4000) % 251).astype(np.uint8)
image = np.stack([np.broadcast_to(row, (3000, 4000)), np.broadcast_to(row[:3000, None], (3000, 4000)),
                  np.full((3000, 4000), 90, dtype=np.uint8)], axis=-1)
def status(key):  # kB, from the kernel: torch's allocations included (tracemalloc sees none of them)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key + ":"))
before = status("VmRSS")
labels = segment(model, image)["pred_sem_seg"]
print(json.dumps({"shape": list(labels.shape), "before_kib": before, "peak_kib": status("VmHWM")}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmRSS / VmHWM from /proc")
def test_memory_stays_bounded_on_a_big_photo():
    """A 4000 × 3000 photo with 150 classes: the logits at the original size would be 7.2 GB (and the
    int64 argmax of them 96 MB); segment() adds at most a bounded amount to the process's peak."""
    done = subprocess.run([sys.executable, "-c", _MEASURE], capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["shape"] == [3000, 4000]
    assert report["peak_kib"] - report["before_kib"] < 1024 * 1024, report  # under 1 GiB more


# ----------------------------------------------------------------- inference_model
def test_inference_model_segments_with_a_segmenter(tiny):
    from beitv2_zoo import inference_model

    image = _photo(50, 70, seed=4)
    result = inference_model(tiny, image, return_logits=True)
    expected = segment(tiny, image, return_logits=True)
    assert set(result) == {"pred_sem_seg", "classes", "palette", "seg_logits"}
    assert np.array_equal(result["pred_sem_seg"], expected["pred_sem_seg"])
    assert [r["pred_sem_seg"].shape for r in inference_model(tiny, [image, image], mode="whole")] == [(50, 70)] * 2
    by_name = inference_model("test_beit_tiny_upernet", image, pretrained=False)  # a record of task semantic-segmentation
    assert by_name["pred_sem_seg"].shape == (50, 70) and by_name["classes"] == class_names("ade20k")
    with pytest.raises(ValueError, match="topk"):
        inference_model(tiny, image, topk=3)


def test_classifier_options_stay_apart():
    from beitv2_zoo import inference_model
    from beitv2_zoo.inference import predict, require_classifier

    classifier = ARCHITECTURES["test_beit_tiny"].build().eval()
    with pytest.raises(ValueError, match="mode= and return_logits="):
        inference_model(classifier, _photo(40, 40), mode="slide")
    assert "pred_scores" in inference_model(classifier, _photo(40, 40))
    with pytest.raises(ModelConfigError, match="segmenter"):
        predict(Standin(), _photo(40, 40))
    require_classifier("a segmenter", "semantic-segmentation")  # passes: inference_model segments it
    with pytest.raises(ModelConfigError, match="no classification head"):
        require_classifier("a tokenizer", "visual-tokenizer")
