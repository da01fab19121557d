"""Fine-tuning: the whole classifier trains, with layer-wise lr decay, Mixup/CutMix and label smoothing."""

from typing import Any

import torch
from torch import nn

from ...models import Beit
from ..augment import ClassifierTrainTransform, EvalSampleTransform, MixupCutmix, eval_preprocessing, soft_target_cross_entropy
from ..config import FinetuneRecipe
from ..data import ImageDataset, split_samples
from ..distributed import DistEnv
from ..evaluate import accuracy_report, classification_counts
from ..models import build_classifier
from ..optim import param_groups
from .base import Batch, TaskSetup


class ClassifierObjective(nn.Module):
    """``(image [B, 3, H, W], target [B, classes] soft labels) → {'loss'}``: soft-target cross-entropy."""

    def __init__(self, classifier: Beit) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, image: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": soft_target_cross_entropy(self.classifier(image), target)}


def classifier_evaluator(num_classes: int, classes: tuple[str, ...]):
    """``(classifier, loader, env) → {'val_top1', 'val_top5'}``."""

    def evaluate(model: nn.Module, loader: Any, env: DistEnv) -> dict[str, float]:
        report = accuracy_report(classification_counts(model, loader, env, num_classes), classes)
        return {"val_top1": report["top1"], "val_top5": report["top5"]}

    return evaluate


def validation_set(recipe: Any) -> ImageDataset | None:
    """The evaluation split, or ``None`` when the data folder has none."""
    from pathlib import Path

    if not recipe.val_ann_file and not (Path(recipe.data_root) / recipe.val_split).is_dir():
        return None
    samples = split_samples(recipe.data_root, recipe.val_split, recipe.val_ann_file)
    return ImageDataset(samples, EvalSampleTransform(eval_preprocessing(recipe)), seed=recipe.seed)


def setup(recipe: FinetuneRecipe, env: DistEnv) -> TaskSetup:
    samples = split_samples(recipe.data_root, recipe.train_split, recipe.ann_file)
    transform = ClassifierTrainTransform(recipe.img_size, recipe.mean, recipe.std, recipe.crop_scale,
                                         recipe.randaug_num_ops, recipe.randaug_magnitude,
                                         recipe.randaug_magnitude_std, recipe.random_erasing, recipe.hflip)
    classifier = build_classifier(recipe)
    mixing = MixupCutmix(recipe.num_classes, recipe.mixup, recipe.cutmix, recipe.mixup_prob,
                         recipe.mixup_switch_prob, recipe.label_smoothing)

    def prepare(batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        images, targets = mixing(batch["image"], batch["label"], generator)
        return {"image": images, "target": targets}

    groups = param_groups(classifier.named_parameters(), recipe.weight_decay, classifier.no_weight_decay(),
                          recipe.layer_decay, len(classifier.blocks))
    return TaskSetup(
        objective=ClassifierObjective(classifier),
        saved=classifier,
        train_set=ImageDataset(samples, transform, seed=recipe.seed),
        val_set=validation_set(recipe),
        param_groups=groups,
        prepare=prepare,
        evaluate=classifier_evaluator(recipe.num_classes, samples.classes),
        classes=samples.classes,
    )
