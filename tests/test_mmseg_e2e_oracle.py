"""Acceptance oracle of semantic segmentation: mmsegmentation 1.2.2 end to end against ``inference_model``.

The same random weights in mmseg's ``EncoderDecoder`` (BEiT + Feature2Pyramid + UPerHead + FCNHead,
``BN`` for ``SyncBN``, ``SegDataPreProcessor`` with ADE20K's mean/std and ``bgr_to_rgb``, ``test_cfg``
``mode='slide'``) and in our segmenter (mapped with the mmseg keymap, loaded strictly); the same image
file through mmseg's own test pipeline (``LoadImageFromFile`` → ``Resize(scale, keep_ratio=True)`` →
``PackSegInputs`` → ``model.test_step``) and through :func:`beitv2_zoo.inference_model`.

The configuration is small but real (crop 128, stride 85, ``scale`` (512, 128) or (512, 192): the
ADE20K protocol at a quarter of its size) so that it runs in seconds on a CPU. Each case checks, in
pipeline order, so that a failure names its stage: the decoded pixels, the resized pixels (mmcv's
``Resize`` output against :mod:`beitv2_zoo.seg_transforms`, bit for bit), the normalised network
input, the slide logits at the resized size (and, bit for bit, mmseg's window arithmetic run on our
network), then the final ``seg_logits`` at the original size (within 1e-4 relative; measured below
4e-7) and ``pred_sem_seg`` (identical).

mmseg (with mmengine 0.10.7 and mmcv-lite 2.1.0), OpenCV and scikit-image are optional; the tests skip
without them. ``import mmseg.models`` needs mmcv's compiled ops, replaced by ``tests/mmseg_stub.py``.
"""

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("mmseg")
pytest.importorskip("mmengine")
cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

from tests import mmseg_stub

mmseg_stub.install()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    # mmseg.datasets registers PackSegInputs and mmcv's transforms under the mmseg scope
    import mmseg.datasets  # noqa: F401
    import mmseg.models  # noqa: F401
from mmengine.config import ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

import beitv2_zoo
from beitv2_zoo import get_model
from beitv2_zoo.checkpoint import split_layout
from beitv2_zoo.checkpoint.adapt import load_state_dict_strict
from beitv2_zoo.seg_transforms import rescale_size, resize_bilinear
from beitv2_zoo.segment import preprocess, slide_logits, whole_logits, window_spans
from beitv2_zoo.transforms import to_pil_rgb
from beitv2_zoo.weights import get_record
from beitv2_zoo.weights.schema import SegmentationPreprocessing

CROP, STRIDE, NUM_CLASSES = 128, 85, 12
SETTINGS = dict(img_size=CROP, embed_dim=64, depth=4, num_heads=2, out_indices=(0, 1, 2, 3), channels=32,
                aux_channels=16, num_classes=NUM_CLASSES)
ADE_MEAN, ADE_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]  # mmseg's ADE20K config, 0..255 units
RELATIVE_TOLERANCE = 1e-4


def mmseg_config() -> dict:
    """The official BEiT UPerNet ``EncoderDecoder`` config at :data:`SETTINGS` size, ``BN`` for ``SyncBN``."""
    embed = SETTINGS["embed_dim"]
    norm = dict(type="BN", requires_grad=True)
    head = dict(num_classes=NUM_CLASSES, norm_cfg=norm, align_corners=False, dropout_ratio=0.1)
    return dict(
        type="EncoderDecoder",
        data_preprocessor=dict(type="SegDataPreProcessor", mean=ADE_MEAN, std=ADE_STD, bgr_to_rgb=True,
                               pad_val=0, seg_pad_val=255, size=(CROP, CROP)),
        backbone=dict(type="BEiT", img_size=(CROP, CROP), patch_size=16, in_channels=3, embed_dims=embed,
                      num_layers=SETTINGS["depth"], num_heads=SETTINGS["num_heads"], mlp_ratio=4, qv_bias=True,
                      init_values=0.1, drop_path_rate=0.0, out_indices=SETTINGS["out_indices"], final_norm=False,
                      norm_cfg=dict(type="LN", eps=1e-6)),
        neck=dict(type="Feature2Pyramid", embed_dim=embed, rescales=[4, 2, 1, 0.5], norm_cfg=norm),
        decode_head=dict(type="UPerHead", in_channels=[embed] * 4, in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6),
                         channels=SETTINGS["channels"], **head),
        auxiliary_head=dict(type="FCNHead", in_channels=embed, in_index=2, channels=SETTINGS["aux_channels"],
                            num_convs=1, concat_input=False, **head),
        train_cfg=dict(),
        test_cfg=dict(mode="slide", crop_size=(CROP, CROP), stride=(STRIDE, STRIDE)),
    )


