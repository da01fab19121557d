"""VQ-KD tokenizer training: encoder → EMA codebook → decoder reconstructs a frozen teacher's patch features."""

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ...models import VQKD
from ..augment import CropFlipTransform
from ..config import VQKDRecipe
from ..data import ImageDataset, split_samples, to_device
from ..distributed import DistEnv, all_reduce_sum
from ..models import build_tokenizer
from ..objectives import vqkd_loss
from ..optim import param_groups
from ..teachers import Teacher, build_teacher
from .base import Batch, TaskSetup


class VQKDObjective(nn.Module):
    """``(image in [0, 1]) → {'loss', 'rec_loss', 'quant_loss'}``; the teacher is frozen."""

    def __init__(self, tokenizer: VQKD, teacher: Teacher) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.teacher = teacher

    def train(self, mode: bool = True) -> "VQKDObjective":
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        targets = self.teacher(image, self.tokenizer.grid_size)
        out = vqkd_loss(self.tokenizer, image, targets)
        return {"loss": out["loss"], "rec_loss": out["rec_loss"], "quant_loss": out["quant_loss"]}


class DeadCodeRestart:
    """Re-seed the codes that no vector chose during an epoch (``cluster_size == 0`` at its end).

    At the end of each epoch (before the usage statistic is reset) the unused codes are
    marked; the next training-mode call of the quantizer replaces each with a random one of
    its input vectors (l2-normalised encoder outputs), drawn on rank 0 and broadcast, so every
    rank keeps the same codebook. The choice uses torch's generator, which checkpoints save:
    a resumed run restarts the same codes with the same vectors.
    """

    def __init__(self, tokenizer: VQKD) -> None:
        self.quantize = tokenizer.quantize
        self.dead: torch.Tensor | None = None
        self.restarted = 0
        self.quantize.register_forward_pre_hook(self._replace)

    def epoch_end(self) -> None:
        dead = self.quantize.cluster_size == 0
        self.dead = dead.clone() if self.quantize.embedding.is_initialised() and bool(dead.any()) else None

    @torch.no_grad()
    def _replace(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if self.dead is None or not module.training:
            return
        z = args[0].detach().float()
        vectors = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), dim=-1)
        count = int(self.dead.sum())
        new = vectors[torch.randint(0, vectors.shape[0], (count,), device=vectors.device)]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast(new, src=0)
        self.quantize.embedding.weight.data[self.dead.to(new.device)] = new.to(self.quantize.embedding.weight.dtype)
        self.restarted, self.dead = count, None


def codebook_usage(tokenizer: VQKD) -> dict[str, float]:
    """Share of codes chosen at least once since the last reset (the official ``Unused_code`` count, as a fraction)."""
    quantize = tokenizer.quantize
    return {"codebook_usage": 1.0 - quantize.unused_codes() / quantize.num_codes}


def vqkd_evaluator(teacher: Teacher):
    """``(tokenizer, loader, env) → {'val_rec_loss', 'val_codebook_usage'}`` on held-out images, in eval mode."""

    @torch.no_grad()
    def evaluate(tokenizer: nn.Module, loader: Any, env: DistEnv) -> dict[str, float]:
        was_training = tokenizer.training
        tokenizer.eval()
        num_codes = tokenizer.quantize.num_codes
        hits = torch.zeros(num_codes, dtype=torch.float64, device=env.device)
        rec = torch.zeros(2, dtype=torch.float64, device=env.device)
        for batch in loader:
            image = to_device(batch, env.device)["image"]
            quantized, _, ids = tokenizer.quantize_images(image)
            targets = teacher(image, tokenizer.grid_size)
            cosine = F.cosine_similarity(tokenizer.decode(quantized).float(), targets.float(), dim=-1)
            rec += torch.tensor([float((1.0 - cosine).sum()), cosine.numel()], dtype=torch.float64, device=env.device)
            hits += torch.bincount(ids.flatten(), minlength=num_codes).double()
        tokenizer.train(was_training)
        hits, rec = all_reduce_sum(hits, env), all_reduce_sum(rec, env)
        return {"val_rec_loss": float(rec[0] / rec[1].clamp(min=1)),
                "val_codebook_usage": float((hits > 0).double().mean())}

    return evaluate


def setup(recipe: VQKDRecipe, env: DistEnv) -> TaskSetup:
    teacher = build_teacher(recipe.teacher, recipe.teacher_weights, recipe.img_size).to(env.device)
    tokenizer = build_tokenizer(recipe, teacher.out_dim)
    transform = CropFlipTransform(recipe.img_size, recipe.crop_scale, color_jitter=recipe.color_jitter, hflip=recipe.hflip)  # [0, 1]
    samples = split_samples(recipe.data_root, recipe.train_split, recipe.ann_file)
    val_set = None
    from pathlib import Path

    if recipe.val_ann_file or (Path(recipe.data_root) / recipe.val_split).is_dir():
        from ...weights.schema import Preprocessing
        from ..augment import EvalSampleTransform

        prep = Preprocessing(resize_size=recipe.img_size, crop_size=recipe.img_size, mean=(0.0,) * 3, std=(1.0,) * 3)
        if recipe.img_size == 224:
            prep = Preprocessing(resize_size=256, crop_size=224, mean=(0.0,) * 3, std=(1.0,) * 3)  # official val transform
        val_set = ImageDataset(split_samples(recipe.data_root, recipe.val_split, recipe.val_ann_file),
                               EvalSampleTransform(prep), seed=recipe.seed)

    def prepare(batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"image": batch["image"]}

    restart = DeadCodeRestart(tokenizer) if recipe.dead_code_restart else None

    def epoch_start(epoch: int) -> None:
        if restart is not None and epoch > 0:
            restart.epoch_end()
        tokenizer.quantize.reset_usage()  # usage is counted per epoch, as in the official loop

    def stats() -> dict[str, float]:
        return {**codebook_usage(tokenizer), **({"restarted_codes": restart.restarted} if restart is not None else {})}

    return TaskSetup(
        objective=VQKDObjective(tokenizer, teacher),
        saved=tokenizer,
        train_set=ImageDataset(samples, transform, seed=recipe.seed),
        val_set=val_set,
        param_groups=param_groups(tokenizer.named_parameters(), recipe.weight_decay, tokenizer.no_weight_decay()),
        prepare=prepare,
        evaluate=vqkd_evaluator(teacher),
        on_epoch_start=epoch_start,
        stats=stats,
    )
