"""The multi-scale adapter: one ViT feature map per tapped block → a four-level pyramid.

A plain ViT keeps one resolution (``1/p`` of the input); UPerNet wants four. The official
BEiT segmentation backbone turns the four tapped maps into levels at ``1/4, 1/8, 1/16, 1/32``
of the input with transposed convolutions (up) and max pooling (down):

========  =================================================  ======================  ==============
module    patch size 16                                      patch size 8            patch size 4
========  =================================================  ======================  ==============
``fpn1``  ConvT(2, s2) → BN → GELU → ConvT(2, s2)   (×4)      ConvT(2, s2)   (×2)     identity
``fpn2``  ConvT(2, s2)                              (×2)      identity                MaxPool(2)
``fpn3``  identity                                           MaxPool(2)     (×½)     MaxPool(4)
``fpn4``  MaxPool(2)                                (×½)      MaxPool(4)     (×¼)     MaxPool(8)
========  =================================================  ======================  ==============

Patch size 4 is this package's extension (the CPU reproduction's tiny BEiT has 4 × 4 patches): its
token map is already at ``1/4``, so the adapter only pools, and has no parameters.

The parameter names (``fpn1.0``, ``fpn1.1`` the norm, ``fpn1.3``, ``fpn2.0``) are the official ones;
mmseg's ``Feature2Pyramid`` neck holds the same layers as ``upsample_4x`` / ``upsample_2x``.
Fresh layers keep torch's default initialisation, as the official backbone does.
"""

from torch import nn


def _up(dim: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)


def build_adapter(embed_dim: int, patch_size: int) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """The four adapter modules ``(fpn1, fpn2, fpn3, fpn4)``, each ``[B, D, h, w]`` → ``[B, D, h·s, w·s]``.

    Args:
        embed_dim: channels ``D`` (unchanged by every level).
        patch_size: 16, 8 or 4; fixes the scale factors ``s`` (see the module table).

    Raises:
        ValueError: another patch size.
    """
    if patch_size == 16:
        return (
            nn.Sequential(_up(embed_dim), nn.BatchNorm2d(embed_dim), nn.GELU(), _up(embed_dim)),
            nn.Sequential(_up(embed_dim)),
            nn.Identity(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
    if patch_size == 8:
        return (
            nn.Sequential(_up(embed_dim)),
            nn.Identity(),
            nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2)),
            nn.Sequential(nn.MaxPool2d(kernel_size=4, stride=4)),
        )
    if patch_size == 4:
        return (
            nn.Identity(),
            nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2)),
            nn.Sequential(nn.MaxPool2d(kernel_size=4, stride=4)),
            nn.Sequential(nn.MaxPool2d(kernel_size=8, stride=8)),
        )
    raise ValueError(f"the segmentation adapter supports patch sizes 16, 8 and 4, got {patch_size}")
