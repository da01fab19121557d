"""The block-wise mask generator (official BEiT v2 algorithm, reference/official_beitv2_timm.md §4.1)."""

import math
import random

import numpy as np
import pytest

from beitv2_zoo.train.masking import BlockMaskGenerator


def test_every_mask_has_exactly_the_target_count():
    generator = BlockMaskGenerator(seed=0)
    assert repr(generator) == "BlockMaskGenerator(14x14, masked=75, block area 16..75, aspect 0.3..3.33)"
    for _ in range(500):
        mask = generator()
        assert mask.shape == (14, 14) and mask.dtype == bool
        assert int(mask.sum()) == 75


@pytest.mark.parametrize("size, count, low", [((7, 7), 10, 4), ((14, 14), 150, 16), (12, 1, 16)])
def test_other_grids_and_counts(size, count, low):
    generator = BlockMaskGenerator(size, num_masking_patches=count, min_num_patches=low, seed=3)
    shape = size if isinstance(size, tuple) else (size, size)
    for _ in range(100):
        mask = generator()
        assert mask.shape == shape and int(mask.sum()) == count


def test_same_seed_same_masks_and_no_global_random_state_is_touched():
    python_state, numpy_state = random.getstate(), np.random.get_state()
    first = _masks(BlockMaskGenerator(seed=7), 20)
    again = _masks(BlockMaskGenerator(seed=7), 20)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    other = _masks(BlockMaskGenerator(seed=8), 20)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert random.getstate() == python_state
    restored = np.random.get_state()
    assert restored[0] == numpy_state[0] and np.array_equal(restored[1], numpy_state[1])

    generator = BlockMaskGenerator(seed=7)
    _masks(generator, 5)
    generator.seed(7)
    assert all(np.array_equal(a, b) for a, b in zip(_masks(generator, 20), first))


def _masks(generator: BlockMaskGenerator, count: int) -> list[np.ndarray]:
    return [generator() for _ in range(count)]


def test_blocks_respect_the_size_and_aspect_limits():
    generator = BlockMaskGenerator(seed=1)
    low, high = math.log(0.3), math.log(1 / 0.3)
    touches_bottom = touches_right = 0
    for _ in range(1000):
        mask, blocks = generator.generate()
        assert blocks, "the first block always fits an empty 14x14 grid within 10 tries"
        masked = 0
        for block in blocks:
            room = 75 - masked
            # the target area is drawn in [16, room] (room below 16 reverses the bounds, as random.uniform allows)
            assert min(16, room) <= block.target_area <= max(16, room)
            assert low <= math.log(block.aspect) <= high
            assert block.height == round(math.sqrt(block.target_area * block.aspect))
            assert block.width == round(math.sqrt(block.target_area / block.aspect))
            assert 1 <= block.height < 14 and 1 <= block.width < 14
            assert 0 <= block.top <= 14 - block.height and 0 <= block.left <= 14 - block.width
            assert 0 < block.added <= room
            assert mask[block.top : block.top + block.height, block.left : block.left + block.width].all()
            touches_bottom += block.top + block.height == 14
            touches_right += block.left + block.width == 14
            masked += block.added
        assert masked <= 75
    # Inclusive upper bound of the corner (official random.randint): blocks do reach the last row and column.
    assert touches_bottom > 0 and touches_right > 0


def test_rejects_impossible_counts():
    with pytest.raises(ValueError, match="num_masking_patches"):
        BlockMaskGenerator(4, num_masking_patches=17)