def our_preprocessing(scale: tuple[int, int]) -> SegmentationPreprocessing:
    """The same protocol for ours: ImageNet mean/std in [0, 1] units are ADE's ``/ 255``."""
    return SegmentationPreprocessing(resize_size=min(scale), crop_size=CROP, scale=scale, stride=STRIDE,
                                     mode="slide", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@pytest.fixture(scope="module")
def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """(mmseg ``EncoderDecoder``, our segmenter from ``get_model``) with the same random weights, in eval mode.

    Every tensor is random, BN running statistics included (means ``N(0, 0.2²)``, variances in
    ``[0.5, 1.5)``), so the logits vary over the image and the classes rarely tie.
    """
    generator = torch.Generator().manual_seed(13)
    with DefaultScope.overwrite_default_scope("mmseg"):
        theirs = MODELS.build(ConfigDict(mmseg_config()))  # test_cfg read by attribute, as from a Config file
    theirs.eval()
    state = {}
    for key, value in theirs.state_dict().items():
        if not value.is_floating_point():
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=generator) * 0.2
    theirs.load_state_dict(state)
    canonical, layout = split_layout(state)
    assert layout == "mmseg"
    ours = get_model("test_beit_tiny_upernet", **SETTINGS)
    assert load_state_dict_strict(ours, canonical) == []
    ours.eval()
    return theirs, ours


def _photo(name: str) -> np.ndarray:
    return getattr(skimage_data, name)()  # RGB uint8 [H, W, 3]


def _with_cv2(make: Callable[[], np.ndarray]) -> Callable[[Path], np.ndarray]:
    """Write ``make()`` (RGB) with OpenCV; return the upright RGB pixels the file holds."""
    def write(path: Path) -> np.ndarray:
        rgb = np.ascontiguousarray(make())
        assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1] if rgb.ndim == 3 else rgb))
        return rgb if rgb.ndim == 3 else np.repeat(rgb[:, :, None], 3, axis=2)
    return write


