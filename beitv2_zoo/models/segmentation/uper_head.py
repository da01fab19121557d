"""The UPerNet decode head: a pyramid pooling module on the coarsest level, a top-down feature
pyramid, and a per-pixel classifier on the finest level.

Parameter names follow the official and mmseg checkpoints (``psp_modules.{i}.1``, ``bottleneck``,
``lateral_convs.{i}``, ``fpn_convs.{i}``, ``fpn_bottleneck``, ``conv_seg``), each ``ConvModule``
holding ``conv`` and ``bn``.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...layers import ConvModule


def upsample_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of ``[B, C, h, w]`` to ``[B, C, *size]`` (``align_corners=False``)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def init_classifier_(conv: nn.Conv2d) -> None:
    """A fresh per-pixel classifier: weights ``N(0, 0.01²)``, bias 0 (mmseg's ``conv_seg`` init)."""
    if not conv.weight.is_meta:
        nn.init.normal_(conv.weight, std=0.01)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)


class PyramidPooling(nn.ModuleList):
    """Pooling pyramid (PSPNet's PPM): for each scale ``s``, average-pool to ``s×s``, a 1×1 ConvModule,
    and bilinear upsampling back; ``[B, C, h, w]`` → a list of ``[B, C', h, w]``, one per scale."""

    def __init__(self, pool_scales: Sequence[int], in_channels: int, channels: int) -> None:
        super().__init__(nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvModule(in_channels, channels, 1))
                         for s in pool_scales)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        return [upsample_to(branch(x), x.shape[2:]) for branch in self]


class UperHead(nn.Module):
    """UPerNet over a 4-level pyramid ``[B, C_i, h_i, w_i]`` (finest first) → logits ``[B, K, h_0, w_0]``.

    Args:
        in_channels: channels of each level (the last one feeds the pooling pyramid).
        channels: width of every internal layer.
        num_classes: classes ``K``.
        pool_scales: output sides of the pooling pyramid.
        dropout_ratio: ``Dropout2d`` before the classifier (training only).
    """

    def __init__(self, in_channels: Sequence[int], channels: int, num_classes: int,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout_ratio: float = 0.1) -> None:
        super().__init__()
        in_channels = list(in_channels)
        self.in_channels, self.channels, self.num_classes = in_channels, channels, num_classes
        self.psp_modules = PyramidPooling(pool_scales, in_channels[-1], channels)
        self.bottleneck = ConvModule(in_channels[-1] + len(pool_scales) * channels, channels, 3, padding=1)
        self.lateral_convs = nn.ModuleList(ConvModule(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvModule(channels, channels, 3, padding=1) for _ in in_channels[:-1])
        self.fpn_bottleneck = ConvModule(len(in_channels) * channels, channels, 3, padding=1)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)
        init_classifier_(self.conv_seg)

    def features(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        """The fused map before the classifier, ``[B, channels, h_0, w_0]``."""
        if len(levels) != len(self.in_channels):
            raise ValueError(f"expected {len(self.in_channels)} feature levels, got {len(levels)}")
        top = levels[-1]
        laterals = [conv(level) for conv, level in zip(self.lateral_convs, levels)]
        laterals.append(self.bottleneck(torch.cat([top, *self.psp_modules(top)], dim=1)))
        for i in range(len(laterals) - 1, 0, -1):  # top-down: add each coarser map into the next finer one
            laterals[i - 1] = laterals[i - 1] + upsample_to(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(lateral) for conv, lateral in zip(self.fpn_convs, laterals)] + [laterals[-1]]
        size = outs[0].shape[2:]
        outs = [outs[0]] + [upsample_to(out, size) for out in outs[1:]]
        return self.fpn_bottleneck(torch.cat(outs, dim=1))

    def forward(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        """Levels ``[B, C_i, h_i, w_i]`` → logits ``[B, num_classes, h_0, w_0]``."""
        return self.conv_seg(self.dropout(self.features(levels)))
