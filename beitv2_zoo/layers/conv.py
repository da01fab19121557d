"""Convolution → batch norm → ReLU, the unit every UPerNet / FCN head layer is made of."""

from torch import Tensor, nn


class ConvModule(nn.Module):
    """``ReLU(BN(conv(x)))`` with a bias-free convolution (the norm's shift replaces the bias).

    Parameter names are ``conv.weight`` and ``bn.*``, as in the official and mmseg checkpoints.

    Args:
        in_channels: input channels ``C``.
        out_channels: output channels ``C'``.
        kernel_size: square kernel side.
        padding: zero padding on each side (``kernel_size // 2`` keeps the spatial size).
        bn_eps: batch-norm epsilon (1e-5, torch's and mmcv's default).

    A fresh module has the convolution drawn from ``kaiming_normal_`` (``fan_out``, ReLU gain) and
    the norm at weight 1, bias 0: what mmcv's ``ConvModule`` starts from. Meta tensors are left alone.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, padding: int = 0,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps)
        self.activate = nn.ReLU(inplace=True)
        if not self.conv.weight.is_meta:
            nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` → ``[B, C', H', W']`` (``H' = H`` with ``padding = kernel_size // 2``)."""
        return self.activate(self.bn(self.conv(x)))
