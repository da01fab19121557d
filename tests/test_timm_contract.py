"""timm's backbone contracts, checked against timm itself with the same random weights:
``forward_intermediates``, features-only models and ``feature_info``, ``group_matcher`` (layer
decay in ``create_optimizer_v2``), ``pretrained_cfg`` (``resolve_model_data_config``), and
``dynamic_img_size`` against a model built at that size."""

import pytest
import torch

from beitv2_zoo.checkpoint import adapt_state_dict
from beitv2_zoo.models import BEIT_ARCHITECTURES, Beit
from beitv2_zoo.models.features import FeatureInfo, features_only
from beitv2_zoo.weights import get_record
from beitv2_zoo.weights.schema import Preprocessing
from beitv2_zoo.weights.timm_cfg import pretrained_cfg_of

from .conftest import image_batch, max_abs_diff, randomize_

timm = pytest.importorskip("timm")
from timm.models._features import FeatureGetterNet  # noqa: E402
from timm.models.beit import Beit as TimmBeit  # noqa: E402

TINY = dict(patch_size=16, embed_dim=64, depth=4, num_heads=2)
VARIANTS = {
    "rel_pos": dict(use_abs_pos_emb=False, use_rel_pos_bias=True, init_values=0.1),
    "shared_rel_pos": dict(use_abs_pos_emb=False, use_rel_pos_bias=False, use_shared_rel_pos_bias=True, init_values=0.1),
    "abs_pos_token": dict(use_abs_pos_emb=True, use_rel_pos_bias=False, init_values=None, global_pool="token"),
}


def pair(variant: str = "rel_pos", num_classes: int = 10) -> tuple[torch.nn.Module, Beit]:
    """A random tiny timm Beit and ours with the same weights (the canonical keys are timm's)."""
    settings = VARIANTS[variant]
    reference = randomize_(TimmBeit(img_size=224, num_classes=num_classes, **TINY, **settings)).eval()
    ours = Beit(img_size=224, num_classes=num_classes, **TINY, **settings).eval()
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def flatten(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for item in output for t in flatten(item)]


def assert_same(expected, actual, tol: float = 1e-5) -> None:
    expected, actual = flatten(expected), flatten(actual)
    assert [t.shape for t in actual] == [t.shape for t in expected]
    assert max(max_abs_diff(a, b) for a, b in zip(actual, expected)) <= tol


# ----------------------------------------------------------- forward_intermediates
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_forward_intermediates_match_timm(variant):
    reference, ours = pair(variant)
    x = image_batch(2)
    calls = [
        dict(),
        dict(indices=2),
        dict(indices=[0, -1], output_fmt="NLC"),
        dict(indices=[1, 2], norm=True, stop_early=True),
        dict(indices=[1, 3], return_prefix_tokens=True, intermediates_only=True),
        dict(indices=(0,), output_fmt="NLC", return_prefix_tokens=True, intermediates_only=True),
    ]
    with torch.no_grad():
        for kwargs in calls:
            assert_same(reference.forward_intermediates(x, **kwargs), ours.forward_intermediates(x, **kwargs))


def test_forward_intermediates_shapes_and_errors():
    _, ours = pair()
    x = image_batch(1)
    with torch.no_grad():
        final, maps = ours.forward_intermediates(x, indices=[0, 3])
        assert final.shape == (1, 197, 64) and [m.shape for m in maps] == [(1, 64, 14, 14)] * 2
        assert torch.equal(final, ours.forward_features(x))
        tokens = ours.forward_intermediates(x, indices=1, output_fmt="NLC", intermediates_only=True)
        assert tokens[0].shape == (1, 196, 64)  # timm splits the CLS token off NLC outputs too
    for bad in ([9], 5, 0):
        with pytest.raises(IndexError):
            ours.forward_intermediates(x, indices=bad)
    with pytest.raises(ValueError, match="output_fmt"):
        ours.forward_intermediates(x, output_fmt="NHWC")


