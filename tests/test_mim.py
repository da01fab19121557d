"""The BEiT v2 pretraining model: layouts, tokenizer attachment, forward and loss, fine-tuning from it."""

import dataclasses
import hashlib
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from beitv2_zoo import ModelConfigError, get_model, inference_model
from beitv2_zoo.checkpoint import load_state_dict_strict, split_layout
from beitv2_zoo.checkpoint.keymaps_pretrain import (
    canonical_to_mmpretrain_pretrain,
    canonical_to_official_vqkd,
    mmpretrain_pretrain_to_canonical,
)
from beitv2_zoo.train.masking import BlockMaskGenerator
from beitv2_zoo.models import ARCHITECTURES, BeitV2Pretrain
from beitv2_zoo.train.objectives import mim_loss, mim_loss_from_ids
from beitv2_zoo.weights import get_record, register, unregister
from beitv2_zoo.weights.schema import Source

from .conftest import image_batch, max_abs_diff, randomize_
from .http_server import LocalServer
from .test_vqkd import meta_state, official_tokenizer_shapes, random_tokenizer


# ------------------------------------------------------------------ layouts
def _block_shapes(prefix: str, dim: int, gamma: bool = True) -> dict[str, tuple[int, ...]]:
    shapes = {
        f"{prefix}.norm1.weight": (dim,), f"{prefix}.norm1.bias": (dim,),
        f"{prefix}.attn.qkv.weight": (3 * dim, dim), f"{prefix}.attn.q_bias": (dim,), f"{prefix}.attn.v_bias": (dim,),
        f"{prefix}.attn.proj.weight": (dim, dim), f"{prefix}.attn.proj.bias": (dim,),
        f"{prefix}.norm2.weight": (dim,), f"{prefix}.norm2.bias": (dim,),
        f"{prefix}.mlp.fc1.weight": (4 * dim, dim), f"{prefix}.mlp.fc1.bias": (4 * dim,),
        f"{prefix}.mlp.fc2.weight": (dim, 4 * dim), f"{prefix}.mlp.fc2.bias": (dim,),
    }
    if gamma:
        shapes.update({f"{prefix}.gamma_1": (dim,), f"{prefix}.gamma_2": (dim,)})
    return shapes


