"""Recipes: every file loads, names follow mmpretrain's, values are the sources', overrides are typed."""

import dataclasses

import pytest

from beitv2_zoo.train.config import (FinetuneRecipe, apply_overrides, recipe_from_dict, recipe_to_dict,
                                     save_recipe, load_recipe_file)
from beitv2_zoo.train.errors import RecipeError
from beitv2_zoo.train.recipes import get_recipe, list_recipes, module_name

MMPRETRAIN_NAMES = (
    "beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k",
    "beitv2_beit-base-p16_8xb256-amp-coslr-1600e_in1k",
    "beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k",
)


def test_every_recipe_loads_and_round_trips_through_json(tmp_path):
    names = list_recipes()
    assert set(MMPRETRAIN_NAMES) | {"vqkd_encoder_base_decoder_3x768x12_clip"} <= set(names)
    for name in names:
        recipe = get_recipe(name)
        assert recipe.name == name and module_name(name) == module_name(recipe.name)
        assert recipe_from_dict(recipe_to_dict(recipe)) == recipe
        assert type(recipe).__doc__ and get_recipe(module_name(name)) == recipe
    path = tmp_path / "recipe.json"
    save_recipe(get_recipe(names[0]), path)
    assert load_recipe_file(path) == get_recipe(names[0]) == get_recipe(str(path))


def test_recipe_values_are_the_sources():
    ft = get_recipe("beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k")
    assert (ft.lr, ft.layer_decay, ft.mixup, ft.cutmix, ft.label_smoothing) == (5e-4, 0.65, 0.8, 1.0, 0.1)
    assert (ft.randaug_num_ops, ft.randaug_magnitude, ft.randaug_magnitude_std, ft.random_erasing) == (2, 9.0, 0.5, 0.25)
    assert (ft.drop_path_rate, ft.warmup_epochs, ft.epochs, ft.min_lr, ft.batch_size) == (0.1, 20, 100, 1e-6, 128)
    mim = get_recipe("beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k")
    assert (mim.lr, mim.betas, mim.weight_decay, mim.clip_grad, mim.amp) == (1.5e-3, (0.9, 0.98), 0.05, 3.0, "fp16")
    assert (mim.num_mask_patches, mim.min_mask_patches, mim.crop_scale, mim.early_layers) == (75, 16, (0.2, 1.0), 9)
    long = get_recipe("beitv2_beit-base-p16_8xb256-amp-coslr-1600e_in1k")
    assert {f.name for f in dataclasses.fields(mim) if getattr(mim, f.name) != getattr(long, f.name)} == {
        "name", "epochs", "drop_path_rate", "betas"}
    vqkd = get_recipe("vqkd_encoder_base_decoder_3x768x12_clip")
    assert (vqkd.num_codes, vqkd.code_dim, vqkd.decoder_depth, vqkd.lr * 512 / vqkd.base_batch_size) == (8192, 32, 3, 2e-4)


def test_overrides_are_typed_and_unknown_keys_rejected():
    recipe = get_recipe("test_tiny_finetune")
    changed = apply_overrides(recipe, ["lr=1e-3", "betas=0.9,0.95", "mixup=0", "grad_checkpointing=true", "amp=bf16"])
    assert (changed.lr, changed.betas, changed.mixup, changed.grad_checkpointing, changed.amp) == (
        1e-3, (0.9, 0.95), 0.0, True, "bf16")
    assert isinstance(changed, FinetuneRecipe) and recipe.lr != 1e-3  # recipes are immutable
    with pytest.raises(RecipeError, match="did you mean lr"):
        apply_overrides(recipe, ["lrr=1"])
    with pytest.raises(RecipeError, match="batch_size must be an int"):
        apply_overrides(recipe, ["batch_size=1.5"])
    with pytest.raises(RecipeError, match="takes 2 comma-separated values"):
        apply_overrides(recipe, ["betas=0.9"])
    with pytest.raises(RecipeError, match="key=value"):
        apply_overrides(recipe, ["lr"])
    with pytest.raises(RecipeError, match="amp must be one of"):
        apply_overrides(recipe, ["amp=fp8"])
    with pytest.raises(RecipeError, match="Closest: test_tiny_finetune"):
        get_recipe("test_tiny_finetun")