def test_prune_intermediate_layers_matches_timm():
    reference, ours = pair()
    assert ours.prune_intermediate_layers([1, -3]) == reference.prune_intermediate_layers([1, -3]) == [1, 1]
    assert len(ours.blocks) == len(reference.blocks) == 2
    assert ours.fc_norm is None and isinstance(ours.head, torch.nn.Identity) and ours.global_pool == ""
    x = image_batch(1)
    with torch.no_grad():
        assert_same(reference(x), ours(x))  # unpooled tokens [B, 197, D] after the pruned model


# ----------------------------------------------------------- features only
def test_features_only_matches_timm_feature_getter():
    reference, ours = pair()
    timm_features = FeatureGetterNet(reference, out_indices=(0, 2, 3)).eval()
    features = features_only(ours, (0, 2, -1)).eval()
    x = image_batch(2)
    with torch.no_grad():
        expected, maps = timm_features(x), features(x)
    assert isinstance(maps, list) and [m.shape for m in maps] == [(2, 64, 14, 14)] * 3
    assert_same(expected, maps)
    for accessor in ("channels", "reduction", "module_name"):
        assert getattr(features.feature_info, accessor)() == getattr(timm_features.feature_info, accessor)()
        assert getattr(features.feature_info, accessor)(1) == getattr(timm_features.feature_info, accessor)(1)
    assert features.out_indices == timm_features.out_indices == [0, 2, 3]
    assert sorted(features.state_dict()) == sorted(timm_features.state_dict())


def test_timms_own_feature_getter_wraps_our_model():
    """Code that wraps a timm backbone itself (``FeatureGetterNet``, timm's ``Format`` enum) works on ours."""
    reference, ours = pair()
    expected = FeatureGetterNet(reference, out_indices=2).eval()
    wrapped = FeatureGetterNet(ours, out_indices=2).eval()
    with torch.no_grad():
        assert_same(expected(image_batch(1)), wrapped(image_batch(1)))
    assert wrapped.feature_info.module_name() == ["blocks.2", "blocks.3"]


def test_features_only_base_metadata_is_timms():
    """What timm's ``create_model('beitv2_base_patch16_224', features_only=True, out_indices=(3, 5, 7, 11))`` reports."""
    with torch.device("meta"):
        model = Beit(**BEIT_ARCHITECTURES["beit_base_patch16"])
    features = features_only(model, (3, 5, 7, 11))
    assert features.feature_info.channels() == [768] * 4 and features.feature_info.reduction() == [16] * 4
    assert features.feature_info.module_name() == ["blocks.3", "blocks.5", "blocks.7", "blocks.11"]
    default = FeatureInfo(model.feature_info, 3)
    assert default.out_indices == (-3, -2, -1) and default.module_name() == ["blocks.9", "blocks.10", "blocks.11"]
    with pytest.raises(TypeError):
        features_only(torch.nn.Linear(2, 2), 1)


def test_features_only_norm_keeps_the_norm():
    reference, ours = pair("abs_pos_token")
    timm_features = FeatureGetterNet(reference, out_indices=2, norm=True).eval()
    features = features_only(ours, 2, norm=True).eval()
    assert not isinstance(features.model.norm, torch.nn.Identity)
    with torch.no_grad():
        assert_same(timm_features(image_batch(1)), features(image_batch(1)))


