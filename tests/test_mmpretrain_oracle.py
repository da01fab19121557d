"""Optional oracle test: beitv2_zoo against mmpretrain 1.2.0 on the same checkpoint file.

Skipped unless mmpretrain is importable (CI does not install it). For every mmpretrain
classifier name we serve, mmpretrain builds its own model with random weights
(``get_model(name, pretrained=False)``, no network), the weights are randomised more
strongly so the comparison is sensitive, and the state dict is saved in the published
mmpretrain layout (``{'meta': {'dataset_meta': {'classes': ...}}, 'state_dict': ...}``).
Both libraries then load that one file and must agree on:

* the normalised input tensor (mmpretrain's test pipeline + ``data_preprocessor``
  against our ``create_transform``), on PNG photos;
* raw logits ``model(x)`` and ``extract_feat(x)`` on the same normalised tensor
  (mmpretrain's ``model(x)`` does not run its data preprocessor, so both get ``x``);
* ``inference_model`` results on image files: ``pred_scores`` to 1e-4, the same
  ``pred_label`` and ``pred_class``.

How mmpretrain was installed (CPU only, no compiled ops; torch/numpy left untouched, the
second command changed no torch/numpy/pillow version, checked with ``pip list``)::

    pip install --no-deps mmengine==0.10.7 mmcv-lite==2.2.0 mmpretrain==1.2.0
    pip install addict yapf termcolor rich einops mat4py modelindex \
        opencv-python-headless matplotlib importlib-metadata

No workaround was needed with torch 2.14.1 / numpy 2.x: ``import mmpretrain`` passes its
``mmcv>=2.0.0,<2.4.0`` assert with mmcv-lite 2.2.0 and only warns that
``MultiScaleDeformableAttention`` (a compiled op BEiT does not use) is unavailable.
mmengine loads the checkpoint with ``torch.load``'s default ``weights_only=True``, which
accepts these files because they hold only dicts, lists, strings and tensors.

Run: ``python -m pytest tests/test_mmpretrain_oracle.py -q -s`` (``-s`` prints the
measured differences).
"""

import time
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("mmpretrain")

import mmpretrain  # noqa: E402
from mmpretrain.apis import ImageClassificationInferencer  # noqa: E402
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES  # noqa: E402
from PIL import Image  # noqa: E402

from beitv2_zoo import create_transform, get_model, inference_model  # noqa: E402

skimage_data = pytest.importorskip("skimage.data")

NAMES = [
    "beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k",
    "beit-base-p16_beitv2-in21k-pre_3rdparty_in1k",
    "beit-base-p16_beit-pre_8xb128-coslr-100e_in1k",
    "beit-base-p16_beit-in21k-pre_3rdparty_in1k",
]
# The 2022 publishers wrote the legacy (non-zip) pickle format; cover it for two names.
LEGACY_FORMAT = {
    "beit-base-p16_beitv2-in21k-pre_3rdparty_in1k",
    "beit-base-p16_beit-in21k-pre_3rdparty_in1k",
}
PHOTOS = ("chelsea", "astronaut", "coffee")
ATOL = 1e-4

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

_REPORT: dict[str, dict[str, float]] = {}


def _record(name: str, key: str, value: float) -> None:
    _REPORT.setdefault(name, {})[key] = value
    print(f"\n[oracle] {name}: {key} = {value:.3g}")


