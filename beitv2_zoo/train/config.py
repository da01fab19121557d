"""Typed, flat training recipes: the fields every task shares, the fields of each task,
``key=value`` overrides, and the resolved recipe as JSON.

A recipe is one frozen dataclass instance in one file (the published ones under
:mod:`beitv2_zoo.train.recipes`; any other ``.py`` file defining ``RECIPE`` runs by path). In a
published recipe each hyperparameter has one source: it sets only the fields that differ from its
schema's defaults below, or, when it is a variant of another recipe (the 1600-epoch schedule of a
300-epoch one, the large model of a base one), it is ``dataclasses.replace(that_recipe, <what
differs>)`` (``tests/train/test_config.py`` checks both, and the values against the sources).
The five recipe *schemas* share their common fields through :class:`TrainRecipe`. Every field of
the resolved recipe is saved as ``recipe.json`` beside each checkpoint.

Units: ``batch_size`` is per process (per GPU), as in mmpretrain's ``8xb256`` (8 GPUs × 256);
the global batch is ``batch_size × world_size × accum_steps``. ``lr`` is the peak learning rate
for ``base_batch_size`` images per optimizer step and is scaled linearly when the global batch
differs (``0`` turns scaling off). Schedules are in epochs and become optimizer steps once the
data set size is known; ``max_steps > 0`` replaces ``epochs`` with a step count (the iteration-based
segmentation recipes, tests, demos), and ``warmup_steps > 0`` replaces ``warmup_epochs`` likewise.
``schedule`` picks the decay: ``'cosine'`` (:func:`~beitv2_zoo.train.schedule.warmup_cosine`) or
``'poly'`` (:func:`~beitv2_zoo.train.schedule.poly_warmup`, mmcv 1.x's ``PolyLrUpdaterHook``);
``warmup_start_factor`` is the rate at step 0 as a fraction of the peak in both (the poly
schedule's ``warmup_ratio``).
"""

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .errors import RecipeError
from .schedule import SCHEDULES, WARMUP_STYLES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AMP_MODES = ("none", "bf16", "fp16")


