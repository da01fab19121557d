"""The BEiT + UPerNet segmenter: shapes, the registered sizes, dynamic input sizes, fresh heads, and loading
classifier, pretraining and segmenter checkpoints into it."""

import logging

import pytest
import torch
from safetensors.torch import save_file

from beitv2_zoo.checkpoint import read_checkpoint
from beitv2_zoo.checkpoint.adapt import load_state_dict_strict, load_weights
from beitv2_zoo.checkpoint.infer import architecture_of
from beitv2_zoo.errors import CheckpointMismatchError, ModelConfigError
from beitv2_zoo.layers import resize_rel_pos_bias_table
from beitv2_zoo.models import ARCHITECTURES, Beit, BeitSegmenter

from .conftest import image_batch, randomize_

TINY = "test_beit_tiny_upernet"


def tiny(**overrides) -> BeitSegmenter:
    torch.manual_seed(0)
    return ARCHITECTURES[TINY].build(**{"img_size": 64, "num_classes": 5, **overrides}).eval()


def randomize_buffers_(model: torch.nn.Module) -> torch.nn.Module:
    """Random batch-norm statistics too, so that a wrong buffer shows up in the logits."""
    generator = torch.Generator().manual_seed(1)
    randomize_(model)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(0.1 * torch.randn(buffer.shape, generator=generator))
            elif name.endswith("running_var"):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))
    return model


def test_registered_architectures() -> None:
    for name in ("beit_base_patch16_upernet", "beit_large_patch16_upernet", TINY):
        arch = ARCHITECTURES[name]
        assert arch.model_class is BeitSegmenter and arch.is_classifier and arch.task == "semantic-segmentation"
    assert ARCHITECTURES["beit_large_patch16_upernet"].settings["out_indices"] == (7, 11, 15, 23)


def test_tiny_shapes_at_its_registered_size() -> None:
    model = ARCHITECTURES[TINY].build().eval()
    assert (model.num_classes, model.img_size, model.output_stride, model.rel_pos_resize) == (150, 512, 4, "cubic")
    assert model.task == "semantic-segmentation"
    with torch.no_grad():
        logits = model(image_batch(1, 512))
    assert logits.shape == (1, 150, 128, 128)


def test_extract_feat_levels() -> None:
    model = tiny()
    with torch.no_grad():
        levels = model.extract_feat(image_batch(2, 64))
    assert [tuple(t.shape) for t in levels] == [(2, 64, 16, 16), (2, 64, 8, 8), (2, 64, 4, 4), (2, 64, 2, 2)]


def test_forward_with_auxiliary() -> None:
    model = tiny()
    x = image_batch(2, 64)
    with torch.no_grad():
        logits, aux = model.forward_with_auxiliary(x)
        assert torch.equal(logits, model(x))
    assert logits.shape == (2, 5, 16, 16) and aux.shape == (2, 5, 4, 4)
    plain = tiny(auxiliary=False)
    assert plain.auxiliary_head is None
    with torch.no_grad():
        assert plain.forward_with_auxiliary(x)[1] is None
    assert not any(k.startswith("auxiliary_head.") for k in plain.state_dict())


def test_state_dict_is_the_official_layout() -> None:
    keys = set(tiny().state_dict())
    for key in ("backbone.cls_token", "backbone.patch_embed.proj.weight", "backbone.blocks.3.gamma_2",
                "backbone.blocks.0.attn.relative_position_bias_table", "backbone.fpn1.0.weight",
                "backbone.fpn1.1.running_var", "backbone.fpn1.3.bias", "backbone.fpn2.0.weight",
                "decode_head.psp_modules.3.1.conv.weight", "decode_head.bottleneck.bn.weight",
                "decode_head.lateral_convs.2.conv.weight", "decode_head.fpn_convs.0.bn.bias",
                "decode_head.fpn_bottleneck.conv.weight", "decode_head.conv_seg.weight",
                "auxiliary_head.convs.0.conv.weight", "auxiliary_head.conv_seg.bias"):
        assert key in keys, key
    assert not any(k.startswith(("backbone.norm.", "backbone.fc_norm.", "backbone.head."))
                   or k.endswith("relative_position_index") for k in keys)


