"""Recipes: only the published ones ship, each hyperparameter has one source and equals the
reference's, recipe files outside the package run by path, overrides are typed."""

import ast
import dataclasses
import importlib
from pathlib import Path

import pytest

from beitv2_zoo.train.config import (FinetuneRecipe, apply_overrides, recipe_from_dict, recipe_to_dict,
                                     save_recipe, load_recipe_file)
from beitv2_zoo.train.errors import RecipeError
from beitv2_zoo.train.recipes import get_recipe, list_recipes, module_name

from .conftest import RECIPES, TINY_FINETUNE

REPO = Path(__file__).resolve().parents[2]
DEMO_RECIPES = REPO / "examples" / "reproduction" / "recipes"

_MIM_300E = dict(  # reference/mmpretrain_beitv2.md §2.1 (mmpretrain's config, fully resolved)
    img_size=224, tokenizer="vqkd_encoder", early_layers=9, head_layers=2, init_values=0.1, drop_path_rate=0.0,
    num_mask_patches=75, min_mask_patches=16, max_mask_patches=75, crop_scale=(0.2, 1.0), color_jitter=0.4,
    epochs=300, warmup_epochs=10, warmup_start_factor=1e-4, batch_size=256, base_batch_size=2048, lr=1.5e-3,
    min_lr=1e-5, weight_decay=0.05, betas=(0.9, 0.98), eps=1e-8, clip_grad=3.0, layer_decay=1.0, amp="fp16",
    keep_last=3, seed=0)
_LARGE_MIM_300E = dict(  # reference/official_beitv2_timm.md §3.2: the large command, 300-epoch settings
    _MIM_300E, tokenizer="vqkd_encoder_base_decoder_3x768x12_clip", early_layers=21, init_values=1e-5,
    batch_size=32, warmup_start_factor=0.0)
_LONG = dict(epochs=1600, drop_path_rate=0.1, betas=(0.9, 0.999))  # both references: "0.999 / 0.1 for 1600 epochs"
_FINETUNE = dict(  # reference/mmpretrain_beitv2.md §2.2
    img_size=224, pretrained="beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k", num_classes=1000, global_pool="avg",
    drop_path_rate=0.1, label_smoothing=0.1, mixup=0.8, cutmix=1.0, randaug_num_ops=2, randaug_magnitude=9.0,
    randaug_magnitude_std=0.5, random_erasing=0.25, crop_scale=(0.08, 1.0), eval_resize=256, epochs=100,
    warmup_epochs=20, warmup_start_factor=1e-4, batch_size=128, base_batch_size=1024, lr=5e-4, min_lr=1e-6,
    weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8, layer_decay=0.65, clip_grad=0.0, amp="none", num_workers=5,
    keep_last=2, seed=0)
_LARGE_FINETUNE = dict(  # reference/official_beitv2_timm.md §3.3, "large, from pt": warmup not stated, default 5 from 0
    {k: v for k, v in _FINETUNE.items() if k not in ("amp", "num_workers")},  # mmpretrain's own run settings
    pretrained="beitv2_large_patch16_224_pt1k", init_values=1e-5, drop_path_rate=0.2, epochs=50,
    warmup_epochs=5, warmup_start_factor=0.0, lr=2e-4, layer_decay=0.8)
_LINEAR = dict(  # reference/official_beitv2_timm.md §3.4: the paper's [CLS] token, BEiT v1's run_linear_eval.py
    pretrained="beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k", feature="cls", epochs=100, warmup_epochs=0,
    batch_size=128, base_batch_size=1024, lr=4e-3, min_lr=0.0, weight_decay=1e-4, crop_scale=(0.08, 1.0),
    eval_resize=256)
