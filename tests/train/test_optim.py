"""Parameter groups get the learning-rate scales and weight decay the recipes imply; schedules."""

import math

import numpy as np
import pytest
import torch

from beitv2_zoo.models import ARCHITECTURES, Beit, BeitV2Pretrain
from beitv2_zoo.train.optim import layer_id, param_groups
from beitv2_zoo.train.recipes import get_recipe
from beitv2_zoo.train.schedule import warmup_cosine


def _scales(groups: list[dict]) -> dict[str, tuple[float, float]]:
    return {name: (group["lr_scale"], group["weight_decay"]) for group in groups for name in group["names"]}


def test_finetune_recipe_layer_decay_scales():
    recipe = get_recipe("beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k")
    assert recipe.layer_decay == 0.65
    with torch.device("meta"):  # names and shapes only
        model = Beit(**ARCHITECTURES[recipe.model].settings, num_classes=1000)
    scales = _scales(param_groups(model.named_parameters(), recipe.weight_decay, model.no_weight_decay(),
                                  recipe.layer_decay, len(model.blocks)))
    decay = recipe.layer_decay
    assert len(model.blocks) == 12
    # embeddings: 0.65^13; block k: 0.65^(12 - k); final norm and head: 1 (official LayerDecayValueAssigner)
    assert scales["cls_token"] == (pytest.approx(decay**13), 0.0)
    assert scales["patch_embed.proj.weight"] == (pytest.approx(decay**13), 0.05)
    assert scales["patch_embed.proj.bias"] == (pytest.approx(decay**13), 0.0)
    for k in (0, 5, 11):
        assert scales[f"blocks.{k}.attn.qkv.weight"] == (pytest.approx(decay ** (12 - k)), 0.05)
        assert scales[f"blocks.{k}.attn.q_bias"] == (pytest.approx(decay ** (12 - k)), 0.0)
        assert scales[f"blocks.{k}.gamma_1"][1] == 0.0 and scales[f"blocks.{k}.norm1.weight"][1] == 0.0
        # relative position tables are decayed (official and mmpretrain fine-tuning both do)
        assert scales[f"blocks.{k}.attn.relative_position_bias_table"] == (pytest.approx(decay ** (12 - k)), 0.05)
    assert scales["fc_norm.weight"] == (1.0, 0.0)
    assert scales["head.weight"] == (1.0, 0.05) and scales["head.bias"] == (1.0, 0.0)
    assert len(scales) == sum(1 for _ in model.parameters())


def test_pretraining_groups_have_no_layer_decay_and_skip_the_frozen_tokenizer():
    settings = ARCHITECTURES["test_beitv2_mim_tiny"].settings
    model = BeitV2Pretrain(**{**settings, "img_size": 32})
    groups = param_groups(model.named_parameters(), 0.05, model.no_weight_decay())
    scales = _scales(groups)
    assert {s for s, _ in scales.values()} == {1.0}
    assert not any(name.startswith("tokenizer.") for name in scales)
    # official pretraining: mask_token and the shared relative position table are decayed, cls_token is not
    assert scales["mask_token"][1] == 0.05 and scales["rel_pos_bias.relative_position_bias_table"][1] == 0.05
    assert scales["cls_token"][1] == 0.0 and scales["lm_head.bias"][1] == 0.0


def test_layer_id_rules():
    assert [layer_id(n, 12) for n in ("mask_token", "pos_embed", "blocks.3.mlp.fc1.weight", "rel_pos_bias.x", "norm.weight")] \
        == [0, 0, 4, 13, 13]


def official_cosine_scheduler(base, final, epochs, steps_per_epoch, warmup_epochs, start=0.0):
    """The official BEiT v2 ``utils.cosine_scheduler`` as its README and code describe it (reference §3),
    written out with numpy: a ``linspace`` warmup, then a per-step half cosine."""
    warmup_iters = warmup_epochs * steps_per_epoch
    warmup = np.linspace(start, base, warmup_iters) if warmup_iters > 0 else np.array([])
    iters = np.arange(epochs * steps_per_epoch - warmup_iters)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / len(iters)))
    return np.concatenate((warmup, cosine))


@pytest.mark.parametrize("warmup_epochs,steps", [(10, 14), (1, 5), (2, 1), (0, 7)])
def test_official_warmup_style_is_the_official_scheduler(warmup_epochs, steps):
    """Issue 12 item 9: 0.1 gave base·s/W, 7 % of the peak below the official value at W = 14."""
    peak, final, epochs = 1.5e-3, 1e-5, 30
    expected = official_cosine_scheduler(peak, final, epochs, steps, warmup_epochs)
    total, warmup = epochs * steps, warmup_epochs * steps
    ours = [warmup_cosine(s, total, peak, warmup, final, warmup_style="official") for s in range(total)]
    assert np.allclose(ours, expected, rtol=1e-12, atol=0)


def test_mmengine_warmup_style_reaches_the_peak_one_step_later():
    peak, final = 1.5e-3, 1e-5
    assert warmup_cosine(0, 100, peak, 10, final, warmup_style="mmengine") == 0.0
    assert warmup_cosine(0, 100, peak, 10, final, warmup_start_factor=1e-4, warmup_style="mmengine") == pytest.approx(1.5e-7)
    assert warmup_cosine(5, 100, peak, 10, final, warmup_style="mmengine") == pytest.approx(peak / 2)
    assert warmup_cosine(9, 100, peak, 10, final, warmup_style="official") == pytest.approx(peak)
    with pytest.raises(ValueError):
        warmup_cosine(0, 100, peak, 10, final, warmup_style="other")


def test_warmup_cosine_schedule():
    peak, final = 1.5e-3, 1e-5
    assert warmup_cosine(0, 100, peak, 10, final) == 0.0
    assert warmup_cosine(10, 100, peak, 10, final) == pytest.approx(peak)
    assert warmup_cosine(55, 100, peak, 10, final) == pytest.approx(final + (peak - final) / 2)
    assert warmup_cosine(100, 100, peak, 10, final) == pytest.approx(final)
    values = [warmup_cosine(s, 100, peak, 10, final) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert math.isclose(warmup_cosine(0, 100, peak, 0, final), peak)