def official_pretrain_shapes(dim: int = 768, depth: int = 12, heads: int = 12, grid: int = 14) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of an official ``beitv2_*_pt1k*.pth`` (``VisionTransformerForMaskedImageModelingCLS``),
    written out from reference/official_beitv2_timm.md §2.1(b)."""
    length = grid * grid + 1
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, dim), "mask_token": (1, 1, dim),
        "patch_embed.proj.weight": (dim, 3, 16, 16), "patch_embed.proj.bias": (dim,),
        "rel_pos_bias.relative_position_bias_table": ((2 * grid - 1) ** 2 + 3, heads),
        "rel_pos_bias.relative_position_index": (length, length),
        "norm.weight": (dim,), "norm.bias": (dim,),
        "lm_head.weight": (8192, dim), "lm_head.bias": (8192,),
    }
    for i in range(depth):
        shapes.update(_block_shapes(f"blocks.{i}", dim))
    for j in range(2):
        shapes.update(_block_shapes(f"cls_pt_layers.{j}", dim))
    return shapes


def mmpretrain_pretrain_shapes() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of mmpretrain's ``beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k`` state dict,
    written out from reference/mmpretrain_beitv2.md §4.2."""
    dim = 768

    def layer(prefix: str, gamma: bool) -> dict[str, tuple[int, ...]]:
        shapes = {
            f"{prefix}.ln1.weight": (dim,), f"{prefix}.ln1.bias": (dim,),
            f"{prefix}.attn.q_bias": (dim,), f"{prefix}.attn.v_bias": (dim,), f"{prefix}.attn.qkv.weight": (3 * dim, dim),
            f"{prefix}.attn.proj.weight": (dim, dim), f"{prefix}.attn.proj.bias": (dim,),
            f"{prefix}.ln2.weight": (dim,), f"{prefix}.ln2.bias": (dim,),
            f"{prefix}.ffn.layers.0.0.weight": (3072, dim), f"{prefix}.ffn.layers.0.0.bias": (3072,),
            f"{prefix}.ffn.layers.1.weight": (dim, 3072), f"{prefix}.ffn.layers.1.bias": (dim,),
        }
        if gamma:
            shapes.update({f"{prefix}.gamma_1": (dim,), f"{prefix}.gamma_2": (dim,)})
        return shapes

    shapes: dict[str, tuple[int, ...]] = {
        "backbone.cls_token": (1, 1, dim), "backbone.mask_token": (1, 1, dim),
        "backbone.patch_embed.projection.weight": (dim, 3, 16, 16), "backbone.patch_embed.projection.bias": (dim,),
        "backbone.rel_pos_bias.relative_position_bias_table": (732, 12),
        "backbone.rel_pos_bias.relative_position_index": (197, 197),
        "neck.norm.weight": (dim,), "neck.norm.bias": (dim,),
        "head.cls_head.weight": (8192, dim), "head.cls_head.bias": (8192,),
        "target_generator.encoder.cls_token": (1, 1, dim), "target_generator.encoder.pos_embed": (1, 197, dim),
        "target_generator.encoder.patch_embed.projection.weight": (dim, 3, 16, 16),
        "target_generator.encoder.patch_embed.projection.bias": (dim,),
        "target_generator.encoder.ln1.weight": (dim,), "target_generator.encoder.ln1.bias": (dim,),
        "target_generator.quantize.embedding.weight": (8192, 32),
        "target_generator.quantize.embedding.initted": (1,),
        "target_generator.quantize.cluster_size": (8192,),
        "target_generator.encode_task_layer.0.weight": (dim, dim), "target_generator.encode_task_layer.0.bias": (dim,),
        "target_generator.encode_task_layer.2.weight": (32, dim), "target_generator.encode_task_layer.2.bias": (32,),
    }
    for i in range(12):
        shapes.update(layer(f"backbone.layers.{i}", gamma=True))
        shapes.update(layer(f"target_generator.encoder.layers.{i}", gamma=False))
    for j in range(2):
        shapes.update(layer(f"neck.patch_aggregation.{j}", gamma=True))
    return shapes


def test_mmpretrain_pretrain_layout_loads_strictly_with_the_published_parameter_count():
    state, layout = split_layout({"meta": {}, "state_dict": meta_state(mmpretrain_pretrain_shapes())})
    assert layout == "mmpretrain"
    with torch.device("meta"):
        model = ARCHITECTURES["beitv2_mim_base_patch16"].build()
    assert load_state_dict_strict(model, state, assign=True) == []
    params = sum(p.numel() for p in model.parameters())
    record = get_record("beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k")
    assert params == record.params == 192_809_840
    assert "192,811,376" in record.notes and "1,536" in record.notes and "ln2" in record.notes
    parts = {"backbone": 85_664_592, "neck": 14_178_816, "head": 6_299_648, "tokenizer": 86_666_784}
    counted = {
        "tokenizer": sum(p.numel() for p in model.tokenizer.parameters()),
        "neck": sum(p.numel() for p in [*model.cls_pt_layers.parameters(), *model.norm.parameters()]),
        "head": sum(p.numel() for p in model.lm_head.parameters()),
    }
    counted["backbone"] = params - sum(counted.values())
    assert counted == parts  # reference/mmpretrain_beitv2.md §4.2


@pytest.mark.parametrize("size, dim, depth, heads", [("base", 768, 12, 12), ("large", 1024, 24, 16)])
def test_official_pretrain_layouts_load_strictly_with_the_tokenizer_attached(size, dim, depth, heads):
    state, layout = split_layout({"model": meta_state(official_pretrain_shapes(dim, depth, heads)), "epoch": 299})
    assert layout == "official" and "tokenizer.encoder.cls_token" not in state
    tokenizer, _ = split_layout({"model": meta_state(official_tokenizer_shapes(decoder_depth=3))})
    state.update({f"tokenizer.{k}": v for k, v in tokenizer.items()})
    with torch.device("meta"):
        model = ARCHITECTURES[f"beitv2_mim_{size}_patch16"].build()
    assert load_state_dict_strict(model, state, assign=True) == []  # the tokenizer's decoder is dropped deliberately
    assert model.early_layers == (9 if size == "base" else 21)
    record = get_record(f"beitv2_{size}_patch16_224_pt1k")
    assert record.tokenizer == "vqkd_encoder_base_decoder_3x768x12_clip"
    assert sum(p.numel() for p in model.parameters()) == record.params


