"""Frozen teachers for VQ-KD: images in [0, 1] → patch features the tokenizer learns to reconstruct.

A teacher is an ``nn.Module`` with ``out_dim`` and
``forward(images [B, 3, H, W] in [0, 1], grid (h, w)) → [B, h·w, out_dim]``. It normalises
its input itself, always stays in eval mode and never gets gradients (DESIGN §6). When its
own patch grid differs from the tokenizer's, its feature map is resampled (bilinear) to
the tokenizer's grid; the official recipe has the same 14 × 14 grid on both sides.

* :class:`ClipTeacher` (``'clip:<model>:<pretrained>'``): an ``open_clip`` vision tower.
  Features are the official ones: ``ln_post`` on every token, CLS dropped, then ``proj``
  (512-d for ViT-B/16), with CLIP's mean/std. Needs ``pip install open_clip_torch``.
* :class:`BeitTeacher` (anything else): a classifier ``get_model`` (or a ``beitv2-zoo train``
  run) provides; features are its last block's patch tokens after its final norm (``fc_norm``
  applied per token for mean-pooled models), as the official DINO teacher's ``norm(x)[:, 1:]``.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..models import Beit
from .errors import RecipeError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class Teacher(nn.Module):
    """Base class: frozen, eval-mode, normalising, grid-matching (see the module docstring)."""

    out_dim: int

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def freeze(self) -> "Teacher":
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "Teacher":
        return super().train(False)  # a teacher never trains

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images ``[B, 3, H, W]`` → features ``[B, out_dim, h', w']``."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Images in [0, 1] → ``[B, h·w, out_dim]`` on the tokenizer's ``grid``."""
        features = self.feature_map((images - self.mean) / self.std)
        if tuple(features.shape[-2:]) != tuple(grid):
            features = F.interpolate(features.float(), size=grid, mode="bilinear", align_corners=False)
        return features.flatten(2).transpose(1, 2)


class BeitTeacher(Teacher):
    """A BEiT classifier's patch tokens after its final norm."""

    def __init__(self, model: Beit, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__(mean, std)
        self.model = model
        self.out_dim = model.embed_dim
        self.freeze()

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.model.forward_features(images)[:, self.model.num_prefix_tokens:]
        if self.model.fc_norm is not None:
            tokens = self.model.fc_norm(tokens)
        side_h, side_w = self.model.patch_embed.grid_size
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, side_h, side_w)


class ClipTeacher(Teacher):
    """An ``open_clip`` ViT's projected patch tokens (the official VQ-KD CLIP target)."""

    def __init__(self, model_name: str = "ViT-B-16", pretrained: str = "openai") -> None:
        super().__init__(CLIP_MEAN, CLIP_STD)
        try:
            import open_clip
        except ImportError:
            raise ImportError("the CLIP teacher needs open_clip: pip install 'beitv2-zoo[train]' "
                              "(or pip install open_clip_torch)") from None
        model = open_clip.create_model(model_name, pretrained=pretrained or None)
        self.visual = model.visual
        self.visual.output_tokens = True
        self.out_dim = int(self.visual.proj.shape[1])
        self.freeze()

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        _, tokens = self.visual(images)  # ln_post already applied to every token; CLS removed
        features = tokens @ self.visual.proj  # [B, N, out_dim]
        side = int(features.shape[1] ** 0.5)
        return features.transpose(1, 2).reshape(features.shape[0], -1, side, side)


def build_teacher(spec: str, weights: str = "", img_size: int = 224) -> Teacher:
    """``'clip:<model>:<pretrained>'`` → :class:`ClipTeacher`; a registered name, file or run → :class:`BeitTeacher`.

    For a registered name, ``weights`` is ``''`` (its published weights), a file / URL / spec,
    or ``'random'``: a fixed, randomly initialised network (seeded by the recipe's seed), a
    random-feature teacher. The teacher is built for ``img_size`` inputs.
    """
    if spec.startswith("clip:"):
        _, _, rest = spec.partition(":")
        model_name, _, pretrained = rest.partition(":")
        return ClipTeacher(model_name or "ViT-B-16", pretrained)
    from ..weights import get_record, is_model
    from .config import FinetuneRecipe, LinearProbeRecipe
    from .models import build_classifier, load_weights, resolve_weights, run_recipe

    if is_model(spec):
        from ..api import get_model

        pretrained: bool | str = False if weights == "random" else (weights or True)
        model = get_model(spec, pretrained=pretrained, img_size=img_size)
        prep = get_record(spec).preprocessing
        return BeitTeacher(model, prep.mean, prep.std)
    path = resolve_weights(weights or spec)
    recipe = run_recipe(path)
    if isinstance(recipe, (FinetuneRecipe, LinearProbeRecipe)):
        model = build_classifier(recipe, load_pretrained=False)
        load_weights(model, str(path))
        return BeitTeacher(model, recipe.mean, recipe.std)
    from ..api import get_model

    model = get_model(path)
    if not isinstance(model, Beit):
        raise RecipeError(f"teacher {spec!r} is not a BEiT classifier")
    from ..weights import IMAGENET_EVAL

    return BeitTeacher(model, IMAGENET_EVAL.mean, IMAGENET_EVAL.std)