@pytest.fixture(scope="module", autouse=True)
def _print_summary():
    start = time.perf_counter()
    yield
    print(f"\n[oracle] summary (max abs differences), {time.perf_counter() - start:.1f}s in this module:")
    for name, values in _REPORT.items():
        print(f"  {name}")
        for key, value in values.items():
            print(f"    {key:<34} {value:.3g}")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Real photos as PNG (lossless: OpenCV and Pillow decode the same pixels)."""
    folder = tmp_path_factory.mktemp("images")
    paths = {}
    for photo in PHOTOS:
        paths[photo] = folder / f"{photo}.png"
        Image.fromarray(getattr(skimage_data, photo)()).save(paths[photo])
    return paths


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Re-initialise every parameter so that each kind of tensor matters to the output.

    Plain init leaves LayerNorms at 1/0, layer scales at 0.1 and attention almost uniform,
    so a wrong norm, scale, bias or relative-position lookup could go unnoticed.
    """
    generator = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=generator) * std + mean

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("gamma_1", "gamma_2")):  # layer scale in 0.1 .. 1
                value = torch.rand(param.shape, generator=generator) * 0.9 + 0.1
            elif name == "head.fc.weight":
                value = normal(param.shape, 0.5)
            elif name.endswith("relative_position_bias_table"):
                value = normal(param.shape, 0.5)
            elif name.endswith("attn.qkv.weight"):  # sharper attention than std 0.02
                value = normal(param.shape, 0.05)
            elif param.ndim == 1 and name.endswith("weight"):  # LayerNorm scales
                value = normal(param.shape, 0.2, mean=1.0)
            else:
                value = normal(param.shape, 0.02)
            param.copy_(value)


@pytest.fixture(scope="module", params=NAMES)
def pair(request, tmp_path_factory):
    """(name, checkpoint path, mmpretrain model, our model, mmpretrain inferencer) for one name.

    mmpretrain's side is the model its ``ImageClassificationInferencer`` loaded from the
    checkpoint file (mmengine ``load_checkpoint``), not the in-memory model that wrote it.
    """
    name = request.param
    source = mmpretrain.get_model(name, pretrained=False)
    _randomise(source, seed=NAMES.index(name))
    state_dict = source.state_dict()
    del source
    path = tmp_path_factory.mktemp("ckpt") / f"{name}.pth"
    checkpoint = {"meta": {"dataset_meta": {"classes": list(IMAGENET_CATEGORIES)}}, "state_dict": state_dict}
    torch.save(checkpoint, path, _use_new_zipfile_serialization=name not in LEGACY_FORMAT)

    inferencer = ImageClassificationInferencer(name, pretrained=str(path))
    theirs = inferencer.model.eval()
    loaded = theirs.state_dict()
    assert loaded.keys() == state_dict.keys()
    assert all(torch.equal(loaded[key], value) for key, value in state_dict.items())
    del state_dict, loaded

    ours = get_model(name, pretrained=str(path))
    yield name, path, theirs, ours, inferencer


def _normalised_batch(pair, images) -> torch.Tensor:
    ours = pair[3]
    transform = create_transform(ours)
    return torch.stack([transform(images[photo]) for photo in PHOTOS])


def test_preprocessing_matches(pair, images):
    name, _, mm_model, _, inferencer = pair
    theirs = []
    for photo in PHOTOS:
        batch = next(inferencer.preprocess([str(images[photo])], batch_size=1))
        theirs.append(mm_model.data_preprocessor(batch, False)["inputs"][0])
    theirs = torch.stack(theirs)
    mine = _normalised_batch(pair, images)
    assert mine.shape == theirs.shape == (len(PHOTOS), 3, 224, 224)
    diff = (mine - theirs).abs().max().item()
    _record(name, "normalised input (PNG)", diff)
    assert diff <= 1e-5


def test_logits_and_features_match(pair, images):
    name, _, theirs, ours, _ = pair
    # The three photos plus one N(0, 1) noise image (every token position, no image structure).
    noise = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    x = torch.cat([_normalised_batch(pair, images), noise])
    with torch.inference_mode():
        their_feats = theirs.extract_feat(x)
        # ImageClassifier.forward(x, mode='tensor') is head(extract_feat(x)); reuse the features.
        their_logits = theirs.head(their_feats)
        our_logits = ours(x)
        our_feats = ours.extract_feat(x)
    batch = len(PHOTOS) + 1
    assert our_logits.shape == their_logits.shape == (batch, 1000)
    assert isinstance(our_feats, tuple) and len(our_feats) == 1
    assert our_feats[0].shape == their_feats[-1].shape == (batch, 768)
    feat_diff = (our_feats[0] - their_feats[-1]).abs().max().item()
    logit_diff = (our_logits[:-1] - their_logits[:-1]).abs().max().item()
    noise_diff = (our_logits[-1] - their_logits[-1]).abs().max().item()
    _record(name, "extract_feat(x)[-1]", feat_diff)
    _record(name, "logits model(x), photos", logit_diff)
    _record(name, "logits model(x), N(0,1) noise", noise_diff)
    _record(name, "logit scale (max |logit|)", their_logits.abs().max().item())
    assert feat_diff <= ATOL
    assert logit_diff <= ATOL
    assert noise_diff <= ATOL