@dataclass(frozen=True, kw_only=True)
class TrainRecipe:
    """Fields every task shares. See the module docstring for units."""

    task: ClassVar[str] = ""

    name: str
    # ---- model: an architecture of ``beitv2_zoo.models.ARCHITECTURES`` or a registered model name
    model: str
    img_size: int = 224
    patch_size: int = 0  # 0: the architecture's own value (likewise embed_dim, depth, num_heads)
    embed_dim: int = 0
    depth: int = 0
    num_heads: int = 0
    drop_path_rate: float = 0.0
    grad_checkpointing: bool = False
    # ---- data: ImageFolder under data_root/<split>, or mmpretrain's list file (``ann_file``, relative to data_root)
    data_root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    ann_file: str = ""
    val_ann_file: str = ""
    num_workers: int = 8
    hflip: float = 0.5  # probability of a horizontal flip in training
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # ---- optimisation
    epochs: int = 100
    warmup_epochs: float = 0.0
    max_steps: int = 0
    warmup_steps: int = 0  # > 0: the warmup in optimizer steps, replacing warmup_epochs
    schedule: str = "cosine"  # 'cosine' (warmup_cosine) or 'poly' (poly_warmup, mmcv 1.x)
    poly_power: float = 1.0  # exponent of the 'poly' schedule
    batch_size: int = 64
    accum_steps: int = 1
    base_batch_size: int = 0
    lr: float = 1e-3
    min_lr: float = 0.0
    warmup_start_factor: float = 0.0  # lr at step 0 is lr × this (official: 0; mmpretrain's LinearLR: 1e-4)
    warmup_style: str = "official"  # 'official' (np.linspace: the peak at step W - 1) or 'mmengine' (LinearLR: at step W)
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip_grad: float = 0.0  # max global grad norm; 0: no clipping
    layer_decay: float = 1.0  # layer-wise lr decay; 1: none
    ema_decay: float = 0.0  # model EMA; 0: none
    amp: str = "none"  # 'none', 'bf16' or 'fp16' (fp16 uses a dynamic GradScaler)
    seed: int = 0
    # ---- bookkeeping (may change on resume)
    log_interval: int = 20  # optimizer steps between JSON log lines
    save_interval: int = 1000  # optimizer steps between checkpoints (and one at the end)
    keep_last: int = 3  # checkpoints kept
    eval_interval: int = 0  # optimizer steps between evaluations; 0: at the end only

    def __post_init__(self) -> None:
        _check(self.amp in AMP_MODES, f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        _check(self.warmup_style in WARMUP_STYLES, f"warmup_style must be one of {WARMUP_STYLES}, got {self.warmup_style!r}")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _check(self.warmup_steps >= 0 and self.max_steps >= 0, "warmup_steps and max_steps must be >= 0")
        _check(self.poly_power > 0, f"poly_power must be positive, got {self.poly_power}")
        for key in ("batch_size", "accum_steps", "epochs", "log_interval", "save_interval", "keep_last", "img_size"):
            _check(getattr(self, key) > 0, f"{key} must be positive, got {getattr(self, key)!r}")
        _check(0.0 < self.layer_decay <= 1.0, f"layer_decay must be in (0, 1], got {self.layer_decay}")
        _check(0.0 <= self.ema_decay < 1.0, f"ema_decay must be in [0, 1), got {self.ema_decay}")

    # Fields that may differ between a checkpoint and the run that resumes it.
    RESUMABLE_CHANGES: ClassVar[frozenset[str]] = frozenset(
        {"data_root", "num_workers", "log_interval", "save_interval", "keep_last", "eval_interval", "grad_checkpointing"}
    )


@dataclass(frozen=True, kw_only=True)
class VQKDRecipe(TrainRecipe):
    """VQ-KD tokenizer training: reconstruct a frozen teacher's patch features from codes.

    ``teacher`` is ``'clip:<open_clip model>:<pretrained tag>'`` (needs ``open_clip_torch``, see
    :mod:`beitv2_zoo.train.teachers`) or a BEiT classifier: a registered name, or the
    ``model.safetensors`` of a ``beitv2-zoo train`` run. ``teacher_weights`` chooses a registered
    teacher's weights: ``''`` (its published ones), a file / URL, or ``'random'`` (a fixed
    random-feature network). ``dead_code_restart`` re-seeds, at each epoch's end, every code no
    image chose during the epoch with an encoder output of the next batch (the official code
    leaves such codes dead; users report thousands of unused codes, microsoft/unilm#936, #1556).
    """

    task: ClassVar[str] = "vqkd"
    teacher: str = "clip:ViT-B-16:openai"
    teacher_weights: str = ""
    num_codes: int = 8192
    code_dim: int = 32
    decoder_depth: int = 3
    beta: float = 1.0
    codebook_decay: float = 0.99
    kmeans_init: bool = True
    dead_code_restart: bool = False  # re-seed codes unused for a whole epoch (not in the official recipe)
    crop_scale: tuple[float, float] = (0.08, 1.0)
    color_jitter: float = 0.0


@dataclass(frozen=True, kw_only=True)
class MIMRecipe(TrainRecipe):
    """BEiT v2 masked image modeling: predict the frozen tokenizer's codes of masked patches.

    ``tokenizer`` is a registered tokenizer name, or the ``model.safetensors`` of a VQ-KD run
    (its ``recipe.json`` beside it gives the architecture). ``early_layers = 0`` takes the
    architecture's value.
    """

    task: ClassVar[str] = "mim"
    tokenizer: str = "vqkd_encoder_base_decoder_3x768x12_clip"
    early_layers: int = 0
    head_layers: int = 2
    init_values: float = 0.1
    num_mask_patches: int = 75
    min_mask_patches: int = 16
    max_mask_patches: int = 0  # 0: num_mask_patches (no cap per block)
    crop_scale: tuple[float, float] = (0.2, 1.0)
    color_jitter: float = 0.4


@dataclass(frozen=True, kw_only=True)
class FinetuneRecipe(TrainRecipe):
    """Supervised fine-tuning of a classifier (layer decay, Mixup/CutMix, RandAugment, erasing).

    ``pretrained``: ``''`` (random initialisation), a registered name (its published file),
    a local file, an ``https://`` URL or an ``hf-hub:`` spec. A masked-image-modeling
    checkpoint loses its pretraining-only tensors; its shared relative position bias is
    copied into every block (the official fine-tuning rule).
    """

    task: ClassVar[str] = "finetune"
    pretrained: str = ""
    num_classes: int = 1000
    global_pool: str = "avg"
    init_values: float = 0.1
    label_smoothing: float = 0.1
    mixup: float = 0.8  # Beta(α, α) of Mixup; 0: off
    cutmix: float = 1.0  # Beta(α, α) of CutMix; 0: off
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5  # probability of CutMix when both are on
    randaug_num_ops: int = 2
    randaug_magnitude: float = 9.0  # 0..10, timm's scale
    randaug_magnitude_std: float = 0.5
    random_erasing: float = 0.25
    crop_scale: tuple[float, float] = (0.08, 1.0)
    eval_resize: int = 256


@dataclass(frozen=True, kw_only=True)
class LinearProbeRecipe(TrainRecipe):
    """Linear probing: a frozen backbone, one linear head on a global representation.

    ``feature='cls'`` is the CLS token after the final norm (the paper's representation for
    patch-aggregated models); ``'avg'`` the mean of the patch tokens after ``fc_norm``
    (the paper's choice for models without patch aggregation).
    """

    task: ClassVar[str] = "linear_probe"
    pretrained: str = ""
    num_classes: int = 1000
    feature: str = "cls"
    crop_scale: tuple[float, float] = (0.08, 1.0)
    eval_resize: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.feature in ("cls", "avg"), f"feature must be 'cls' or 'avg', got {self.feature!r}")


