"""Build each task's model from a recipe, and load weights given as names, files, URLs or runs.

Weight specs (``pretrained``, ``tokenizer``, ``teacher_weights``, ``--weights``):

* a registered name (``beitv2-zoo list``): its published file, downloaded and cached;
* a local file (``.safetensors``, ``.pth``; any layout ``get_model`` reads);
* an ``https://`` URL or an ``hf-hub:org/repo[@rev][/file]`` spec;
* a training run folder (``--work-dir``): its final ``model.safetensors``.

A file written by ``beitv2-zoo train`` has its resolved ``recipe.json`` beside it, which
says how to build the architecture; that is how models of non-registered sizes (the tiny
reproduction models) are rebuilt.
"""

import logging
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import load_state_dict_strict, read_checkpoint
from ..checkpoint import load_weights as load_checkpoint_weights
from ..resolve import RUN_WEIGHTS, load_checkpoint, weights_file
from ..checkpoint.keymaps import StateDict
from ..models import ARCHITECTURES, VQKD, Architecture, Beit, BeitV2Pretrain
from ..weights import get_record, is_model
from .config import FinetuneRecipe, LinearProbeRecipe, MIMRecipe, TrainRecipe, VQKDRecipe, load_recipe_file
from .errors import RecipeError

logger = logging.getLogger(__name__)

FINAL_WEIGHTS = RUN_WEIGHTS
"""The file name of a run's final weights (beside ``recipe.json``)."""


# ----------------------------------------------------------------- weight specs
def resolve_weights(spec: str) -> Path:
    """A local file for a weight spec (a name, file, run folder, URL or ``hf-hub:`` spec; see :mod:`beitv2_zoo.resolve`)."""
    return weights_file(spec).path


def run_recipe(weights: Path) -> TrainRecipe | None:
    """The recipe a ``beitv2-zoo train`` output was made with (``recipe.json`` beside it), if any."""
    beside = weights.with_name("recipe.json")
    return load_recipe_file(beside) if beside.is_file() else None


def load_weights(model: nn.Module, spec: str) -> list[str]:
    """Load a weight spec into ``model`` strictly (layout converted, tables resized, pretraining-only
    tensors dropped, a head of another size re-initialised).

    Returns:
        Model keys left at their fresh values (a re-initialised head).
    """
    checkpoint = load_checkpoint(weights_file(spec))
    left_out = load_checkpoint_weights(model, checkpoint)
    logger.info("loaded %s (%s layout)%s", checkpoint.path, checkpoint.layout,
                f"; fresh: {', '.join(left_out)}" if left_out else "")
    return left_out