def test_inference_model_matches(pair, images):
    name, _, _, ours, inferencer = pair
    paths = [str(images[photo]) for photo in PHOTOS]
    theirs = inferencer(paths, batch_size=len(paths))
    mine = inference_model(ours, paths)
    worst = 0.0
    for their, my in zip(theirs, mine):
        assert my["pred_scores"].dtype == np.float32 and my["pred_scores"].shape == (1000,)
        worst = max(worst, float(np.abs(my["pred_scores"] - their["pred_scores"]).max()))
        assert my["pred_label"] == their["pred_label"]
        assert my["pred_class"] == their["pred_class"]
        assert my["pred_score"] == pytest.approx(their["pred_score"], abs=ATOL)
    _record(name, "pred_scores (PNG)", worst)
    _record(name, "top-1 score (chelsea)", theirs[0]["pred_score"])
    assert worst <= ATOL


def test_mmpretrain_inference_model_api(pair, images):
    """mmpretrain's one-call ``inference_model(name, img, pretrained=path)`` agrees too."""
    name, path, _, _, _ = pair
    if name != NAMES[0]:
        pytest.skip("checked on one name only (it rebuilds the model each call)")
    image = str(images["coffee"])
    theirs = mmpretrain.inference_model(name, image, pretrained=str(path))
    mine = inference_model(name, image, pretrained=str(path))
    diff = float(np.abs(mine["pred_scores"] - theirs["pred_scores"]).max())
    _record(name, "inference_model API (coffee.png)", diff)
    assert mine["pred_label"] == theirs["pred_label"]
    assert mine["pred_class"] == theirs["pred_class"]
    assert diff <= ATOL


def test_jpeg_matches(pair, tmp_path):
    """A JPEG file: mmpretrain decodes with OpenCV (cv2.imread), we decode with Pillow.

    Here both decoders are libjpeg-turbo (opencv-python-headless 5.0.0.93 bundles 3.1.2,
    Pillow 13 links libjpeg-turbo) with their default IDCT and chroma upsampling, and they
    decoded this 4:2:0 JPEG to identical pixels (pred_scores then differ by ~1e-7). Other
    builds (a plain libjpeg, libjpeg 9's different upsampling, a fast IDCT, or Pillow's
    ``draft`` mode) can differ by a few grey levels, which moves scores by far more than
    1e-4; that is why the main checks use PNG. If the pixels differ, this test reports the
    measured differences and skips instead of failing.
    """
    name, _, _, ours, inferencer = pair
    if name != NAMES[0]:
        pytest.skip("checked on one name only (decoding does not depend on the model)")
    path = tmp_path / "chelsea.jpg"
    Image.fromarray(skimage_data.chelsea()).save(path, quality=90)
    import cv2

    cv_rgb = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
    pil_rgb = np.asarray(Image.open(path).convert("RGB"))
    pixel_diff = int(np.abs(cv_rgb.astype(int) - pil_rgb.astype(int)).max())
    _record(name, "JPEG decoded pixels (cv2 vs PIL)", pixel_diff)
    theirs = inferencer(str(path))[0]
    mine = inference_model(ours, str(path))
    diff = float(np.abs(mine["pred_scores"] - theirs["pred_scores"]).max())
    _record(name, "pred_scores (JPEG)", diff)
    if pixel_diff:
        pytest.skip(f"OpenCV and Pillow decode this JPEG differently (max {pixel_diff} grey levels)")
    assert mine["pred_label"] == theirs["pred_label"]
    assert diff <= ATOL


def test_checkpoint_file_format(pair):
    """The file layout we claim to mirror: legacy or zip pickle, 'meta' + 'state_dict'."""
    name, path, theirs, _, _ = pair
    import zipfile

    assert zipfile.is_zipfile(path) is (name not in LEGACY_FORMAT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    assert set(loaded) == {"meta", "state_dict"}
    assert len(loaded["state_dict"]) == len(theirs.state_dict()) == 211
