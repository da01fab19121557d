"""Optional oracle test: the BEiT v2 pretraining model against mmpretrain 1.2.0 on the same checkpoint file.

Skipped unless mmpretrain is importable (CI does not install it; see the docstring of
``tests/test_mmpretrain_oracle.py`` for how it was installed here). mmpretrain builds
``beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k`` with random weights (no network: its
tokenizer's ``init_cfg`` URL is only read by ``init_weights``, which ``get_model`` does not
call). The weights are then randomised more strongly and the codebook is given random
unit codes (``initted = 1``). The result is saved in mmpretrain's layout
(``{'meta', 'state_dict'}``) and loaded by both libraries, which must agree on:

* the parameter count (192,809,840) and the key set of the file (reference §4.2);
* ``model(x)`` and ``model.extract_feat(x)``: the two raw block outputs, ≤ 1e-4;
* the masked backbone pass, the neck and the two cross-entropy losses (``BEiTV2Head.loss``), ≤ 1e-4;
* the tokenizer's code ids (exactly). mmpretrain gets ``x/127.5 − 1`` pixels, as its data
  preprocessor computes them; we get the same crop in [0, 1];
* one training-mode EMA step of the codebook (mmpretrain runs it unsynchronised on one process).

Run: ``python -m pytest tests/test_mmpretrain_mim_oracle.py -q -s`` (``-s`` prints the differences).
"""

import copy
import time
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("mmpretrain")

import mmpretrain  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402
from PIL import Image  # noqa: E402

from beitv2_zoo import create_transform, get_model, get_record  # noqa: E402
from beitv2_zoo.train.masking import BlockMaskGenerator  # noqa: E402
from beitv2_zoo.train.objectives import mim_loss  # noqa: E402
from beitv2_zoo.weights.pretraining import TOKENIZER_EVAL  # noqa: E402

from .test_mim import mmpretrain_pretrain_shapes  # noqa: E402

skimage_data = pytest.importorskip("skimage.data")

NAME = "beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k"
ATOL = 1e-4
PHOTOS = ("chelsea", "astronaut", "coffee")

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

_REPORT: dict[str, float] = {}


def _record(key: str, value: float) -> None:
    _REPORT[key] = value
    print(f"\n[oracle] {NAME}: {key} = {_show(value)}")


def _show(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.3g}"


