"""Training transforms of each task and the batch-level Mixup / CutMix.

Every per-sample transform has the signature ``(RGB PIL image, seed) → dict of tensors``.
torchvision's random transforms draw from torch's global generator, which
:class:`~beitv2_zoo.train.data.ImageDataset` seeds per sample; the MIM mask draws from its
own generator seeded with the same ``seed``.
"""

import math
from typing import Any

import numpy as np
import torch
import torchvision.transforms as T1
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch.nn import functional as F

from .masking import BlockMaskGenerator
from ..transforms import EvalTransform
from ..weights.schema import Preprocessing

BICUBIC = T.InterpolationMode.BICUBIC


def _to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB → float32 ``[3, H, W]`` in [0, 1]."""
    return TF.to_dtype(TF.to_image(image), torch.float32, scale=True)


class RandAugmentMstd(torch.nn.Module):
    """torchvision's RandAugment on timm's magnitude scale with per-op magnitude noise.

    timm's ``rand-m9-mstd0.5`` applies ``num_ops`` random ops, each at a magnitude drawn from
    ``N(magnitude, magnitude_std)`` clipped to ``[0, 10]``. torchvision's op set and
    increasing-severity magnitudes are used, on 31 bins (bin 30 = timm's 10).
    """

    def __init__(self, num_ops: int = 2, magnitude: float = 9.0, magnitude_std: float = 0.5,
                 fill: tuple[int, int, int] = (124, 116, 104)) -> None:
        super().__init__()
        self.num_ops, self.magnitude, self.magnitude_std = num_ops, magnitude, magnitude_std
        self.op = T.RandAugment(num_ops=1, num_magnitude_bins=31, interpolation=BICUBIC, fill=list(fill))

    def forward(self, image: Image.Image) -> Image.Image:
        for _ in range(self.num_ops):
            level = self.magnitude
            if self.magnitude_std > 0:
                level = float(torch.normal(torch.tensor(self.magnitude), torch.tensor(self.magnitude_std)))
            self.op.magnitude = int(round(min(10.0, max(0.0, level)) * 3))  # 0..10 → bins 0..30
            image = self.op(image)
        return image


class ClassifierTrainTransform:
    """Fine-tuning: RandomResizedCrop (bicubic) → flip → RandAugment → normalise → random erasing."""

    def __init__(self, size: int, mean: tuple[float, ...], std: tuple[float, ...], scale: tuple[float, float],
                 randaug_num_ops: int = 2, randaug_magnitude: float = 9.0, randaug_magnitude_std: float = 0.5,
                 random_erasing: float = 0.25, hflip: float = 0.5) -> None:
        steps: list = [T.RandomResizedCrop(size, scale=scale, interpolation=BICUBIC), T.RandomHorizontalFlip(hflip)]
        if randaug_num_ops > 0:
            fill = tuple(int(round(255 * m)) for m in mean)
            steps.append(RandAugmentMstd(randaug_num_ops, randaug_magnitude, randaug_magnitude_std, fill))  # type: ignore[arg-type]
        self.pil = T.Compose(steps)
        self.normalize = T.Normalize(mean, std)
        self.erase = T.RandomErasing(p=random_erasing, value="random") if random_erasing > 0 else None

    def __call__(self, image: Image.Image, seed: int) -> dict[str, torch.Tensor]:
        tensor = self.normalize(_to_tensor(self.pil(image)))
        if self.erase is not None:
            tensor = self.erase(tensor)  # per-pixel normal noise, timm's "pixel" mode
        return {"image": tensor}


class CropFlipTransform:
    """RandomResizedCrop (bicubic) → flip → (colour jitter) → tensor, normalised or in [0, 1].

    Linear probing (BEiT v1 ``run_linear_eval.py``) and VQ-KD (official ``datasets.py``) use it.
    """

    def __init__(self, size: int, scale: tuple[float, float], mean: tuple[float, ...] | None = None,
                 std: tuple[float, ...] | None = None, color_jitter: float = 0.0, hflip: float = 0.5) -> None:
        steps: list = []
        if color_jitter > 0:
            steps.append(T.ColorJitter(color_jitter, color_jitter, color_jitter))
        steps += [T.RandomResizedCrop(size, scale=scale, interpolation=BICUBIC), T.RandomHorizontalFlip(hflip)]
        self.pil = T.Compose(steps)
        self.normalize = T.Normalize(mean, std) if mean is not None and std is not None else None

    def __call__(self, image: Image.Image, seed: int) -> dict[str, torch.Tensor]:
        tensor = _to_tensor(self.pil(image))
        return {"image": self.normalize(tensor) if self.normalize is not None else tensor}


class MIMTransform:
    """BEiT v2's two views of one crop and a block mask.

    ``ColorJitter(0.4, 0.4, 0.4)`` → horizontal flip (probability ``hflip``) → one RandomResizedCrop box (scale
    ``crop_scale``, ratio 3/4..4/3) resized twice with bicubic: ``image`` (``size``, normalised
    with ``mean``/``std``) for the student, ``target_image`` (``target_size``, [0, 1]) for the
    tokenizer; ``mask`` ``[h, w]`` bool from the official block-mask generator.
    """

    def __init__(self, size: int, target_size: int, patch_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                 crop_scale: tuple[float, float], color_jitter: float, num_mask_patches: int, min_mask_patches: int,
                 max_mask_patches: int | None, hflip: float = 0.5) -> None:
        self.hflip = hflip
        self.size, self.target_size = size, target_size
        self.scale, self.ratio = crop_scale, (3.0 / 4.0, 4.0 / 3.0)
        self.jitter = T.ColorJitter(color_jitter, color_jitter, color_jitter) if color_jitter > 0 else None
        self.normalize = T.Normalize(mean, std)
        self.masks = BlockMaskGenerator(size // patch_size, num_mask_patches, min_mask_patches, max_mask_patches)

    def __call__(self, image: Image.Image, seed: int) -> dict[str, torch.Tensor]:
        if self.jitter is not None:
            image = self.jitter(image)
        if torch.rand(()) < self.hflip:
            image = TF.horizontal_flip(image)
        top, left, height, width = T1.RandomResizedCrop.get_params(image, list(self.scale), list(self.ratio))
        view = TF.resized_crop(image, top, left, height, width, [self.size, self.size], interpolation=BICUBIC)
        target = view if self.target_size == self.size else TF.resized_crop(
            image, top, left, height, width, [self.target_size, self.target_size], interpolation=BICUBIC)
        self.masks.seed(seed)
        return {"image": self.normalize(_to_tensor(view)), "target_image": _to_tensor(target),
                "mask": torch.from_numpy(self.masks())}


def eval_preprocessing(recipe: Any) -> Preprocessing:
    """A recipe's evaluation transform: short edge to ``eval_resize`` (bicubic), centre crop ``img_size``, mean/std."""
    return Preprocessing(resize_size=getattr(recipe, "eval_resize", recipe.img_size), crop_size=recipe.img_size,
                         mean=tuple(recipe.mean), std=tuple(recipe.std))


class EvalSampleTransform:
    """The evaluation transform (short-edge resize, centre crop, normalise) as a seeded sample transform."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.transform = EvalTransform(preprocessing)

    def __call__(self, image: Image.Image, seed: int) -> dict[str, torch.Tensor]:
        return {"image": self.transform(image)}


class MixupCutmix:
    """Batch-level Mixup or CutMix with label smoothing, as timm's ``Mixup(mode='batch')``.

    With probability ``prob`` a batch is mixed with its reversal: CutMix (Beta(``cutmix``))
    with probability ``switch_prob`` when both are on, else Mixup (Beta(``mixup``)). CutMix
    pastes one box of area ``1 − λ`` and corrects ``λ`` to the clipped box. Targets are
    ``λ·y + (1 − λ)·y_reversed`` of smoothed one-hot labels. All draws come from ``generator``.
    """

    def __init__(self, num_classes: int, mixup: float = 0.8, cutmix: float = 1.0, prob: float = 1.0,
                 switch_prob: float = 0.5, label_smoothing: float = 0.1) -> None:
        self.num_classes, self.mixup, self.cutmix = num_classes, mixup, cutmix
        self.prob, self.switch_prob, self.smoothing = prob, switch_prob, label_smoothing

    @property
    def active(self) -> bool:
        return self.prob > 0 and (self.mixup > 0 or self.cutmix > 0)

    def smooth_one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        off = self.smoothing / self.num_classes
        return torch.full((labels.shape[0], self.num_classes), off, device=labels.device).scatter_(
            1, labels.view(-1, 1), 1.0 - self.smoothing + off)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, C, H, W]`` images and int labels ``[B]`` → mixed images and soft targets ``[B, classes]``."""
        targets = self.smooth_one_hot(labels)
        if not self.active or float(torch.rand((), generator=generator)) >= self.prob:
            return images, targets
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or float(torch.rand((), generator=generator)) < self.switch_prob)
        alpha = self.cutmix if use_cutmix else self.mixup
        lam = _beta(alpha, generator)
        flipped = images.flip(0)
        if use_cutmix:
            height, width = images.shape[-2:]
            cut = math.sqrt(1.0 - lam)
            cut_h, cut_w = int(height * cut), int(width * cut)
            cy = int(torch.randint(height, (), generator=generator))
            cx = int(torch.randint(width, (), generator=generator))
            y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
            x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
            images = images.clone()
            images[..., y0:y1, x0:x1] = flipped[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)
        else:
            images = images * lam + flipped * (1.0 - lam)
        return images, targets * lam + targets.flip(0) * (1.0 - lam)


def _beta(alpha: float, generator: torch.Generator) -> float:
    """A Beta(α, α) draw determined by ``generator`` (torch's Beta takes no generator, numpy's does)."""
    seed = int(torch.randint(2**62, (), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``−Σ targets · log_softmax(logits)`` (timm's ``SoftTargetCrossEntropy``)."""
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
