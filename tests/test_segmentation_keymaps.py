"""Key maps of segmenter checkpoints: official ↔ canonical, mmseg ↔ canonical, transformers ↔ canonical,
layout detection, and transformers' BeitForSemanticSegmentation heads as an oracle."""

import pytest
import torch

from beitv2_zoo.checkpoint import split_layout
from beitv2_zoo.checkpoint.adapt import load_state_dict_strict
from beitv2_zoo.checkpoint.keymaps_segmentation import (
    canonical_to_mmseg,
    canonical_to_transformers_segmentation,
    is_segmentation_state,
    mmseg_to_canonical,
    transformers_segmentation_to_canonical,
)
from beitv2_zoo.models import ARCHITECTURES, build_beit

from .conftest import image_batch, randomize_


def tiny_state(**overrides) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = ARCHITECTURES["test_beit_tiny_upernet"].build(**{"img_size": 64, "num_classes": 5, **overrides})
    return randomize_(model).state_dict()


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_mmseg_round_trip_and_names() -> None:
    state = tiny_state()
    mmseg = canonical_to_mmseg(state)
    for key in ("backbone.patch_embed.projection.weight", "backbone.layers.2.ln1.weight",
                "backbone.layers.2.ffn.layers.0.0.weight", "backbone.layers.2.ffn.layers.1.bias",
                "backbone.layers.0.attn.relative_position_bias_table", "backbone.layers.3.gamma_1",
                "neck.upsample_4x.0.weight", "neck.upsample_4x.1.running_mean", "neck.upsample_4x.3.bias",
                "neck.upsample_2x.0.weight", "decode_head.conv_seg.weight", "auxiliary_head.convs.0.bn.weight"):
        assert key in mmseg, key
    assert not any(k.startswith(("backbone.blocks.", "backbone.fpn")) for k in mmseg)
    assert same(mmseg_to_canonical(mmseg), state)
    assert same(split_layout({"meta": {}, "state_dict": mmseg})[0], state)
    assert split_layout(mmseg)[1] == "mmseg"


def test_mmseg_round_trip_patch_8() -> None:
    state = tiny_state(patch_size=8)
    mmseg = canonical_to_mmseg(state)
    assert "neck.upsample_2x.0.weight" in mmseg and not any(k.startswith("neck.upsample_4x") for k in mmseg)
    assert same(mmseg_to_canonical(mmseg), state)


def test_mmseg_index_buffers_and_preprocessor_are_dropped() -> None:
    state = tiny_state()
    mmseg = canonical_to_mmseg(state)
    mmseg["backbone.layers.0.attn.relative_position_index"] = torch.zeros(17, 17, dtype=torch.long)
    mmseg["data_preprocessor.mean"] = torch.zeros(3, 1, 1)
    assert same(mmseg_to_canonical(mmseg), state)


def test_official_layout_is_canonical() -> None:
    state = tiny_state()
    official = {**state, "backbone.blocks.1.attn.relative_position_index": torch.zeros(17, 17, dtype=torch.long)}
    canonical, layout = split_layout({"meta": {}, "state_dict": official})
    assert layout == "official" and same(canonical, state)
    ddp = {"module." + k: v for k, v in official.items()}
    assert same(split_layout(ddp)[0], state)


