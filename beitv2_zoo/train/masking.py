"""Block-wise masking for BEiT v2 pretraining, as the official ``beit2/masking_generator.py`` does it.

The generator draws random rectangles of patches until the target count is reached:

* each rectangle has a target area ``uniform(min_num_patches, room)``, where ``room`` is
  the number of patches still to mask (capped by ``max_num_patches``), and an aspect
  ratio ``exp(uniform(log min_aspect, log max_aspect))``;
* its height and width are ``round(√(area·aspect))`` and ``round(√(area/aspect))``. It is
  kept only if both are smaller than the grid, and if it adds between 1 and ``room``
  new patches; up to 10 draws are made per rectangle;
* its top-left corner is uniform over every position where it fits, with the upper bound
  included (Python's ``randint``). mmpretrain's copy uses numpy's exclusive bound, so its
  blocks never touch the last row or column.

When a rectangle cannot be placed, the loop stops. BEiT v2's addition (not in BEiT v1) then
masks or unmasks random single patches until exactly ``num_masking_patches`` are masked.

Randomness comes only from the generator's own ``random.Random``: the same seed gives the
same masks, and the global ``random`` / ``numpy`` / ``torch`` generators are neither read
nor changed. The official code draws blocks from the global ``random`` and the final
adjustment from ``numpy.random``. Here both come from one generator, with the same
distributions. Give each data-loader worker and rank its own seed (e.g.
``seed + 1000 * rank + worker_id``), as the official scripts seed with ``seed + rank``.
"""

import math
import random
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskBlock:
    """One rectangle the generator placed.

    Attributes:
        top, left: its top-left patch.
        height, width: its size in patches.
        target_area: the area drawn for it.
        aspect: the aspect ratio (height / width) drawn for it.
        added: patches it masked that were not masked before.
    """

    top: int
    left: int
    height: int
    width: int
    target_area: float
    aspect: float
    added: int


class BlockMaskGenerator:
    """Block-wise masks of exactly ``num_masking_patches`` patches on a ``height × width`` grid.

    Args:
        input_size: patch grid ``(height, width)``, or one int for a square grid (14 for 224/16).
        num_masking_patches: patches to mask (75 of 196 in BEiT v2).
        min_num_patches: smallest target area of a block (16).
        max_num_patches: largest target area of a block; ``None`` means ``num_masking_patches``.
        min_aspect: smallest aspect ratio (0.3).
        max_aspect: largest aspect ratio; ``None`` means ``1 / min_aspect``.
        seed: seed of this generator's own ``random.Random`` (``None``: from the OS).
    """

    def __init__(
        self,
        input_size: int | tuple[int, int] = 14,
        num_masking_patches: int = 75,
        min_num_patches: int = 16,
        max_num_patches: int | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
        seed: int | None = None,
    ) -> None:
        self.height, self.width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if not 0 < num_masking_patches <= self.height * self.width:
            raise ValueError(f"num_masking_patches must be in 1..{self.height * self.width}, got {num_masking_patches}")
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = num_masking_patches if max_num_patches is None else max_num_patches
        max_aspect = 1.0 / min_aspect if max_aspect is None else max_aspect
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
        self.rng = random.Random(seed)

    def __repr__(self) -> str:
        low, high = (math.exp(v) for v in self.log_aspect_ratio)
        return (f"BlockMaskGenerator({self.height}x{self.width}, masked={self.num_masking_patches}, "
                f"block area {self.min_num_patches}..{self.max_num_patches}, aspect {low:.3g}..{high:.3g})")

    def seed(self, seed: int | None) -> None:
        """Restart the generator from ``seed``."""
        self.rng.seed(seed)

    def __call__(self) -> np.ndarray:
        """One mask: bool ``[height, width]`` with exactly ``num_masking_patches`` ``True`` cells."""
        return self.generate()[0]

    def generate(self) -> tuple[np.ndarray, list[MaskBlock]]:
        """One mask and the rectangles placed before the final adjustment to the exact count."""
        mask = np.zeros((self.height, self.width), dtype=bool)
        blocks: list[MaskBlock] = []
        count = 0
        while count < self.num_masking_patches:
            room = min(self.num_masking_patches - count, self.max_num_patches)
            block = self._place_block(mask, room)
            if block is None:
                break
            blocks.append(block)
            count += block.added
        self._adjust_to_target(mask, count)
        return mask, blocks

    def _place_block(self, mask: np.ndarray, room: int) -> MaskBlock | None:
        """Try up to 10 rectangles; mask the first that adds 1..``room`` new patches."""
        for _ in range(10):
            target_area = self.rng.uniform(self.min_num_patches, room)
            aspect = math.exp(self.rng.uniform(*self.log_aspect_ratio))
            height = int(round(math.sqrt(target_area * aspect)))
            width = int(round(math.sqrt(target_area / aspect)))
            if width >= self.width or height >= self.height:
                continue
            top = self.rng.randint(0, self.height - height)
            left = self.rng.randint(0, self.width - width)
            window = mask[top : top + height, left : left + width]
            added = height * width - int(window.sum())
            if 0 < added <= room:
                window[:] = True
                return MaskBlock(top, left, height, width, target_area, aspect, added)
        return None

    def _adjust_to_target(self, mask: np.ndarray, count: int) -> None:
        """Mask (or unmask) random single patches until exactly ``num_masking_patches`` are masked."""
        flat = mask.reshape(-1)
        if count > self.num_masking_patches:
            chosen = self.rng.sample(np.flatnonzero(flat).tolist(), count - self.num_masking_patches)
            flat[chosen] = False
        elif count < self.num_masking_patches:
            chosen = self.rng.sample(np.flatnonzero(~flat).tolist(), self.num_masking_patches - count)
            flat[chosen] = True