@dataclass(frozen=True, kw_only=True)
class SegmentationRecipe(TrainRecipe):
    """Semantic segmentation: a BEiT backbone with the UPerNet decode and FCN auxiliary heads
    (:class:`~beitv2_zoo.models.segmentation.BeitSegmenter`), trained iteration by iteration.

    The defaults are the official BEiT v2 ADE20K configs (``reference/segmentation_ade20k.md`` §5):
    ADE20K's layout under ``data_root`` (``images/<split>/*.jpg`` with ``annotations/<split>/*.png``),
    ``reduce_zero_label``; training crops: a random resize to ``ratio_range`` × ``scale`` keeping the
    aspect ratio, a random ``crop_size`` crop in which no class covers more than ``cat_max_ratio`` (up
    to 10 tries), a horizontal flip (``hflip``), the photometric distortion, normalisation and padding
    to the crop (image 0, label ``ignore_index``). The loss is cross-entropy over every pixel of the
    decode head plus ``aux_weight`` × the auxiliary head's; the poly schedule with a 1500-step warmup.

    ``pretrained``: ``''`` (random), a registered classifier / pretraining / segmenter name (its
    published file), a local file, a URL, or a run folder; the backbone's tables are resized to the
    crop, and the adapter and heads start fresh unless the file is a segmenter's. The model is built
    at ``crop_size`` (``img_size`` is not used by this task). The evaluation during training is the
    mIoU of a whole-image pass at the crop size (each validation image resized to fit in
    ``crop_size`` × ``crop_size``, padded): a cheap monitor, not the published protocol (slide
    inference at ``scale``, ``beitv2-zoo test``).
    """

    task: ClassVar[str] = "segmentation"
    pretrained: str = ""
    num_classes: int = 150
    label_set: str = ""  # class names stored with the weights ('ade20k', 'digits-canvas', …); '': ADE20K's at 150 classes
    decode_channels: int = 0  # width of the UPerNet decode head; 0: the architecture's
    aux_channels: int = 0  # width of the auxiliary FCN head; 0: the architecture's
    crop_size: int = 512
    scale: tuple[int, int] = (2048, 512)  # (long, short) bound of the keep-ratio resize, before ratio_range
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75  # 1: any crop
    photometric: bool = True  # brightness ±32, contrast / saturation 0.5–1.5, hue ±18, random order
    reduce_zero_label: bool = True  # label 0 ('other') → ignore_index, k → k - 1
    ignore_index: int = 255
    aux_weight: float = 0.4  # 0: no auxiliary loss
    train_split: str = "training"
    val_split: str = "validation"
    schedule: str = "poly"
    warmup_steps: int = 1500
    warmup_start_factor: float = 1e-6
    max_steps: int = 160000

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.crop_size > 0, f"crop_size must be positive, got {self.crop_size}")
        _check(self.decode_channels >= 0 and self.aux_channels >= 0,
               f"decode_channels and aux_channels must be positive (0: the architecture's), "
               f"got {self.decode_channels} and {self.aux_channels}")
        _check(0.0 < self.ratio_range[0] <= self.ratio_range[1], f"ratio_range must be 0 < low <= high, got {self.ratio_range}")
        _check(0.0 < self.cat_max_ratio <= 1.0, f"cat_max_ratio must be in (0, 1], got {self.cat_max_ratio}")
        _check(0 <= self.ignore_index <= 255, f"ignore_index must be a uint8 label value, got {self.ignore_index}")
        _check(0 < self.num_classes <= self.ignore_index,
               f"num_classes {self.num_classes} must lie below ignore_index {self.ignore_index}")