def test_transformers_round_trip_both_spellings() -> None:
    state = tiny_state()
    file = canonical_to_transformers_segmentation(state)
    for key in ("beit.embeddings.cls_token", "beit.encoder.layer.0.attention.attention.query.weight",
                "fpn1.0.weight", "fpn1.1.running_var", "fpn1.3.weight", "fpn2.0.bias",
                "decode_head.classifier.weight", "decode_head.psp_modules.0.1.conv.weight",
                "auxiliary_head.classifier.bias", "auxiliary_head.convs.0.bn.weight"):
        assert key in file, key
    assert same(transformers_segmentation_to_canonical(file), state)
    canonical, layout = split_layout(file)
    assert layout == "transformers" and same(canonical, state)

    modern = {}  # transformers 5 in-memory module names
    renames = [("fpn1.0.", "fpn.fpn1.conv_transpose1."), ("fpn1.1.", "fpn.fpn1.normalization."),
               ("fpn1.3.", "fpn.fpn1.conv_transpose2."), ("fpn2.0.", "fpn.fpn2.")]
    for key, value in file.items():
        for old, new in renames:
            if key.startswith(old):
                key = new + key[len(old):]
        if key.startswith(("decode_head.", "auxiliary_head.")):
            key = key.replace(".conv.", ".convolution.").replace(".bn.", ".normalization.")
            key = key.replace("decode_head.bottleneck.", "decode_head.psp_bottleneck.")
            for i in range(4):
                key = key.replace(f"decode_head.psp_modules.{i}.1.", f"decode_head.psp_modules.blocks.{i}.conv.")
        modern[key] = value
    assert same(transformers_segmentation_to_canonical(modern), state)


def test_detection_leaves_other_layouts_alone() -> None:
    classifier = build_beit("test_beit_tiny").state_dict()
    assert not is_segmentation_state(classifier)
    assert split_layout(classifier)[1] == "timm"
    pretrain = ARCHITECTURES["test_beitv2_mim_tiny"].build().state_dict()
    assert not is_segmentation_state(pretrain)


def test_transformers_heads_oracle(tmp_path) -> None:
    """transformers' BeitForSemanticSegmentation reads our file through ``from_pretrained``; fed our own
    features, its adapter, UPerNet head and FCN head give our outputs (the encoder is not compared:
    transformers taps other blocks, see the reference notes)."""
    transformers = pytest.importorskip("transformers")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    ours = ARCHITECTURES["test_beit_tiny_upernet"].build(img_size=64, num_classes=5, channels=64).eval()
    randomize_(ours)
    with torch.no_grad():
        for name, buffer in ours.named_buffers():
            if name.endswith("running_var"):
                buffer.copy_(0.5 + torch.rand(buffer.shape))
            elif name.endswith("running_mean"):
                buffer.copy_(0.1 * torch.randn(buffer.shape))
    config = transformers.BeitConfig(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=256, image_size=64,
        use_relative_position_bias=True, use_auxiliary_head=True, auxiliary_channels=16, num_labels=5,
        out_indices=[1, 2, 3, 4], layer_scale_init_value=0.1, layer_norm_eps=1e-6, pool_scales=[1, 2, 3, 6])
    config.save_pretrained(tmp_path)
    file = {k: v.contiguous() for k, v in canonical_to_transformers_segmentation(ours.state_dict()).items()}
    safetensors_torch.save_file(file, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    theirs = transformers.BeitForSemanticSegmentation.from_pretrained(tmp_path).eval()
    x = image_batch(2, 64)
    with torch.no_grad():
        maps = ours.forward_intermediates(x, indices=[0, 1, 2, 3], intermediates_only=True)
        levels = ours.extract_feat(x)
        logits, aux = ours.forward_with_auxiliary(x)
        their_levels = theirs.fpn(tuple(maps))
        their_logits = theirs.decode_head(list(levels))
        their_aux = theirs.auxiliary_head(list(levels))
    assert all(float((a - b).abs().max()) <= 1e-6 for a, b in zip(levels, their_levels))
    assert float((logits - their_logits).abs().max() / logits.abs().max()) <= 1e-6
    assert float((aux - their_aux).abs().max() / aux.abs().max()) <= 1e-6
    # and its in-memory state dict (transformers 5 names) reads back as ours
    canonical, layout = split_layout(theirs.state_dict())
    assert layout == "transformers"
    assert load_state_dict_strict(ARCHITECTURES["test_beit_tiny_upernet"].build(img_size=64, num_classes=5,
                                                                              channels=64), canonical) == []