def test_base_parameter_count() -> None:
    with torch.device("meta"):
        model = ARCHITECTURES["beit_base_patch16_upernet"].build()
    count = sum(p.numel() for p in model.parameters())
    assert count == 163_080_812 and round(count / 1e6, 1) == 163.1


def test_fresh_heads_are_initialised_as_mmseg() -> None:
    model = ARCHITECTURES[TINY].build(img_size=64, num_classes=5, channels=64)
    seg = model.decode_head.conv_seg
    assert float(seg.bias.detach().abs().max()) == 0.0 and 0.005 < float(seg.weight.detach().std()) < 0.015
    conv = model.decode_head.fpn_bottleneck.conv.weight.detach()  # kaiming normal, fan_out, ReLU gain
    expected = (2.0 / (conv.shape[0] * conv.shape[2] * conv.shape[3])) ** 0.5
    assert abs(float(conv.std()) / expected - 1.0) < 0.1
    assert conv.shape[1] == 4 * 64 and model.decode_head.fpn_bottleneck.bn.eps == 1e-5


def test_input_size_is_dynamic_and_exact_at_img_size() -> None:
    model = randomize_(tiny())
    x = image_batch(2, 64)
    reference = Beit(img_size=64, num_classes=0, global_pool="", embed_dim=64, depth=4, num_heads=2).eval()
    own = {k[len("backbone."):]: v for k, v in model.state_dict().items()
           if k.startswith("backbone.") and not k.startswith("backbone.fpn")}
    reference.load_state_dict(own, strict=False)
    with torch.no_grad():
        fixed = reference.forward_intermediates(x, indices=[0, 1, 2, 3], intermediates_only=True)
        dynamic = model.forward_intermediates(x, indices=[0, 1, 2, 3], intermediates_only=True)
        assert all(torch.equal(a, b) for a, b in zip(fixed, dynamic))
        other = model(torch.randn(1, 3, 96, 48))
    assert other.shape == (1, 5, 24, 12) and bool(torch.isfinite(other).all())
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.randn(1, 3, 72, 64))


def test_settings_are_checked() -> None:
    with pytest.raises(ModelConfigError, match="num_classes"):
        tiny(num_classes=0)
    with pytest.raises(ModelConfigError, match="out_indices"):
        tiny(out_indices=(0, 1, 2))
    with pytest.raises(ModelConfigError, match="out_indices"):
        tiny(out_indices=(0, 1, 2, 4))
    with pytest.raises(ModelConfigError, match="aux_in_index"):
        tiny(aux_in_index=4)


def test_reset_classifier_gives_real_storage_on_meta() -> None:
    with torch.device("meta"):
        model = ARCHITECTURES[TINY].build(img_size=64)
    model.reset_classifier(7)
    assert model.num_classes == 7
    assert model.decode_head.conv_seg.out_channels == 7 and model.auxiliary_head.conv_seg.out_channels == 7
    for prefix in ("backbone.fpn", "decode_head.", "auxiliary_head."):
        tensors = [v for k, v in model.state_dict().items() if k.startswith(prefix)]
        assert tensors and not any(t.is_meta for t in tensors)
    assert model.backbone.cls_token.is_meta  # the transformer is untouched