def test_mmpretrain_pretrain_converters_round_trip():
    state = randomize_(BeitV2Pretrain(**_TINY)).state_dict()
    converted = canonical_to_mmpretrain_pretrain(state)
    assert {"backbone.mask_token", "neck.norm.weight", "head.cls_head.weight", "target_generator.encoder.ln1.weight",
            "neck.patch_aggregation.1.ffn.layers.1.weight", "backbone.rel_pos_bias.relative_position_bias_table"} <= set(converted)
    back = mmpretrain_pretrain_to_canonical(converted)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)


# --------------------------------------------------------------- tiny models
_TINY = dict(embed_dim=64, depth=4, num_heads=2, early_layers=3, vocab_size=64,
             tokenizer=dict(embed_dim=64, depth=2, num_heads=2, num_codes=64, code_dim=8, decoder_depth=0, kmeans_init=False))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny official-layout pretraining file (no tokenizer) and a tiny official tokenizer file (with decoder)."""
    folder = tmp_path_factory.mktemp("mim")
    model = randomize_(BeitV2Pretrain(**_TINY), seed=5)
    tokenizer = random_tokenizer(6)
    model.tokenizer.load_state_dict({k: v for k, v in tokenizer.state_dict().items() if not k.startswith("decode")})
    official = {k: v for k, v in model.state_dict().items() if not k.startswith("tokenizer.")}
    official["rel_pos_bias.relative_position_index"] = model.rel_pos_bias.relative_position_index
    torch.save({"model": official, "epoch": 1}, folder / "pt.pth")
    torch.save({"model": canonical_to_official_vqkd(tokenizer.state_dict())}, folder / "tok.pth")
    torch.save({"meta": {}, "state_dict": canonical_to_mmpretrain_pretrain(model.state_dict())}, folder / "mm.pth")
    return {"folder": folder, "model": model.eval(), "pt": folder / "pt.pth", "tok": folder / "tok.pth", "mm": folder / "mm.pth"}


@pytest.fixture(scope="module")
def mim(files):
    return get_model("test_beitv2_mim_tiny", pretrained=files["pt"], tokenizer_weights=files["tok"])


def test_forward_and_extract_feat_return_the_two_raw_block_outputs(mim, files):
    x = image_batch(2)
    with torch.no_grad():
        early, last = mim(x)
        reference = files["model"](x)
        blocks = [torch.cat([cls, patches], dim=1) for patches, cls in mim.forward_intermediates(
            x, indices=[2, 3], output_fmt="NLC", intermediates_only=True, return_prefix_tokens=True)]
    assert early.shape == last.shape == (2, 197, 64)
    assert max_abs_diff(early, reference[0]) == 0.0 and max_abs_diff(last, reference[1]) == 0.0
    assert max_abs_diff(early, blocks[0]) == 0.0 and max_abs_diff(last, blocks[1]) == 0.0  # after blocks 3 and 4, no norm
    with torch.no_grad():
        features = mim.extract_feat(x)
    assert isinstance(features, tuple) and len(features) == 2 and max_abs_diff(features[1], last) == 0.0
    assert mim.class_names is None and mim.weights_info.task == "masked-image-modeling"
    assert not mim.training and not mim.tokenizer.training


def test_pretrain_file_without_tokenizer_gets_it_from_the_given_file(mim, files):
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    tokenizer = random_tokenizer(6)
    with torch.no_grad():
        assert torch.equal(mim.tokenizer.encode(images), tokenizer.encode(images))
    assert mim.tokenizer.decoder is None
    mm = get_model("test_beitv2_mim_tiny", pretrained=files["mm"])  # mmpretrain file: the tokenizer is inside
    with torch.no_grad():
        assert torch.equal(mm.tokenizer.encode(images), tokenizer.encode(images))
        assert max_abs_diff(mm(image_batch(1))[1], mim(image_batch(1))[1]) == 0.0


def test_loss_follows_the_official_algorithm(mim):
    """Reference written from reference/official_beitv2_timm.md §4.3 with the model's own submodules."""
    torch.manual_seed(0)
    x = image_batch(2, seed=3)
    target_images = torch.rand(2, 3, 224, 224)
    generator = BlockMaskGenerator(seed=0)
    mask = torch.from_numpy(np.stack([generator(), generator()]))
    with torch.no_grad():
        out = mim_loss(mim, x, target_images, mask)
        labels = mim.tokenizer.encode(target_images).flatten(1)[mask.flatten(1)]
        tokens = mim.patch_embed(x)
        w = mask.flatten(1).unsqueeze(-1).float()
        tokens = tokens * (1 - w) + mim.mask_token * w
        h = torch.cat([mim.cls_token.expand(2, -1, -1), tokens], dim=1)
        bias = mim.rel_pos_bias()
        for i, block in enumerate(mim.blocks):
            h = block(h, bias)
            if i + 1 == mim.early_layers:
                early_states = h[:, 1:]
        aggregated = torch.cat([h[:, [0]], early_states], dim=1)
        for block in mim.cls_pt_layers:
            aggregated = block(aggregated, bias)
        main_logits = mim.lm_head(mim.norm(h)[:, 1:][mask.flatten(1)])
        branch_logits = mim.lm_head(mim.norm(aggregated)[:, 1:][mask.flatten(1)])
        loss_1, loss_2 = F.cross_entropy(main_logits, labels), F.cross_entropy(branch_logits, labels)
    assert labels.shape == (150,)
    assert abs(out["loss_1"].item() - loss_1.item()) < 1e-5 and abs(out["loss_2"].item() - loss_2.item()) < 1e-5
    assert abs(out["loss"].item() - (loss_1 + loss_2).item()) < 1e-5
    assert 0.0 <= out["mlm_acc_1"].item() <= 1.0
    logits_1, logits_2 = mim.forward_mim(x, mask)
    assert logits_1.shape == logits_2.shape == (150, 64)
    with torch.no_grad():
        from_ids = mim_loss_from_ids(mim, x, mim.targets(target_images), mask)
        early, last = mim(x, mask)  # the model itself returns tensors only
    assert all(torch.equal(from_ids[k], out[k]) for k in out)
    assert early.shape == last.shape == (2, 197, 64)
    with pytest.raises(ValueError, match="no mask token"):  # a classifier has no mask token
        ARCHITECTURES["test_beit_tiny"].build()._run_blocks(x, mask)


