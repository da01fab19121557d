"""Linear probing: a frozen backbone (always in eval mode, no gradients) and one trained linear head."""

import torch
import torch.nn.functional as F
from torch import nn

from ...models import Beit
from ..augment import CropFlipTransform
from ..config import LinearProbeRecipe
from ..data import ImageDataset, split_samples
from ..distributed import DistEnv
from ..models import build_classifier
from ..optim import param_groups
from .base import Batch, TaskSetup
from .finetune import classifier_evaluator, validation_set


class LinearProbeObjective(nn.Module):
    """``(image, label) → {'loss', 'acc'}``: cross-entropy of the head on the frozen representation."""

    def __init__(self, classifier: Beit) -> None:
        super().__init__()
        self.classifier = classifier
        classifier.requires_grad_(False)
        classifier.head.requires_grad_(True)

    def train(self, mode: bool = True) -> "LinearProbeObjective":
        super().train(mode)
        self.classifier.eval()  # the backbone's dropout / drop path stay off: it is frozen
        return self

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            feature = self.classifier.pool(self.classifier.forward_features(image))
        logits = self.classifier.head(feature.float())
        loss = F.cross_entropy(logits, label)
        return {"loss": loss, "acc": (logits.detach().argmax(-1) == label).float().mean()}


def setup(recipe: LinearProbeRecipe, env: DistEnv) -> TaskSetup:
    samples = split_samples(recipe.data_root, recipe.train_split, recipe.ann_file)
    classifier = build_classifier(recipe)
    objective = LinearProbeObjective(classifier)
    transform = CropFlipTransform(recipe.img_size, recipe.crop_scale, recipe.mean, recipe.std, hflip=recipe.hflip)
    groups = param_groups(classifier.head.named_parameters(prefix="head"), recipe.weight_decay)

    def prepare(batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"image": batch["image"], "label": batch["label"]}

    return TaskSetup(
        objective=objective,
        saved=classifier,
        train_set=ImageDataset(samples, transform, seed=recipe.seed),
        val_set=validation_set(recipe),
        param_groups=groups,
        prepare=prepare,
        evaluate=classifier_evaluator(recipe.num_classes, samples.classes),
        classes=samples.classes,
    )