# ---------------------------------------------------------------- architectures
def architecture(name: str) -> tuple[Architecture, dict[str, Any]]:
    """An architecture name of ``ARCHITECTURES``, or a registered model name → (architecture, record settings)."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name], {}
    if is_model(name):
        record = get_record(name)
        return ARCHITECTURES[record.architecture], dict(record.model_kwargs)
    raise RecipeError(f"model={name!r} is neither an architecture ({', '.join(sorted(ARCHITECTURES))}) "
                      "nor a registered model name")


def _sizes(recipe: TrainRecipe) -> dict[str, Any]:
    """The recipe's size overrides (0 keeps the architecture's value) and its image size."""
    sizes = {k: getattr(recipe, k) for k in ("patch_size", "embed_dim", "depth", "num_heads") if getattr(recipe, k)}
    return {**sizes, "img_size": recipe.img_size}


def _settings(recipe: TrainRecipe, expected: type[nn.Module]) -> dict[str, Any]:
    arch, extra = architecture(recipe.model)
    if not issubclass(arch.model_class, expected):
        raise RecipeError(f"model={recipe.model!r} builds a {arch.model_class.__name__}; the {recipe.task} task "
                          f"needs a {expected.__name__} architecture")
    return {**arch.settings, **extra, **_sizes(recipe)}


def build_classifier(recipe: FinetuneRecipe | LinearProbeRecipe, load_pretrained: bool = True) -> Beit:
    """The classifier of a fine-tuning or linear-probing recipe, with ``recipe.pretrained`` loaded.

    Linear probing builds it with CLS pooling (``feature='cls'``: the token after the final
    norm) or mean pooling with ``fc_norm`` (``'avg'``).
    """
    settings = _settings(recipe, Beit)
    settings.update(num_classes=recipe.num_classes, drop_path_rate=recipe.drop_path_rate)
    if isinstance(recipe, FinetuneRecipe):
        settings.update(global_pool=recipe.global_pool, init_values=recipe.init_values)
    else:
        settings.update(global_pool="token" if recipe.feature == "cls" else "avg")
    settings.pop("tokenizer", None)
    model = Beit(**settings)
    if load_pretrained and recipe.pretrained:
        load_weights(model, recipe.pretrained)
    return model


def vqkd_settings(recipe: VQKDRecipe, target_dim: int) -> dict[str, Any]:
    """:class:`VQKD` keywords of a tokenizer recipe."""
    settings = _settings(recipe, VQKD)
    settings.update(num_codes=recipe.num_codes, code_dim=recipe.code_dim, decoder_depth=recipe.decoder_depth,
                    target_dim=target_dim, beta=recipe.beta, decay=recipe.codebook_decay, kmeans_init=recipe.kmeans_init)
    return settings


def build_tokenizer(recipe: VQKDRecipe, target_dim: int) -> VQKD:
    """A fresh tokenizer (with decoder) to train."""
    return VQKD(**vqkd_settings(recipe, target_dim))


def load_frozen_tokenizer(spec: str) -> tuple[dict[str, Any], StateDict]:
    """The :class:`VQKD` keywords (encoder and codebook only) and tensors of a trained tokenizer.

    ``spec``: a registered tokenizer name, or a VQ-KD run's ``model.safetensors`` / run folder.
    """
    path = None if is_model(spec) else resolve_weights(spec)
    recipe = run_recipe(path) if path is not None else None
    if isinstance(recipe, VQKDRecipe):
        settings = vqkd_settings(recipe, target_dim=1)
        state = read_checkpoint(path).state_dict
    else:
        from ..api import get_model

        if path is None and not get_record(spec).sources:
            logger.warning("tokenizer %s has no published weights: using a random (untrained) tokenizer", spec)
            tokenizer = get_model(spec)
        else:
            tokenizer = get_model(spec, pretrained=True) if path is None else get_model(path)
        if isinstance(tokenizer, BeitV2Pretrain):
            tokenizer = tokenizer.tokenizer
        if not isinstance(tokenizer, VQKD):
            raise RecipeError(f"tokenizer={spec!r} is not a VQ-KD tokenizer")
        arch, extra = (architecture(spec) if path is None else (ARCHITECTURES["vqkd_base_encoder"], {}))
        settings = {**arch.settings, **extra, "img_size": tokenizer.encoder.patch_embed.img_size}
        state = tokenizer.state_dict()
    settings.update(decoder_depth=0, kmeans_init=False)
    settings.pop("img_size", None)  # BeitV2Pretrain passes its own
    return settings, state


def build_mim(recipe: MIMRecipe) -> BeitV2Pretrain:
    """The pretraining model with its frozen tokenizer loaded from ``recipe.tokenizer``."""
    tokenizer_settings, tokenizer_state = load_frozen_tokenizer(recipe.tokenizer)
    settings = _settings(recipe, BeitV2Pretrain)
    settings.update(tokenizer=tokenizer_settings, vocab_size=tokenizer_settings["num_codes"],
                    drop_path_rate=recipe.drop_path_rate, init_values=recipe.init_values, head_layers=recipe.head_layers)
    if recipe.early_layers:
        settings["early_layers"] = recipe.early_layers
    model = BeitV2Pretrain(**settings)
    assert model.tokenizer is not None
    if tuple(model.tokenizer.grid_size) != tuple(model.patch_embed.grid_size):
        raise RecipeError(f"the tokenizer {recipe.tokenizer!r} makes a {tuple(model.tokenizer.grid_size)} grid of codes, "
                          f"the model a {tuple(model.patch_embed.grid_size)} grid of patches; use the same patch size")
    load_state_dict_strict(model.tokenizer, tokenizer_state, source=f"tokenizer {recipe.tokenizer}")
    model.tokenizer.requires_grad_(False).eval()
    return model


def build_for_recipe(recipe: TrainRecipe) -> nn.Module:
    """The module a run of ``recipe`` saves as ``model.safetensors``, with fresh weights (to load a run into)."""
    if isinstance(recipe, (FinetuneRecipe, LinearProbeRecipe)):
        return build_classifier(recipe, load_pretrained=False)
    raise RecipeError(f"only classifier runs can be rebuilt here; {recipe.name} is a {recipe.task} recipe")