RECIPE_CLASSES: dict[str, type[TrainRecipe]] = {
    cls.task: cls for cls in (VQKDRecipe, MIMRecipe, FinetuneRecipe, LinearProbeRecipe, SegmentationRecipe)}
"""Recipe schema of each task."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise RecipeError(message)


# ----------------------------------------------------------------- overrides
def apply_overrides(recipe: TrainRecipe, overrides: list[str] | dict[str, Any]) -> TrainRecipe:
    """``recipe`` with ``key=value`` strings (or a dict of typed values) applied.

    Raises:
        RecipeError: an unknown key (with the closest field names), a malformed item, or a
            value that does not parse as the field's type.
    """
    fields = {f.name: f for f in dataclasses.fields(recipe)}
    items = overrides.items() if isinstance(overrides, dict) else (_split(item) for item in overrides)
    changes: dict[str, Any] = {}
    hints = typing.get_type_hints(type(recipe))
    for key, value in items:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(close)}?" if close else f"; valid keys: {', '.join(sorted(fields))}"
            raise RecipeError(f"unknown recipe key {key!r} for {recipe.name} ({recipe.task}){hint}")
        changes[key] = parse_value(key, value, hints[key]) if isinstance(value, str) else _coerce(key, value, hints[key])
    return dataclasses.replace(recipe, **changes)


def _split(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"override {item!r} is not of the form key=value (e.g. lr=1e-3)")
    return key.strip(), value.strip()


def parse_value(key: str, text: str, kind: Any) -> Any:
    """Parse ``text`` as ``kind`` (``int``, ``float``, ``bool``, ``str`` or a tuple of those)."""
    if typing.get_origin(kind) is tuple:
        parts = [p for p in text.strip("()[] ").replace(",", " ").split() if p]
        inner = typing.get_args(kind)
        if len(parts) != len(inner):
            raise RecipeError(f"{key} takes {len(inner)} comma-separated values (e.g. {key}=" +
                              ",".join("0.9" for _ in inner) + f"), got {text!r}")
        return tuple(parse_value(key, p, t) for p, t in zip(parts, inner))
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
    except ValueError:
        pass
    raise RecipeError(f"{key} must be {_type_name(kind)}, got {text!r}")


def _coerce(key: str, value: Any, kind: Any) -> Any:
    """Check (and lightly convert) a typed value, e.g. from a JSON file."""
    if typing.get_origin(kind) is tuple:
        inner = typing.get_args(kind)
        if not isinstance(value, (list, tuple)) or len(value) != len(inner):
            raise RecipeError(f"{key} must be {_type_name(kind)}, got {value!r}")
        return tuple(_coerce(key, v, t) for v, t in zip(value, inner))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (int, float, str, bool) and (type(value) is not kind):
        raise RecipeError(f"{key} must be {_type_name(kind)}, got {value!r}")
    return value


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return "a tuple of " + ", ".join(_type_name(t) for t in typing.get_args(kind))
    if isinstance(kind, types.UnionType):
        return " or ".join(_type_name(t) for t in typing.get_args(kind))
    return {int: "an int", float: "a float", bool: "a bool (true/false)", str: "a string"}.get(kind, str(kind))


# ---------------------------------------------------------------------- JSON
def recipe_to_dict(recipe: TrainRecipe) -> dict[str, Any]:
    """The resolved recipe as plain JSON values, with its ``task``."""
    return {"task": recipe.task, **{k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(recipe).items()}}


def recipe_from_dict(values: dict[str, Any]) -> TrainRecipe:
    """Inverse of :func:`recipe_to_dict`; unknown keys are an error."""
    values = dict(values)
    task = values.pop("task", None)
    if task not in RECIPE_CLASSES:
        raise RecipeError(f"recipe JSON has task {task!r}; expected one of {', '.join(RECIPE_CLASSES)}")
    cls = RECIPE_CLASSES[task]
    for required in ("name", "model"):
        if required not in values:
            raise RecipeError(f"recipe JSON lacks {required!r}")
    base = cls(name=values.pop("name"), model=values.pop("model"))
    return apply_overrides(base, values)


def save_recipe(recipe: TrainRecipe, path: str | Path) -> None:
    """Write the resolved recipe as indented JSON."""
    Path(path).write_text(json.dumps(recipe_to_dict(recipe), indent=2) + "\n", encoding="utf-8")


def load_recipe_file(path: str | Path) -> TrainRecipe:
    """Read a recipe JSON written by :func:`save_recipe`."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise RecipeError(f"cannot read recipe {path}: {error}") from None
    return recipe_from_dict(values)