# ----------------------------------------------------------- optimizer groups
def layer_decay_groups(model: torch.nn.Module) -> dict[str, tuple[float, float]]:
    from timm.optim import create_optimizer_v2

    optimizer = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.65)
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: (g["lr_scale"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}, len(
        optimizer.param_groups
    )


def test_group_matcher_gives_timms_layer_decay():
    reference, ours = pair()
    expected, expected_count = layer_decay_groups(reference)
    actual, count = layer_decay_groups(ours)
    assert count == expected_count
    assert {n: s for n, (s, _) in actual.items()} == {n: s for n, (s, _) in expected.items()}
    assert len({s for s, _ in actual.values()}) == len(TINY) + 2 == 6  # stem, 4 blocks, head
    assert ours.group_matcher(coarse=True) == ours.group_matcher()
    # weight decay differs only where the official recipe differs from timm: relative position tables decay
    differ = {n for n in actual if actual[n][1] != expected[n][1]}
    assert differ and all(n.endswith("relative_position_bias_table") for n in differ)


def test_group_matcher_base_has_fourteen_layers():
    from timm.optim._param_groups import param_groups_layer_decay

    with torch.device("meta"):
        ours = Beit(**BEIT_ARCHITECTURES["beit_base_patch16"], num_classes=10)
    groups = param_groups_layer_decay(ours, layer_decay=0.65)
    assert len({g["lr_scale"] for g in groups}) == 14


def test_reset_classifier_takes_timms_global_pool():
    _, ours = pair()
    ours.reset_classifier(3, global_pool="token")
    assert ours.num_classes == 3 and ours.global_pool == "token" and ours.head.out_features == 3
    assert ours.num_features == 64
    with torch.no_grad():
        tokens = ours.forward_features(image_batch(1))
        assert max_abs_diff(ours.forward_head(tokens, pre_logits=True), ours.fc_norm(tokens[:, 0])) == 0.0
    with pytest.raises(ValueError, match="global_pool"):
        ours.reset_classifier(3, global_pool="max")


# ----------------------------------------------------------- pretrained_cfg
@pytest.mark.parametrize("name, crop_pct, mean", [
    ("beitv2_base_patch16_224.in1k_ft_in22k_in1k", 0.9, (0.485, 0.456, 0.406)),
    ("beitv2_large_patch16_224.in1k_ft_in1k", 0.95, (0.485, 0.456, 0.406)),
    ("beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k", 0.875, (0.485, 0.456, 0.406)),
    ("beit-base-p16_beit-pre_8xb128-coslr-100e_in1k", 0.875, (0.5, 0.5, 0.5)),
])
def test_timm_resolves_the_records_transform(name, crop_pct, mean):
    from timm.data import create_transform, resolve_model_data_config

    record = get_record(name)
    model = torch.nn.Module()
    model.pretrained_cfg = pretrained_cfg_of(record, num_classes=record.num_classes)
    config = resolve_model_data_config(model)
    assert config["input_size"] == (3, 224, 224) and config["interpolation"] == "bicubic"
    assert config["crop_pct"] == pytest.approx(crop_pct) and config["crop_mode"] == "center"
    assert config["mean"] == pytest.approx(mean) and config["std"] == pytest.approx(record.preprocessing.std)
    resize = create_transform(**config).transforms[0]
    assert resize.size == record.preprocessing.resize_size  # floor(224 / crop_pct) is the record's short edge
    assert model.pretrained_cfg["first_conv"] == "patch_embed.proj" and model.pretrained_cfg["classifier"] == "head"


def test_pretrained_cfg_of_a_bare_transform():
    cfg = pretrained_cfg_of(Preprocessing(resize_size=235, crop_size=224), num_classes=5)
    assert cfg["num_classes"] == 5 and int(224 / cfg["crop_pct"]) == 235 and cfg["architecture"] is None
    with pytest.raises(TypeError):
        pretrained_cfg_of("beitv2")


# ----------------------------------------------------------- dynamic_img_size
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_dynamic_img_size_matches_a_model_built_at_that_size(variant):
    settings = {**TINY, **VARIANTS[variant], "num_classes": 10}
    source = randomize_(Beit(img_size=224, **settings)).eval()
    dynamic = Beit(img_size=224, dynamic_img_size=True, **settings).eval()
    dynamic.load_state_dict(source.state_dict())
    x224 = image_batch(2)
    with torch.no_grad():
        assert torch.equal(dynamic(x224), source(x224))  # at the build size nothing changes
    for size in (288, 160):
        built = Beit(img_size=size, **settings).eval()
        built.load_state_dict(adapt_state_dict(source.state_dict(), built)[0])
        x = image_batch(2, size)
        with torch.no_grad():
            assert max_abs_diff(dynamic(x), built(x)) <= 1e-5
            final, maps = dynamic.forward_intermediates(x, indices=[1])
            assert maps[0].shape == (2, 64, size // 16, size // 16)
            assert max_abs_diff(final, built.forward_features(x)) <= 1e-5


def test_dynamic_img_size_takes_rectangles_and_trains():
    _, ours = pair("shared_rel_pos")
    dynamic = Beit(img_size=224, dynamic_img_size=True, **TINY, **VARIANTS["shared_rel_pos"], num_classes=10)
    dynamic.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 160, 256, generator=torch.Generator().manual_seed(0))
    dynamic.set_grad_checkpointing()
    dynamic(x).square().mean().backward()
    assert dynamic.rel_pos_bias.relative_position_bias_table.grad.abs().sum() > 0
    with torch.no_grad():
        assert [m.shape for m in dynamic.forward_intermediates(x, indices=1, intermediates_only=True)] == [(2, 64, 10, 16)]
        assert dynamic.attention_maps(x).shape == (2, 2, 161, 161)
    with pytest.raises(ValueError, match="multiples of 16"):
        dynamic(torch.zeros(1, 3, 224, 230))
    with pytest.raises(ValueError, match="dynamic_img_size"):
        ours(x)  # without the flag only the build size is accepted


@pytest.mark.slow
def test_base_features_only_matches_timm_create_model():
    """``timm.create_model('beitv2_base_patch16_224', features_only=True, out_indices=(3, 5, 7, 11))`` at full size."""
    reference = randomize_(timm.create_model("beitv2_base_patch16_224", pretrained=False)).eval()
    ours = Beit(**BEIT_ARCHITECTURES["beit_base_patch16"]).eval()
    ours.load_state_dict(reference.state_dict())
    x = image_batch(1)
    with torch.no_grad():
        assert_same(reference.forward_intermediates(x, indices=(3, 5, 7, 11)),
                    ours.forward_intermediates(x, indices=(3, 5, 7, 11)), tol=1e-4)
    timm_features = timm.create_model("beitv2_base_patch16_224", pretrained=False, features_only=True,
                                      out_indices=(3, 5, 7, 11)).eval()
    features = features_only(ours, (3, 5, 7, 11))
    timm_features.load_state_dict(features.state_dict())
    with torch.no_grad():
        maps = features(x)
        assert [m.shape for m in maps] == [(1, 768, 14, 14)] * 4
        assert_same(timm_features(x), maps, tol=1e-4)
    for accessor in ("channels", "reduction", "module_name"):
        assert getattr(features.feature_info, accessor)() == getattr(timm_features.feature_info, accessor)()


def test_get_model_features_only_and_pretrained_cfg_as_timm_resolves_them():
    """get_model's timm contract: features_only/out_indices and a pretrained_cfg timm's data config reads."""
    import timm.data

    from beitv2_zoo import get_model

    backbone = get_model("test_beit_tiny", features_only=True, out_indices=(1, 3))
    maps = backbone(torch.rand(2, 3, 224, 224))
    assert [tuple(m.shape) for m in maps] == [(2, 64, 14, 14)] * 2
    assert backbone.feature_info.channels() == [64, 64] and backbone.feature_info.reduction() == [16, 16]
    timm_base = get_model("beitv2_base_patch16_224.in1k_ft_in1k", img_size=224)
    assert timm.data.resolve_model_data_config(timm_base)["crop_pct"] == pytest.approx(0.9)
    mmpretrain_tiny = get_model("test_beit_tiny")
    config = timm.data.resolve_model_data_config(mmpretrain_tiny)
    assert config["crop_pct"] == pytest.approx(224 / 256) and config["interpolation"] == "bicubic"
    with pytest.raises(Exception, match="features_only"):
        get_model("test_vqkd_tiny", features_only=True)