def test_training_keeps_the_tokenizer_frozen_in_eval_mode(files):
    model = get_model("test_beitv2_mim_tiny", pretrained=files["pt"], tokenizer_weights=files["tok"])
    tokenizer_before = {k: v.clone() for k, v in model.tokenizer.state_dict().items()}
    model.train()
    assert model.training and model.blocks[0].training and not model.tokenizer.training
    assert not any(p.requires_grad for p in model.tokenizer.parameters())
    mask = torch.zeros(2, 14, 14, dtype=torch.bool)
    mask[:, 3:9, 2:12] = True
    out = mim_loss(model, image_batch(2), torch.rand(2, 3, 224, 224), mask)
    out["loss"].backward()
    assert model.mask_token.grad is not None and model.cls_pt_layers[1].mlp.fc2.weight.grad is not None
    assert all(p.grad is None for p in model.tokenizer.parameters())
    assert all(torch.equal(model.tokenizer.state_dict()[k], v) for k, v in tokenizer_before.items())


def test_fine_tuning_from_the_pretrained_backbone(files, caplog):
    with caplog.at_level(logging.WARNING, logger="beitv2_zoo"):
        classifier = get_model("test_beit_tiny", pretrained=files["pt"], num_classes=5)
    message = caplog.text
    assert "cls_pt_layers, lm_head, mask_token, norm" in message and "fc_norm and head start fresh" in message
    source = files["model"]
    shared = source.rel_pos_bias.relative_position_bias_table
    for block in classifier.blocks:
        assert torch.equal(block.attn.relative_position_bias_table, shared)
    assert torch.equal(classifier.fc_norm.weight, torch.ones(64)) and torch.equal(classifier.fc_norm.bias, torch.zeros(64))
    assert classifier.head.weight.shape == (5, 64) and classifier.head.weight.std() > 0
    x = image_batch(2)
    with torch.no_grad():
        last = classifier.forward_intermediates(x, indices=[-1], output_fmt="NLC", intermediates_only=True)[0]
        assert max_abs_diff(last, source(x)[1][:, 1:]) <= 1e-5
    # the mmpretrain pretraining file (tokenizer inside) fine-tunes the same way
    with caplog.at_level(logging.WARNING, logger="beitv2_zoo"):
        again = get_model("test_beit_tiny", pretrained=files["mm"], num_classes=5)
    assert "tokenizer" in caplog.text
    with torch.no_grad():
        assert max_abs_diff(again.forward_features(x), classifier.forward_features(x)) == 0.0


