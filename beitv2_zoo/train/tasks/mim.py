"""BEiT v2 masked image modeling against a frozen VQ-KD tokenizer (the tokenizer lives in the model,
frozen and in eval mode; see :class:`~beitv2_zoo.models.BeitV2Pretrain`)."""

from typing import Any

import torch
from torch import nn

from ...models import BeitV2Pretrain
from ..augment import MIMTransform
from ..config import MIMRecipe
from ..data import ImageDataset, split_samples, to_device
from ..distributed import DistEnv, all_reduce_sum
from ..models import build_mim
from ..objectives import mim_loss
from ..optim import param_groups
from .base import Batch, TaskSetup


class MIMObjective(nn.Module):
    """``(image, target_image, mask) → {'loss', 'loss_1', 'loss_2', 'mlm_acc_1', 'mlm_acc_2'}``."""

    def __init__(self, model: BeitV2Pretrain) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, target_image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return mim_loss(self.model, image, target_image, mask)


@torch.no_grad()
def evaluate_mim(model: nn.Module, loader: Any, env: DistEnv) -> dict[str, float]:
    """Masked-token accuracy and loss on held-out images (fixed masks and crops)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=env.device)  # masked patches, loss·n, acc_1·n, acc_2·n
    for batch in loader:
        batch = to_device(batch, env.device)
        out = mim_loss(model, batch["image"], batch["target_image"], batch["mask"])
        n = float(batch["mask"].sum())
        sums += torch.tensor([n, float(out["loss"]) * n, float(out["mlm_acc_1"]) * n, float(out["mlm_acc_2"]) * n],
                             dtype=torch.float64, device=env.device)
    model.train(was_training)
    n, loss, acc_1, acc_2 = all_reduce_sum(sums, env).tolist()
    return {"val_loss": loss / max(n, 1.0), "val_mlm_acc_1": 100.0 * acc_1 / max(n, 1.0),
            "val_mlm_acc_2": 100.0 * acc_2 / max(n, 1.0)}


def setup(recipe: MIMRecipe, env: DistEnv) -> TaskSetup:
    model = build_mim(recipe)
    patch = model.patch_embed.patch_size
    patch = patch[0] if isinstance(patch, (tuple, list)) else patch
    transform = MIMTransform(recipe.img_size, recipe.img_size, patch, recipe.mean, recipe.std, recipe.crop_scale,
                             recipe.color_jitter, recipe.num_mask_patches, recipe.min_mask_patches,
                             recipe.max_mask_patches or None, recipe.hflip)
    samples = split_samples(recipe.data_root, recipe.train_split, recipe.ann_file)
    val_set = None
    from pathlib import Path

    if recipe.val_ann_file or (Path(recipe.data_root) / recipe.val_split).is_dir():
        val_set = ImageDataset(split_samples(recipe.data_root, recipe.val_split, recipe.val_ann_file), transform,
                               seed=recipe.seed + 1)

    def prepare(batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"image": batch["image"], "target_image": batch["target_image"], "mask": batch["mask"]}

    return TaskSetup(
        objective=MIMObjective(model),
        saved=model,
        train_set=ImageDataset(samples, transform, seed=recipe.seed),
        val_set=val_set,
        param_groups=param_groups(model.named_parameters(), recipe.weight_decay, model.no_weight_decay()),
        prepare=prepare,
        evaluate=evaluate_mim,
    )
