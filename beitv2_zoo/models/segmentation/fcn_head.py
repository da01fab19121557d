"""The auxiliary FCN head (training only): one 3×3 ConvModule and a per-pixel classifier on one level.

Parameter names follow the official and mmseg checkpoints: ``convs.0.{conv,bn}``, ``conv_seg``.
"""

import torch
from torch import nn

from ...layers import ConvModule
from .uper_head import init_classifier_


class FcnHead(nn.Module):
    """``[B, C, h, w]`` → ``ConvModule 3×3`` → ``Dropout2d`` → ``1×1 conv`` → logits ``[B, K, h, w]``.

    Args:
        in_channels: channels ``C`` of the input level.
        channels: width of the hidden ConvModule.
        num_classes: classes ``K``.
        dropout_ratio: ``Dropout2d`` before the classifier (training only).
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout_ratio: float = 0.1) -> None:
        super().__init__()
        self.in_channels, self.channels, self.num_classes = in_channels, channels, num_classes
        self.convs = nn.Sequential(ConvModule(in_channels, channels, 3, padding=1))
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)
        init_classifier_(self.conv_seg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, h, w]`` → ``[B, num_classes, h, w]``."""
        return self.conv_seg(self.dropout(self.convs(x)))