_SEG_BASE = dict(  # beit2/semantic_segmentation/configs/beit/upernet/upernet_beit_base_12_512_slide_160k_ade20k.py
    model="beit_base_patch16_upernet", pretrained="beitv2_base_patch16_224_pt1k", num_classes=150, crop_size=512,
    scale=(2048, 512), ratio_range=(0.5, 2.0), cat_max_ratio=0.75, photometric=True, hflip=0.5,
    reduce_zero_label=True, ignore_index=255, aux_weight=0.4, train_split="training", val_split="validation",
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), drop_path_rate=0.15, batch_size=2, base_batch_size=16,
    lr=5e-5, betas=(0.9, 0.999), weight_decay=0.05, layer_decay=0.75, clip_grad=0.0, schedule="poly", poly_power=1.0,
    min_lr=0.0, warmup_steps=1500, warmup_start_factor=1e-6, max_steps=160000, amp="fp16", num_workers=4,
    log_interval=50, save_interval=16000, eval_interval=16000, seed=0)
_SEG_LARGE = dict(_SEG_BASE, model="beit_large_patch16_upernet", pretrained="beitv2_large_patch16_224_pt1k",
                  drop_path_rate=0.2, lr=4e-5, layer_decay=0.9)
REFERENCE: dict[str, dict] = {
    "upernet_beit_base_12_512_slide_160k_ade20k": _SEG_BASE,
    "upernet_beit_base_12_512_slide_160k_21ktoade20k": dict(  # and the README's command: the pt1k_ft21k weights
        _SEG_BASE, pretrained="beitv2_base_patch16_224_pt1k_ft21k", layer_decay=0.85),
    "upernet_beit_large_24_512_slide_160k_ade20k": _SEG_LARGE,
    "upernet_beit_large_24_512_slide_160k_21ktoade20k": dict(
        _SEG_LARGE, pretrained="beitv2_large_patch16_224_pt1k_ft21k", lr=3e-5),
    "beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k": _MIM_300E,
    "beitv2_beit-base-p16_8xb256-amp-coslr-1600e_in1k": dict(_MIM_300E, **_LONG),  # mmpretrain_beitv2.md §1.3
    "beitv2_beit-large-p16_64xb32-amp-coslr-300e_in1k": _LARGE_MIM_300E,
    "beitv2_beit-large-p16_64xb32-amp-coslr-1600e_in1k": dict(_LARGE_MIM_300E, **_LONG),
    "beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k": _FINETUNE,
    "beit-large-p16_beitv2-pre_8xb128-coslr-50e_in1k": _LARGE_FINETUNE,
    "beit-base-p16_beitv2-pre_8xb128-linear-coslr-100e_in1k": _LINEAR,
    "beit-large-p16_beitv2-pre_8xb128-linear-coslr-100e_in1k": dict(_LINEAR, pretrained="beitv2_large_patch16_224_pt1k"),
    "vqkd_encoder_base_decoder_3x768x12_clip": dict(  # reference/official_beitv2_timm.md §3.1
        img_size=224, teacher="clip:ViT-B-16:openai", num_codes=8192, code_dim=32, decoder_depth=3, beta=1.0,
        codebook_decay=0.99, kmeans_init=True, crop_scale=(0.08, 1.0), color_jitter=0.0, mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0), epochs=100, warmup_epochs=10, warmup_start_factor=0.0, batch_size=64, lr=2e-4,
        base_batch_size=512, min_lr=1e-5, weight_decay=1e-4, betas=(0.9, 0.99), eps=1e-8, clip_grad=0.0, amp="fp16"),
}
"""Per published recipe, the values its source states (the global batch is 8 GPUs × batch_size, 64 × for large MIM)."""