def _rotated_jpeg(path: Path) -> np.ndarray:
    """Coffee stored sideways in a JPEG with EXIF orientation 6 (display rotated 90° clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(_photo("coffee"), 1))).save(path, quality=92, exif=exif.tobytes())
    return _photo("coffee")


CASES: dict[str, tuple[Callable[[Path], np.ndarray], str, tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    # name: (file writer → RGB it holds, suffix, scale, size (h, w) after resizing, windows (rows, columns))
    # 400x600 → 128x192: height exactly the crop (one row of windows), width two overlapping windows
    "coffee_png": (_with_cv2(lambda: _photo("coffee")), ".png", (512, 128), (128, 192), (1, 2)),
    # the same through a JPEG file: mmseg decodes with OpenCV, we with Pillow
    "coffee_jpeg": (_with_cv2(lambda: _photo("coffee")), ".jpg", (512, 128), (128, 192), (1, 2)),
    # upright 600x400 → 192x128: width exactly the crop
    "coffee_portrait": (_with_cv2(lambda: _photo("coffee").transpose(1, 0, 2)), ".png", (512, 128), (192, 128),
                        (2, 1)),
    # 300x451 → 192x289: both sides over the crop, a 2 x 3 grid of windows
    "chelsea_grid": (_with_cv2(lambda: _photo("chelsea")), ".png", (512, 192), (192, 289), (2, 3)),
    # 256x384 → 128x192, exactly half: OpenCV's area-average shortcut
    "coffee_half": (_with_cv2(lambda: _photo("coffee")[:256, :384]), ".png", (512, 128), (128, 192), (1, 2)),
    # 100x150 → 128x192: enlarged
    "coffee_enlarged": (_with_cv2(lambda: _photo("coffee")[100:200, 200:350]), ".png", (512, 128), (128, 192),
                        (1, 2)),
    # a gray PNG (both loaders repeat the channel) and a JPEG turned upright by its EXIF tag
    "camera_gray": (_with_cv2(lambda: _photo("camera")[:, 40:470]), ".png", (512, 192), (229, 192), (3, 2)),
    "coffee_exif_rotated": (_rotated_jpeg, ".jpg", (512, 128), (128, 192), (1, 2)),
}


def relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> tuple[float, float]:
    """(max |ours - theirs|, that divided by max |theirs|)."""
    absolute = float((ours - theirs).abs().max())
    return absolute, absolute / float(theirs.abs().max())


@pytest.mark.parametrize("case", list(CASES))
def test_inference_matches_mmseg_slide(case: str, pair: tuple[torch.nn.Module, torch.nn.Module],
                                       tmp_path: Path) -> None:
    theirs, ours = pair
    write, suffix, scale, resized_hw, grid = CASES[case]
    path = tmp_path / f"{case}{suffix}"
    rgb = write(path)
    ours.weights_info = dataclasses.replace(get_record("test_beit_tiny_upernet"), num_classes=NUM_CLASSES,
                                            model_kwargs=dict(img_size=CROP), preprocessing=our_preprocessing(scale))

    # mmseg's test pipeline, one stage at a time
    with DefaultScope.overwrite_default_scope("mmseg"):
        load = Compose([dict(type="LoadImageFromFile")])
        resize = Compose([dict(type="Resize", scale=scale, keep_ratio=True)])
        pack = Compose([dict(type="PackSegInputs")])
    loaded = load(dict(img_path=str(path)))
    their_decoded = loaded["img"][:, :, ::-1]  # BGR → RGB
    resized = resize(dict(loaded, img=loaded["img"].copy()))
    their_resized = resized["img"][:, :, ::-1]
    data = pseudo_collate([pack(resized)])

    # 1. decoding (PNG is lossless; a JPEG may decode differently in Pillow and OpenCV)
    our_decoded = np.asarray(to_pil_rgb(path))
    assert our_decoded.shape == their_decoded.shape == rgb.shape
    decode_mismatch = int((our_decoded != their_decoded).any(axis=2).sum())
    if suffix == ".png":
        assert np.array_equal(their_decoded, rgb)
    assert decode_mismatch == 0, f"{case}: {decode_mismatch} pixels decode differently in Pillow and OpenCV"

    # 2. the resized pixels, bit for bit
    height, width = rgb.shape[:2]
    assert rescale_size(width, height, scale)[::-1] == resized["img_shape"] == resized_hw
    our_resized = resize_bilinear(our_decoded, rescale_size(width, height, scale))
    resize_mismatch = int((our_resized != their_resized).sum())
    assert resize_mismatch == 0, f"{case}: {resize_mismatch} resized values differ from mmcv's Resize"

    # 3. the normalised network input
    with torch.no_grad():
        prepared = theirs.data_preprocessor(data, False)
    their_input = prepared["inputs"]
    our_input = preprocess(our_decoded.copy(), ours.weights_info.preprocessing).unsqueeze(0)
    assert their_input.shape == our_input.shape == (1, 3, *resized_hw)
    input_difference = float((our_input - their_input).abs().max())
    assert torch.equal(our_input, their_input), f"{case}: the normalised inputs differ by up to {input_difference}"

    # 4. slide logits at the resized size (before the final resize to the original image)
    rows, columns = (len(window_spans(side, CROP, STRIDE)) for side in resized_hw)
    assert (rows, columns) == grid
    with torch.no_grad():
        metas = [dict(sample.metainfo) for sample in prepared["data_samples"]]
        their_slide = theirs.inference(their_input, metas)
        our_slide = slide_logits(ours, our_input, CROP, STRIDE)
    slide_abs, slide_rel = relative_difference(our_slide, their_slide)
    assert slide_rel <= RELATIVE_TOLERANCE, f"{case}: slide logits differ by {slide_abs} ({slide_rel} relative)"
    # the window arithmetic alone (spans, upsampling, sum / count) is mmseg's bit for bit: its
    # slide_inference with our network in place of its encode_decode gives our slide logits exactly
    with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(theirs, "encode_decode", lambda crops, _metas: whole_logits(ours, crops))
        assert torch.equal(theirs.inference(their_input, metas), our_slide), f"{case}: slide arithmetic differs"

    # 5. the public result at the original size
    with torch.no_grad():
        (sample,) = theirs.test_step(data)
    their_logits = sample.seg_logits.data
    their_labels = sample.pred_sem_seg.data[0].numpy()
    result = beitv2_zoo.inference_model(ours, path, return_logits=True)
    our_logits = torch.from_numpy(result["seg_logits"])
    assert our_logits.shape == their_logits.shape == (NUM_CLASSES, height, width)
    assert result["pred_sem_seg"].shape == their_labels.shape == (height, width)
    final_abs, final_rel = relative_difference(our_logits, their_logits)
    label_mismatch = int((result["pred_sem_seg"] != their_labels).sum())
    top2 = their_logits.topk(2, dim=0).values
    margin = float((top2[0] - top2[1]).min())
    print(f"\n{case}: {height}x{width} → {resized_hw[0]}x{resized_hw[1]}, windows {rows}x{columns}; decode/resize "
          f"mismatches {decode_mismatch}/{resize_mismatch}; slide max abs {slide_abs:.3g} rel {slide_rel:.3g}; "
          f"seg_logits max abs {final_abs:.3g} rel {final_rel:.3g}; pred_sem_seg differing pixels {label_mismatch}; "
          f"classes predicted {len(np.unique(their_labels))}; smallest top-2 margin {margin:.3g}")
    assert final_rel <= RELATIVE_TOLERANCE, f"{case}: seg_logits differ by {final_abs} ({final_rel} relative)"
    assert label_mismatch == 0, f"{case}: {label_mismatch} pixels labelled differently"
    assert len(np.unique(their_labels)) >= 3, "the random weights predict (nearly) one class: the test proves little"


def test_default_protocol_scaled_to_the_crop_is_this_config(pair: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    """Without a record's preprocessing, ADE20K's (2048, 512) / 341 protocol scaled to a 128 crop is the
    (512, 128) / 85 one checked above against mmseg."""
    from beitv2_zoo.segment import seg_preprocessing

    _, ours = pair
    saved = ours.weights_info
    try:
        ours.weights_info = None
        assert seg_preprocessing(ours) == our_preprocessing((512, 128))
    finally:
        ours.weights_info = saved