@pytest.fixture(scope="module", autouse=True)
def _print_summary():
    start = time.perf_counter()
    yield
    print(f"\n[oracle] summary for {NAME}, {time.perf_counter() - start:.1f}s in this module:")
    for key, value in _REPORT.items():
        print(f"    {key:<40} {_show(value)}")


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Every tensor matters: layer scales 0.1..1, sharp attention, LayerNorms away from 1/0, unit codes."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("gamma_1", "gamma_2")):
                value = torch.rand(param.shape, generator=generator) * 0.9 + 0.1
            elif name.endswith("relative_position_bias_table") or name.startswith("head.cls_head.weight"):
                value = torch.randn(param.shape, generator=generator) * 0.5
            elif name.endswith("attn.qkv.weight"):
                value = torch.randn(param.shape, generator=generator) * 0.05
            elif name.endswith("quantize.embedding.weight"):
                value = torch.nn.functional.normalize(torch.randn(param.shape, generator=generator), dim=-1)
            elif name.endswith("encode_task_layer.2.weight"):  # spread the 32-d features over the codebook
                value = torch.randn(param.shape, generator=generator) * 0.2
            elif param.ndim == 1 and name.endswith("weight"):
                value = torch.randn(param.shape, generator=generator) * 0.2 + 1.0
            else:
                value = torch.randn(param.shape, generator=generator) * 0.02
            param.copy_(value)
        model.target_generator.quantize.embedding.initted.fill_(1.0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    source = mmpretrain.get_model(NAME, pretrained=False)
    _randomise(source)
    state_dict = source.state_dict()
    del source
    path = tmp_path_factory.mktemp("ckpt") / f"{NAME}.pth"
    torch.save({"meta": {"mmpretrain_version": "1.2.0"}, "state_dict": state_dict}, path)

    theirs = mmpretrain.get_model(NAME, pretrained=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_checkpoint(theirs, str(path), map_location="cpu", strict=True)
    theirs.eval()
    ours = get_model(NAME, pretrained=path)
    yield path, state_dict, theirs, ours


@pytest.fixture(scope="module")
def inputs():
    """The model's view (ImageNet-normalised) and the tokenizer's view (in [0, 1]) of 3 photos + 1 noise image."""
    model_view = create_transform(get_record(NAME).preprocessing)
    tokenizer_view = create_transform(TOKENIZER_EVAL)
    photos = [Image.fromarray(getattr(skimage_data, p)()) for p in PHOTOS]
    x = torch.stack([model_view(p) for p in photos] + [torch.randn(3, 224, 224, generator=torch.Generator().manual_seed(7))])
    images = torch.stack([tokenizer_view(p) for p in photos] + [torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(8))])
    generator = BlockMaskGenerator(seed=0)
    mask = torch.from_numpy(np.stack([generator() for _ in range(len(x))]))
    return x, images, mask


def test_parameter_count_and_key_set(pair):
    path, state_dict, theirs, ours = pair
    their_count = sum(p.numel() for p in theirs.parameters())
    our_count = sum(p.numel() for p in ours.parameters())
    _record("parameters (mmpretrain)", their_count)
    assert their_count == our_count == 192_809_840
    assert set(state_dict) == set(mmpretrain_pretrain_shapes())
    assert all(tuple(state_dict[k].shape) == shape for k, shape in mmpretrain_pretrain_shapes().items())


def test_model_and_extract_feat_match(pair, inputs):
    _, _, theirs, ours = pair
    x, _, _ = inputs
    with torch.inference_mode():
        their_out, their_feat = theirs(x), theirs.extract_feat(x)
        our_out, our_feat = ours(x), ours.extract_feat(x)
    assert isinstance(their_out, tuple) and len(their_out) == len(our_out) == 2
    for index, (a, b) in enumerate(zip(their_out, our_out)):
        assert a.shape == b.shape == (len(x), 197, 768)
        diff = (a - b).abs().max().item()
        _record(f"model(x)[{index}] (block {9 if index == 0 else 12})", diff)
        assert diff <= ATOL
    feat_diff = max((a - b).abs().max().item() for a, b in zip(their_feat, our_feat))
    _record("extract_feat(x)", feat_diff)
    _record("output scale (max |model(x)[1]|)", their_out[1].abs().max().item())
    assert feat_diff <= ATOL


def test_tokenizer_ids_match(pair, inputs):
    _, _, theirs, ours = pair
    _, images, _ = inputs
    with torch.inference_mode():
        their_ids = theirs.target_generator((images * 255.0 - 127.5) / 127.5)  # mmpretrain's second_mean/std
        our_ids = ours.tokenizer.encode(images)
    assert their_ids.shape == (len(images), 196) and our_ids.shape == (len(images), 14, 14)
    mismatches = int((their_ids != our_ids.flatten(1)).sum())
    _record("tokenizer ids differing (of 784)", mismatches)
    _record("distinct ids", len(our_ids.unique()))
    assert mismatches == 0
    assert torch.equal(ours.tokenizer.get_codebook_indices(images), their_ids)


def test_masked_pass_and_losses_match(pair, inputs):
    _, _, theirs, ours = pair
    x, images, mask = inputs
    with torch.inference_mode():
        latent = theirs.backbone(x, mask)
        feats, feats_cls_pt = theirs.neck(latent, rel_pos_bias=theirs.backbone.shared_rel_pos_bias)
        target = theirs.target_generator((images * 255.0 - 127.5) / 127.5)
        loss_1, loss_2 = theirs.head.loss(feats, feats_cls_pt, target, mask)
        ours_latent = ours(x, mask)
        losses = mim_loss(ours, x, images, mask)
    latent_diff = max((a - b).abs().max().item() for a, b in zip(latent, ours_latent))
    _record("masked backbone outputs", latent_diff)
    _record("loss_1 (last block branch)", abs(loss_1.item() - losses["loss_1"].item()))
    _record("loss_2 (patch aggregation)", abs(loss_2.item() - losses["loss_2"].item()))
    _record("loss value (ours)", losses["loss"].item())
    assert latent_diff <= ATOL
    assert abs(loss_1.item() - losses["loss_1"].item()) <= ATOL
    assert abs(loss_2.item() - losses["loss_2"].item()) <= ATOL


def test_training_mode_ema_step_matches(pair, inputs):
    """One train-mode quantizer step: the same codebook and the same usage increment (on copies).

    mmpretrain also EMA-updates ``cluster_size`` in eval mode (the earlier tests did), we do not, so
    the usage statistic is compared by its increment ``after - decay * before``.
    """
    _, _, theirs, ours = pair
    _, images, _ = inputs
    their_tokenizer, our_tokenizer = copy.deepcopy(theirs.target_generator).train(), copy.deepcopy(ours.tokenizer).train()
    their_usage, our_usage = their_tokenizer.quantize.cluster_size.clone(), our_tokenizer.quantize.cluster_size.clone()
    with torch.no_grad():
        their_tokenizer((images * 255.0 - 127.5) / 127.5)
        our_tokenizer.encode(images)
    codebook_diff = (their_tokenizer.quantize.embedding.weight - our_tokenizer.quantize.embedding.weight).abs().max().item()
    their_step = their_tokenizer.quantize.cluster_size - 0.99 * their_usage
    our_step = our_tokenizer.quantize.cluster_size - 0.99 * our_usage
    usage_diff = (their_step - our_step).abs().max().item()
    moved = (our_tokenizer.quantize.embedding.weight - ours.tokenizer.quantize.embedding.weight).abs().max().item()
    _record("codebook after one EMA step", codebook_diff)
    _record("usage increment of one EMA step", usage_diff)
    assert moved > 1e-4
    assert abs(float(our_step.sum()) - 0.01 * images.shape[0] * 196) < 1e-3
    assert codebook_diff <= 1e-5 and usage_diff <= 1e-5