def _save(state: dict[str, torch.Tensor], path) -> None:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def test_load_a_classifier_checkpoint(tmp_path, caplog) -> None:
    classifier = randomize_(ARCHITECTURES["test_beit_tiny"].build(num_classes=10))  # 224: 14x14 tables
    path = tmp_path / "classifier.safetensors"
    _save(classifier.state_dict(), path)
    with torch.device("meta"):
        model = ARCHITECTURES[TINY].build(img_size=128)
    with caplog.at_level(logging.WARNING, logger="beitv2_zoo.checkpoint.adapt"):
        left_out = load_weights(model, read_checkpoint(path))
    assert "dropped its 4 classifier/pretraining-only tensors (fc_norm, head)" in caplog.text
    assert left_out and all(k.startswith(("backbone.fpn", "decode_head.", "auxiliary_head.")) for k in left_out)
    assert not any(t.is_meta for t in model.state_dict().values())
    state = model.state_dict()
    assert torch.equal(state["backbone.blocks.2.attn.qkv.weight"], classifier.state_dict()["blocks.2.attn.qkv.weight"])
    table = classifier.state_dict()["blocks.1.attn.relative_position_bias_table"]
    expected = resize_rel_pos_bias_table(table, (8, 8), method="cubic")
    assert torch.equal(state["backbone.blocks.1.attn.relative_position_bias_table"], expected)
    with torch.no_grad():
        assert model.eval()(image_batch(1, 128)).shape == (1, 150, 32, 32)


def test_load_a_pretraining_state() -> None:
    pretrain = randomize_(ARCHITECTURES["test_beitv2_mim_tiny"].build())
    state = pretrain.state_dict()
    shared = state["rel_pos_bias.relative_position_bias_table"]
    model = tiny()
    left_out = load_state_dict_strict(model, state)
    assert left_out
    expected = resize_rel_pos_bias_table(shared, (4, 4), method="cubic")
    for i in range(4):
        assert torch.equal(model.state_dict()[f"backbone.blocks.{i}.attn.relative_position_bias_table"], expected)
    assert torch.equal(model.backbone.cls_token, state["cls_token"])


def test_segmenter_checkpoint_round_trip_and_inference(tmp_path) -> None:
    source = randomize_buffers_(tiny())
    path = tmp_path / "segmenter.safetensors"
    _save(source.state_dict(), path)
    checkpoint = read_checkpoint(path)
    arch, settings = architecture_of(checkpoint.state_dict)
    assert arch is ARCHITECTURES[TINY]
    assert settings["img_size"] == 64 and settings["num_classes"] == 5 and settings["out_indices"] == (0, 1, 2, 3)
    with torch.device("meta"):
        model = arch.build(**settings)
    assert load_weights(model, checkpoint) == []
    x = image_batch(1, 64)
    with torch.no_grad():  # the same weights; convolutions on mapped file memory may round differently
        assert float((model.eval()(x) - source(x)).abs().max()) <= 1e-6


def test_segmenter_checkpoint_with_other_classes_keeps_the_heads(caplog) -> None:
    source = randomize_buffers_(tiny())
    model = tiny(num_classes=3, auxiliary=False)
    with caplog.at_level(logging.INFO, logger="beitv2_zoo.checkpoint.adapt"):
        assert load_state_dict_strict(model, source.state_dict()) == []
    assert "dropped the checkpoint's auxiliary head" in caplog.text
    assert "replaced the checkpoint's 5-class segmentation classifiers" in caplog.text
    assert torch.equal(model.decode_head.fpn_bottleneck.conv.weight, source.decode_head.fpn_bottleneck.conv.weight)
    assert model.decode_head.conv_seg.weight.shape == (3, 32, 1, 1)


def test_mismatched_segmenter_file_raises_one_report() -> None:
    state = tiny().state_dict()
    deeper = tiny(depth=5, out_indices=(0, 1, 2, 4))
    with pytest.raises(CheckpointMismatchError, match=r"missing from the checkpoint:\n  backbone\.blocks\.4\."):
        load_state_dict_strict(deeper, state)
    wider = dict(state)
    wider["decode_head.bottleneck.conv.weight"] = torch.zeros(32, 193, 3, 3)
    with pytest.raises(CheckpointMismatchError, match="decode_head.bottleneck.conv.weight"):
        load_state_dict_strict(tiny(), wider)
