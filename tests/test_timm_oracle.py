"""timm computes the same function: random weights loaded into both through each layout."""

import pytest
import torch
from safetensors.torch import save_file

from beitv2_zoo import get_model
from beitv2_zoo.checkpoint.keymaps import canonical_to_mmpretrain
from beitv2_zoo.layers import relative_position_index

from .conftest import image_batch, max_abs_diff, randomize_

timm = pytest.importorskip("timm")
from timm.models.beit import Beit as TimmBeit  # noqa: E402
from timm.models.beit import checkpoint_filter_fn  # noqa: E402

TINY = dict(patch_size=16, embed_dim=64, depth=4, num_heads=2, use_abs_pos_emb=False, use_rel_pos_bias=True,
            init_values=0.1)


def tiny_timm(img_size: int = 224, num_classes: int = 1000) -> torch.nn.Module:
    return randomize_(TimmBeit(img_size=img_size, num_classes=num_classes, **TINY)).eval()


def with_index_buffers(state_dict: dict, grid: int = 14) -> dict:
    """Add the persistent ``relative_position_index`` buffers that official files carry."""
    result = dict(state_dict)
    for key in list(state_dict):
        if key.endswith("relative_position_bias_table"):
            result[key.replace("relative_position_bias_table", "relative_position_index")] = relative_position_index((grid, grid))
    return result


def save_layouts(state_dict: dict, folder) -> dict:
    """The same timm weights written as a timm safetensors file, an official .pth and an mmpretrain .pth."""
    paths = {"timm": folder / "timm.safetensors", "official": folder / "official.pth", "mmpretrain": folder / "mm.pth"}
    save_file({k: v.contiguous() for k, v in state_dict.items()}, paths["timm"])
    torch.save({"module": with_index_buffers(state_dict)}, paths["official"])
    mm = canonical_to_mmpretrain(with_index_buffers(state_dict))
    torch.save({"meta": {"epoch": 1}, "state_dict": mm}, paths["mmpretrain"], _use_new_zipfile_serialization=False)
    return paths


@pytest.mark.parametrize("layout", ["timm", "official", "mmpretrain"])
def test_tiny_logits_match_timm_in_every_layout(tmp_path, layout):
    reference = tiny_timm()
    path = save_layouts(reference.state_dict(), tmp_path)[layout]
    ours = get_model("test_beit_tiny", pretrained=path)
    x = image_batch(3)
    with torch.no_grad():
        expected = reference(x)
        logits = ours(x)
        features = ours.extract_feat(x)
        expected_features = reference.forward_head(reference.forward_features(x), pre_logits=True)
    assert expected.std() > 0.5, "the oracle's logits are too flat to make the comparison meaningful"
    assert max_abs_diff(logits, expected) <= 1e-4
    assert isinstance(features, tuple) and len(features) == 1 and features[0].shape == (3, 64)
    assert max_abs_diff(features[0], expected_features) <= 1e-5


def test_tiny_resized_to_384_matches_timm(tmp_path):
    """A 224 checkpoint loaded at img_size=384: the relative position tables are resized like timm's."""
    source = tiny_timm(224)
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    reference = TimmBeit(img_size=384, num_classes=1000, **TINY).eval()
    reference.load_state_dict(checkpoint_filter_fn(source.state_dict(), reference))
    ours = get_model("test_beit_tiny", pretrained=path, img_size=384)
    table = ours.blocks[0].attn.relative_position_bias_table
    assert table.shape == (47 * 47 + 3, 2)
    x = image_batch(2, 384)
    with torch.no_grad():
        assert max_abs_diff(ours(x), reference(x)) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("timm_name, our_name", [
    ("beitv2_base_patch16_224", "beitv2_base_patch16_224.in1k_ft_in22k_in1k"),
    ("beitv2_large_patch16_224", "beitv2_large_patch16_224_pt1k_ft1k"),
])
def test_full_size_logits_match_timm(tmp_path, timm_name, our_name):
    """Base and large at full size, through an official-layout file (``module`` wrapper, index buffers)."""
    reference = randomize_(timm.create_model(timm_name, pretrained=False)).eval()
    path = tmp_path / "weights.pth"
    torch.save({"module": with_index_buffers(reference.state_dict())}, path)
    ours = get_model(our_name, pretrained=path)
    x = image_batch(1)
    with torch.no_grad():
        expected, logits = reference(x), ours(x)
    assert expected.std() > 0.5
    assert max_abs_diff(logits, expected) <= 1e-4
    assert sum(p.numel() for p in ours.parameters()) == ours.weights_info.params
