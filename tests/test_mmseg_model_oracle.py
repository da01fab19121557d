"""Oracle: mmsegmentation's BEiT + Feature2Pyramid + UPerHead + FCNHead against :class:`BeitSegmenter`.

mmseg (1.2.2 with mmengine 0.10.7 and mmcv-lite 2.1.0) is optional and absent in CI; the tests skip
without it. Its ``import mmseg.models`` needs mmcv's compiled ops, replaced by ``tests/mmseg_stub.py``.

What is checked: mmseg's state dict, with random values in every tensor, maps through
:func:`~beitv2_zoo.checkpoint.keymaps_segmentation.mmseg_to_canonical` into ours and loads strictly;
the four pyramid levels, the decode logits and the auxiliary logits then agree (relative difference
measured below 5e-7 on CPU, asserted at 1e-4); and the BEiT-B build at 512 has the same parameter count
as ours (163.1 M with the auxiliary head).
"""

import warnings

import pytest
import torch

pytest.importorskip("mmseg")
pytest.importorskip("mmengine")

from tests import mmseg_stub

mmseg_stub.install()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import mmseg.models  # noqa: F401
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from beitv2_zoo.checkpoint import split_layout
from beitv2_zoo.checkpoint.adapt import load_state_dict_strict
from beitv2_zoo.checkpoint.keymaps_segmentation import canonical_to_mmseg
from beitv2_zoo.models import ARCHITECTURES

TINY = dict(img_size=64, embed_dim=64, depth=4, num_heads=2, out_indices=(0, 1, 2, 3), channels=32,
            aux_channels=16, num_classes=5)
BASE = dict(img_size=512, embed_dim=768, depth=12, num_heads=12, out_indices=(3, 5, 7, 11), channels=768,
            aux_channels=256, num_classes=150)


def mmseg_config(img_size: int, embed_dim: int, depth: int, num_heads: int, out_indices: tuple[int, ...],
                 channels: int, aux_channels: int, num_classes: int) -> dict:
    """An mmseg EncoderDecoder config equal to the official BEiT UPerNet one, with ``BN`` for ``SyncBN``."""
    norm = dict(type="BN", requires_grad=True)
    head = dict(num_classes=num_classes, norm_cfg=norm, align_corners=False, dropout_ratio=0.1)
    return dict(
        type="EncoderDecoder",
        data_preprocessor=dict(type="SegDataPreProcessor", mean=[0.0] * 3, std=[1.0] * 3, size=(img_size,) * 2),
        backbone=dict(type="BEiT", img_size=(img_size, img_size), patch_size=16, in_channels=3,
                      embed_dims=embed_dim, num_layers=depth, num_heads=num_heads, mlp_ratio=4, qv_bias=True,
                      init_values=0.1, drop_path_rate=0.0, out_indices=out_indices, final_norm=False,
                      norm_cfg=dict(type="LN", eps=1e-6)),
        neck=dict(type="Feature2Pyramid", embed_dim=embed_dim, rescales=[4, 2, 1, 0.5], norm_cfg=norm),
        decode_head=dict(type="UPerHead", in_channels=[embed_dim] * 4, in_index=[0, 1, 2, 3],
                         pool_scales=(1, 2, 3, 6), channels=channels, **head),
        auxiliary_head=dict(type="FCNHead", in_channels=embed_dim, in_index=2, channels=aux_channels,
                            num_convs=1, concat_input=False, **head),
        train_cfg=dict(),
        test_cfg=dict(mode="whole"),
    )


def build_mmseg(**settings: int) -> torch.nn.Module:
    with DefaultScope.overwrite_default_scope("mmseg"):
        return MODELS.build(mmseg_config(**settings))


def relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


@pytest.fixture(scope="module")
def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """(mmseg model, our model) with the same random weights, both in eval mode."""
    torch.manual_seed(0)
    theirs = build_mmseg(**TINY).eval()
    randomised = {}
    for key, value in theirs.state_dict().items():
        if not value.is_floating_point():
            randomised[key] = value
        elif key.endswith("running_var"):
            randomised[key] = torch.rand_like(value) + 0.5
        else:
            randomised[key] = torch.randn_like(value) * 0.2
    theirs.load_state_dict(randomised)
    canonical, layout = split_layout(randomised)
    assert layout == "mmseg"
    ours = ARCHITECTURES["test_beit_tiny_upernet"].build(**TINY).eval()
    assert load_state_dict_strict(ours, canonical) == []
    return theirs, ours


def test_state_dict_maps_back_to_mmseg(pair: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    theirs, ours = pair
    mapped = canonical_to_mmseg(ours.state_dict())
    expected = {k: v for k, v in theirs.state_dict().items() if not k.endswith("relative_position_index")}
    assert mapped.keys() == expected.keys()
    assert all(torch.equal(mapped[k], expected[k]) for k in expected)


def test_levels_and_logits_match_mmseg(pair: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    theirs, ours = pair
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        their_levels = theirs.extract_feat(x)
        their_logits = theirs.decode_head(their_levels)
        their_aux = theirs.auxiliary_head(their_levels)
        our_levels = ours.extract_feat(x)
        our_logits, our_aux = ours.forward_with_auxiliary(x)
    assert [t.shape for t in our_levels] == [t.shape for t in their_levels]
    for mine, reference in zip(our_levels, their_levels):
        assert relative_difference(mine, reference) <= 1e-4
    assert our_logits.shape == their_logits.shape == (2, 5, 16, 16)
    assert our_aux.shape == their_aux.shape == (2, 5, 4, 4)
    assert relative_difference(our_logits, their_logits) <= 1e-4
    assert relative_difference(our_aux, their_aux) <= 1e-4


def test_base_parameter_count_matches_mmseg() -> None:
    with torch.device("meta"):
        ours = ARCHITECTURES["beit_base_patch16_upernet"].build()
    theirs = build_mmseg(**BASE)  # mmseg computes while building: not on the meta device
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters())
    assert round(count / 1e6, 1) == 163.1
