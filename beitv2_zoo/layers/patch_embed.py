"""Image to patch tokens."""

from collections.abc import Sequence

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """Split an image into non-overlapping ``patch_size`` squares and project each to ``D``.

    Args:
        img_size: input height and width (square); must be a multiple of ``patch_size``.
        patch_size: side of one patch in pixels.
        in_chans: input channels.
        embed_dim: token width ``D``.
        strict_img_size: accept only ``img_size`` inputs; ``False`` accepts any height and width
            that are multiples of ``patch_size`` (a model built with ``dynamic_img_size``).
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        strict_img_size: bool = True,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(
                f"img_size={img_size} is not divisible by patch_size={patch_size}; "
                f"use a multiple of {patch_size}, e.g. {img_size // patch_size * patch_size or patch_size}"
            )
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.strict_img_size = strict_img_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def feat_size(self, img_size: Sequence[int]) -> tuple[int, int]:
        """The patch grid ``(H/p, W/p)`` of an input of ``img_size = (H, W)`` pixels."""
        return img_size[0] // self.patch_size, img_size[1] // self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, C, H, W]`` with ``H == W == img_size`` → tokens ``[B, H/p * W/p, D]``.

        Without ``strict_img_size``, ``H`` and ``W`` may be any multiples of ``patch_size``.
        """
        if not self.strict_img_size:
            if x.ndim != 4 or x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
                raise ValueError(
                    f"expected images of shape [B, {self.proj.in_channels}, H, W] with H and W multiples of "
                    f"{self.patch_size}, got {list(x.shape)}"
                )
        elif x.ndim != 4 or x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(
                f"expected images of shape [B, {self.proj.in_channels}, {self.img_size}, {self.img_size}], "
                f"got {list(x.shape)}; build the model with img_size={x.shape[-1]} (or dynamic_img_size=True) "
                "to change the input size"
            )
        return self.proj(x).flatten(2).transpose(1, 2)