def test_only_the_published_recipes_ship_and_each_round_trips_through_json(tmp_path):
    names = list_recipes()
    assert set(names) == set(REFERENCE)
    for name in names:
        recipe = get_recipe(name)
        assert recipe.name == name and module_name(name) == module_name(recipe.name)
        assert recipe_from_dict(recipe_to_dict(recipe)) == recipe
        assert type(recipe).__doc__ and get_recipe(module_name(name)) == recipe
    path = tmp_path / "recipe.json"
    save_recipe(get_recipe(names[0]), path)
    assert load_recipe_file(path) == get_recipe(names[0]) == get_recipe(str(path))


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_recipe_values_are_the_sources(name):
    recipe = get_recipe(name)
    assert {key: getattr(recipe, key) for key in REFERENCE[name]} == REFERENCE[name]


def test_the_long_schedule_changes_only_its_three_values():
    for short, long in (("beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k", "beitv2_beit-base-p16_8xb256-amp-coslr-1600e_in1k"),
                        ("beitv2_beit-large-p16_64xb32-amp-coslr-300e_in1k", "beitv2_beit-large-p16_64xb32-amp-coslr-1600e_in1k")):
        a, b = get_recipe(short), get_recipe(long)
        assert {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)} == {
            "name", "epochs", "drop_path_rate", "betas"}


def _stated_values(name: str) -> tuple[object, dict]:
    """(what the recipe's ``RECIPE = …`` call starts from, the keyword values it states)."""
    module = importlib.import_module(f"beitv2_zoo.train.recipes.{module_name(name)}")
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    call = next(node.value for node in tree.body
                if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["RECIPE"])
    recipe = module.RECIPE
    if isinstance(call.func, ast.Attribute) and call.func.attr == "replace":  # dataclasses.replace(OTHER, ...)
        start = getattr(module, call.args[0].id)
    else:  # SomeRecipe(...): the schema's defaults
        start = type(recipe)(name=recipe.name, model=recipe.model)
    stated: dict = {}
    for keyword in call.keywords:
        stated.update({keyword.arg: ast.literal_eval(keyword.value)} if keyword.arg
                      else getattr(module, keyword.value.id))  # **LONG_SCHEDULE
    return start, stated


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_a_recipe_states_only_what_differs_from_its_schema_or_base(name):
    start, stated = _stated_values(name)
    restated = {key for key, value in stated.items() if key not in ("name", "model") and getattr(start, key) == value}
    assert not restated, f"{name} restates {sorted(restated)}: leave them to {type(start).__name__}'s defaults or its base"


def test_recipe_files_outside_the_package_run_by_path(tmp_path):
    demo = {get_recipe(path).name: path for path in sorted(DEMO_RECIPES.glob("*.py"))}
    assert set(demo) == {"tiny-p4_digits_teacher", "tiny-p4_digits_vqkd", "tiny-p4_digits_mim",
                         "tiny-p4_digits_finetune", "tiny-p4_digits_linear-probe"}
    assert all(module_name(name) == path.stem for name, path in demo.items())
    tests = {get_recipe(path).name for path in RECIPES.glob("*.py")}
    assert tests == {"tiny_vqkd", "tiny_mim", "tiny_finetune", "tiny_linear_probe", "tiny_seg"}
    assert not (set(demo) | tests) & set(list_recipes())
    mine = tmp_path / "my_recipe.py"
    mine.write_text("import dataclasses\nfrom beitv2_zoo.train.recipes import get_recipe\n"
                    "RECIPE = dataclasses.replace(get_recipe('beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k'), "
                    "name='mine', lr=1e-4)\n")
    assert get_recipe(mine) == get_recipe(str(mine)) and (get_recipe(mine).name, get_recipe(mine).lr) == ("mine", 1e-4)
    with pytest.raises(RecipeError, match="does not exist"):
        get_recipe(tmp_path / "missing.py")
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(RecipeError, match="defines no RECIPE"):
        get_recipe(tmp_path / "empty.py")


def test_overrides_are_typed_and_unknown_keys_rejected():
    recipe = get_recipe(TINY_FINETUNE)
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
    with pytest.raises(RecipeError, match="Closest: beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k"):
        get_recipe("beitv2_beit-base-p16_8xb256-amp-coslr-300e")