def test_misuse_is_refused_with_a_way_forward(files):
    with pytest.raises(ModelConfigError, match="applies to classifiers"):
        get_model("test_beitv2_mim_tiny", num_classes=3)
    with pytest.raises(ModelConfigError, match="no classification head"):
        inference_model("beitv2_base_patch16_224_pt1k", "cat.jpg")


def test_random_backbone_with_a_trained_tokenizer_and_path_inference(files):
    model = get_model("test_beitv2_mim_tiny", tokenizer_weights=files["tok"])
    images = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model.tokenizer.encode(images), random_tokenizer(6).encode(images))
    inferred = get_model(files["mm"])  # no name: the architecture is recognised from the tensors
    assert isinstance(inferred, BeitV2Pretrain) and inferred.early_layers == 3
    with torch.no_grad():
        assert max_abs_diff(inferred(image_batch(1))[0], files["model"](image_batch(1))[0]) == 0.0


def test_pretrained_true_downloads_the_model_and_its_tokenizer(files, tmp_path, monkeypatch):
    """Both files come from their own records over HTTP (a real server on 127.0.0.1)."""
    upstream = "https://weights.example.invalid/beitv2"
    served = tmp_path / "served"
    served.mkdir()
    names = {}
    for key in ("pt", "tok"):
        data = files[key].read_bytes()
        names[key] = f"{key}_tiny-{hashlib.sha256(data).hexdigest()[:8]}.pth"
        (served / names[key]).write_bytes(data)
    tokenizer_record = dataclasses.replace(get_record("test_vqkd_tiny"), name="test_served_vqkd", sources=(
        Source(url=f"{upstream}/{names['tok']}", sha256_prefix=names["tok"][-12:-4], host="official"),))
    model_record = dataclasses.replace(get_record("test_beitv2_mim_tiny"), name="test_served_mim", tokenizer="test_served_vqkd",
                                       sources=(Source(url=f"{upstream}/{names['pt']}", host="official"),))
    register(tokenizer_record)
    register(model_record)
    try:
        with LocalServer(served) as server:
            monkeypatch.setenv("BEITV2_ZOO_URL_MAP", f"{upstream}={server.url}")
            model = get_model("test_served_mim", pretrained=True)
            assert sorted(r.path for r in server.state.log if r.method == "GET") == sorted(f"/{n}" for n in names.values())
        images = torch.rand(1, 3, 224, 224)
        with torch.no_grad():
            assert torch.equal(model.tokenizer.encode(images), random_tokenizer(6).encode(images))
            assert max_abs_diff(model(image_batch(1))[1], files["model"](image_batch(1))[1]) == 0.0
        random_tokenizer_model = get_model("test_served_mim", pretrained=True, tokenizer_weights=False)
        assert not torch.equal(random_tokenizer_model.tokenizer.quantize.embedding.weight,
                               model.tokenizer.quantize.embedding.weight)
    finally:
        unregister("test_served_mim")
        unregister("test_served_vqkd")
