"""Absolute position embedding resampling (a tokenizer's encoder and decoder carry one)."""

import torch
import torch.nn.functional as F


def resample_abs_pos_embed(
    pos_embed: torch.Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int], num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Bicubically resize an absolute position embedding to another patch grid.

    The same interpolation as the checkpoint loader's ``resize_pos_embed`` (float32 bicubic,
    ``align_corners=False``, prefix tokens kept), for grids that need not be square.

    Args:
        pos_embed: ``[1, n + oh * ow, D]`` (``n = num_prefix_tokens``).
        new_grid: ``(gh, gw)`` of the result.
        old_grid: ``(oh, ow)`` of ``pos_embed``.

    Returns:
        ``[1, n + gh * gw, D]`` in the dtype of ``pos_embed`` (``pos_embed`` itself when the grids agree).
    """
    if tuple(new_grid) == tuple(old_grid):
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    grid = grid.reshape(1, old_grid[0], old_grid[1], -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], -1).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)
