"""The VQ-KD tokenizer and its quantizer: layouts, encoding, EMA training behaviour, distributed updates, CLI."""

import json
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from beitv2_zoo import get_model
from beitv2_zoo.checkpoint import load_state_dict_strict, split_layout
from beitv2_zoo.cli import main
from beitv2_zoo.checkpoint.keymaps_pretrain import (
    canonical_to_mmpretrain_vqkd,
    canonical_to_official_vqkd,
    mmpretrain_vqkd_to_canonical,
    official_vqkd_to_canonical,
)
from beitv2_zoo.models import ARCHITECTURES, VQKD, NormEMAQuantizer
from beitv2_zoo.models.quantizer import kmeans_cosine
from beitv2_zoo.train.objectives import vqkd_loss
from beitv2_zoo.viz import token_colors

from .conftest import randomize_

TINY = dict(embed_dim=64, depth=2, num_heads=2, num_codes=64, code_dim=8, decoder_depth=1, target_dim=16, kmeans_init=False)


def random_tokenizer(seed: int = 0, **overrides) -> VQKD:
    """A tiny tokenizer with non-trivial random weights and a unit codebook, in eval mode."""
    model = randomize_(VQKD(**{**TINY, **overrides}), seed=seed)
    with torch.no_grad():
        model.quantize.embedding.weight.copy_(F.normalize(model.quantize.embedding.weight, dim=-1))
    return model.eval()


# ------------------------------------------------------------------ layouts
def official_tokenizer_shapes(
    dim: int = 768, depth: int = 12, decoder_depth: int = 3, target_dim: int = 512, codes: int = 8192,
    code_dim: int = 32, grid: int = 14, patch: int = 16,
) -> dict[str, tuple[int, ...]]:
    """Every key of an official VQ-KD file with its shape, written out from
    reference/official_beitv2_timm.md §2.1(a), plus the teacher / scaling / loss extras the
    official loader deletes. Not derived from our code."""
    shapes: dict[str, tuple[int, ...]] = {}

    def vit(prefix: str, blocks: int, in_chans: int, kernel: int) -> None:
        shapes[f"{prefix}.cls_token"] = (1, 1, dim)
        shapes[f"{prefix}.pos_embed"] = (1, grid * grid + 1, dim)
        shapes[f"{prefix}.patch_embed.proj.weight"] = (dim, in_chans, kernel, kernel)
        shapes[f"{prefix}.patch_embed.proj.bias"] = (dim,)
        for i in range(blocks):
            b = f"{prefix}.blocks.{i}"
            shapes.update({
                f"{b}.norm1.weight": (dim,), f"{b}.norm1.bias": (dim,),
                f"{b}.attn.qkv.weight": (3 * dim, dim), f"{b}.attn.q_bias": (dim,), f"{b}.attn.v_bias": (dim,),
                f"{b}.attn.proj.weight": (dim, dim), f"{b}.attn.proj.bias": (dim,),
                f"{b}.norm2.weight": (dim,), f"{b}.norm2.bias": (dim,),
                f"{b}.mlp.fc1.weight": (4 * dim, dim), f"{b}.mlp.fc1.bias": (4 * dim,),
                f"{b}.mlp.fc2.weight": (dim, 4 * dim), f"{b}.mlp.fc2.bias": (dim,),
            })
        shapes[f"{prefix}.fc_norm.weight"] = (dim,)
        shapes[f"{prefix}.fc_norm.bias"] = (dim,)

    vit("encoder", depth, 3, patch)
    vit("decoder", decoder_depth, code_dim, 1)
    shapes.update({
        "quantize.embedding.weight": (codes, code_dim),
        "quantize.embedding.cluster_size": (codes,),
        "quantize.embedding.embed_avg": (codes, code_dim),
        "quantize.embedding.initted": (1,),
        "quantize.cluster_size": (codes,),
        "encode_task_layer.0.weight": (dim, dim), "encode_task_layer.0.bias": (dim,),
        "encode_task_layer.2.weight": (code_dim, dim), "encode_task_layer.2.bias": (code_dim,),
        "decode_task_layer.0.weight": (dim, dim), "decode_task_layer.0.bias": (dim,),
        "decode_task_layer.2.weight": (target_dim, dim), "decode_task_layer.2.bias": (target_dim,),
        # deleted by the official loader (prefixes loss / teacher / scaling)
        "teacher_model.visual.proj": (dim, 512), "scaling_layer.shift": (1, 3, 1, 1), "scaling_layer.scale": (1, 3, 1, 1),
    })
    return shapes


def meta_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}


@pytest.mark.parametrize("architecture, decoder_depth, target_dim", [
    ("vqkd_base_clip_decoder1", 1, 512), ("vqkd_base_clip_decoder3", 3, 512), ("vqkd_base_dino_decoder1", 1, 768),
])
def test_official_tokenizer_layouts_load_strictly(architecture, decoder_depth, target_dim):
    raw = {"model": meta_state(official_tokenizer_shapes(decoder_depth=decoder_depth, target_dim=target_dim))}
    state, layout = split_layout(raw)
    assert layout == "official"
    assert not any(k.startswith(("teacher", "scaling")) for k in state)
    with torch.device("meta"):
        model = ARCHITECTURES[architecture].build()
    assert load_state_dict_strict(model, state, assign=True) == []
    # the decoder-less encoder takes the same file: the training-only decoder is dropped deliberately
    with torch.device("meta"):
        encoder_only = ARCHITECTURES["vqkd_base_encoder"].build()
    assert load_state_dict_strict(encoder_only, state, assign=True) == []


@pytest.mark.parametrize("final_norm", ["ln1", "fc_norm"])
def test_mmpretrain_tokenizer_layout_variants_load(final_norm):
    """mmpretrain's vqkd_encoder.pth layout is unpublished: both final-norm names are accepted."""
    shapes = {}
    for key, shape in official_tokenizer_shapes().items():
        if key.startswith(("decoder.", "decode_task_layer.", "teacher", "scaling")) or key in (
                "quantize.embedding.cluster_size", "quantize.embedding.embed_avg"):
            continue
        key = (key.replace("encoder.blocks.", "encoder.layers.").replace(".norm1.", ".ln1.").replace(".norm2.", ".ln2.")
               .replace(".mlp.fc1.", ".ffn.layers.0.0.").replace(".mlp.fc2.", ".ffn.layers.1.")
               .replace("patch_embed.proj.", "patch_embed.projection.").replace("encoder.fc_norm.", f"encoder.{final_norm}."))
        shapes[key] = shape
    state, layout = split_layout({"state_dict": meta_state(shapes)})
    assert layout == "mmpretrain" and "encoder.fc_norm.weight" in state
    with torch.device("meta"):
        model = ARCHITECTURES["vqkd_base_encoder"].build()
    assert load_state_dict_strict(model, state, assign=True) == []
    assert sum(p.numel() for p in model.parameters()) == 86_666_784


def test_tokenizer_converters_round_trip():
    state = random_tokenizer().state_dict()
    for forward, backward in ((canonical_to_mmpretrain_vqkd, mmpretrain_vqkd_to_canonical),
                              (canonical_to_official_vqkd, official_vqkd_to_canonical)):
        back = backward(forward(state))
        assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    mmpretrain = canonical_to_mmpretrain_vqkd(state)
    assert "encoder.ln1.weight" in mmpretrain and "encoder.layers.0.ffn.layers.0.0.weight" in mmpretrain
    official = canonical_to_official_vqkd(state)
    assert torch.equal(official["quantize.embedding.embed_avg"], state["quantize.embedding.weight"])
    assert not official["quantize.embedding.cluster_size"].any()


def test_official_file_loads_through_get_model_and_drops_the_teacher(tmp_path, caplog):
    source = random_tokenizer(1)
    official = canonical_to_official_vqkd(source.state_dict())
    official.update({"teacher_model.visual.proj": torch.ones(2), "scaling_layer.shift": torch.ones(3),
                     "loss_fn.weight": torch.ones(1)})
    path = tmp_path / "vqkd_tiny.pth"
    torch.save({"model": official}, path)
    with caplog.at_level(logging.INFO, logger="beitv2_zoo"):
        model = get_model("test_vqkd_tiny", pretrained=path)
    assert "loss_fn, quantize.embedding.cluster_size, quantize.embedding.embed_avg, scaling_layer, teacher_model" in caplog.text
    assert model.class_names is None and model.weights_info.task == "visual-tokenizer"
    images = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.encode(images), source.encode(images))
    larger = get_model("test_vqkd_tiny", pretrained=path, img_size=256)  # encoder and decoder positions resized
    assert larger.encode(torch.rand(1, 3, 256, 256)).shape == (1, 16, 16)
    assert larger.decoder.pos_embed.shape == (1, 257, 64)


# ----------------------------------------------------------------- encoding
@pytest.fixture(scope="module")
def tiny_tokenizer():
    return random_tokenizer(3)


def test_encode_is_deterministic_batch_invariant_and_stateless(tiny_tokenizer):
    images = torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in tiny_tokenizer.state_dict().items()}
    with torch.no_grad():
        ids = tiny_tokenizer.encode(images)
        assert ids.shape == (4, 14, 14) and ids.dtype == torch.int64
        assert torch.equal(tiny_tokenizer.encode(images), ids)
        assert torch.equal(torch.cat([tiny_tokenizer.encode(images[i : i + 1]) for i in range(4)]), ids)
        assert torch.equal(tiny_tokenizer.encode(images[[3, 1]]), ids[[3, 1]])
        assert torch.equal(tiny_tokenizer.get_codebook_indices(images), ids.flatten(1))  # official [B, N]
        assert torch.equal(tiny_tokenizer(images), ids)
    with torch.inference_mode():
        assert torch.equal(tiny_tokenizer.encode(images), ids)
    after = tiny_tokenizer.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before), "eval-mode encoding changed the tokenizer's state"
    assert len(ids.unique()) > 4


def test_encode_maps_unit_range_to_minus_one_one(tiny_tokenizer):
    """encode takes [0, 1] pixels: its features equal the encoder run on 2x - 1."""
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        tokens = tiny_tokenizer.encoder.forward_features(images * 2 - 1)[:, 1:]
        expected = tiny_tokenizer.encode_task_layer(tiny_tokenizer.encoder.fc_norm(tokens))
        features = tiny_tokenizer.features(images)
    assert features.shape == (2, 8, 14, 14)
    assert torch.allclose(features.flatten(2).transpose(1, 2), expected, atol=1e-6)


def test_common_model_api(tiny_tokenizer):
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        tokens = tiny_tokenizer.forward_features(images)
        similarity = tiny_tokenizer.forward_head(tokens)
        assert tokens.shape == (2, 196, 64) and similarity.shape == (2, 196, 64)
        assert torch.equal(similarity.argmax(-1).view(2, 14, 14), tiny_tokenizer.encode(images))
        assert tiny_tokenizer.forward_head(tokens, pre_logits=True).norm(dim=-1).allclose(torch.ones(2, 196))
        maps = tiny_tokenizer.forward_intermediates(images, indices=[0, 1], intermediates_only=True)
        assert [m.shape for m in maps] == [(2, 64, 14, 14)] * 2
    assert tiny_tokenizer.get_classifier() is tiny_tokenizer.quantize
    assert {"quantize.embedding.weight", "encoder.pos_embed"} <= tiny_tokenizer.no_weight_decay()
    fresh = random_tokenizer(0)
    fresh.reset_classifier(16)
    assert fresh.num_codes == 16 and not fresh.quantize.embedding.is_initialised()
    fresh.train()(images)  # k-means on the first training batch
    assert fresh.quantize.embedding.is_initialised()


def test_training_loss_and_decode(tiny_tokenizer):
    model = VQKD(**TINY).train()
    images = torch.rand(2, 3, 224, 224)
    targets = torch.randn(2, 196, 16)
    out = vqkd_loss(model, images, targets)
    assert out["ids"].shape == (2, 14, 14)
    reconstruction = model.decode(model.quantize_images(images).quantized)
    assert reconstruction.shape == (2, 196, 16)
    assert torch.isclose(out["loss"], out["rec_loss"] + out["quant_loss"])
    with torch.no_grad():  # in eval mode nothing moves, so two evaluations of the step agree
        model.eval()
        evaluated, again = vqkd_loss(model, images, targets), vqkd_loss(model, images, targets)
        assert torch.equal(model(images), evaluated["ids"])  # the model itself returns the code ids only
    assert torch.equal(again["loss"], evaluated["loss"])
    model.train()
    out["loss"].backward()
    assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0, "the straight-through estimator passes gradients"
    assert model.quantize.embedding.weight.grad is None
    with pytest.raises(RuntimeError, match="without a decoder"):
        VQKD(**{**TINY, "decoder_depth": 0}).decode(torch.zeros(1, 8, 14, 14))


# ---------------------------------------------------------------- quantizer
def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _reference_ema(codebook, vectors, decay):
    """The official train-mode update, written from reference/official_beitv2_timm.md §4.2 with one-hot matrices."""
    ids = (vectors.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * vectors @ codebook.t()).argmin(1)
    encodings = F.one_hot(ids, codebook.shape[0]).float()
    bins = encodings.sum(0)
    embed_sum = vectors.t() @ encodings
    new = F.normalize((embed_sum / bins.clamp(min=1)).t(), dim=-1)
    new = torch.where((bins == 0)[:, None], codebook, new)
    return F.normalize(decay * codebook + (1 - decay) * new, dim=-1), bins, ids


def _quantizer(num_codes=16, code_dim=4, seed=0):
    quantizer = NormEMAQuantizer(num_codes, code_dim, kmeans_init=False)
    quantizer.embedding.weight.data.copy_(_unit(num_codes, code_dim, seed=seed))
    return quantizer


def test_ema_changes_the_codebook_only_in_train_mode():
    quantizer = _quantizer(num_codes=64)
    z = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    start = quantizer.embedding.weight.clone()
    eval_out = quantizer.eval()(z)
    assert torch.equal(quantizer.embedding.weight, start) and not quantizer.cluster_size.any()

    vectors = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, 4), dim=-1)
    expected, bins, ids = _reference_ema(start, vectors, 0.99)
    train_out = quantizer.train()(z)
    assert torch.equal(train_out.ids.flatten(), ids) and torch.equal(eval_out.ids, train_out.ids)
    assert torch.allclose(quantizer.embedding.weight, expected, atol=1e-6)
    assert not torch.equal(quantizer.embedding.weight, start)
    assert torch.allclose(quantizer.cluster_size, 0.01 * bins)
    assert torch.allclose(quantizer.embedding.weight.norm(dim=1), torch.ones(64))
    unused = int((bins == 0).sum())
    assert quantizer.unused_codes() == unused and unused > 0
    assert torch.allclose(quantizer.embedding.weight[bins == 0], start[bins == 0], atol=1e-7), "unchosen codes keep their value"
    quantizer.reset_usage()
    assert quantizer.unused_codes() == 64


def test_straight_through_and_commitment_loss():
    quantizer = _quantizer().eval()
    z = torch.randn(1, 4, 3, 3, requires_grad=True)
    out = quantizer(z)
    unit = F.normalize(z.permute(0, 2, 3, 1), dim=-1)
    codes = quantizer.embedding.weight[out.ids]  # [1, 3, 3, 4]
    assert torch.allclose(out.loss, F.mse_loss(codes, unit))
    assert torch.allclose(out.quantized, codes.permute(0, 3, 1, 2), atol=1e-6)
    out.quantized.sum().backward()
    reference = z.detach().clone().requires_grad_(True)
    F.normalize(reference.permute(0, 2, 3, 1), dim=-1).sum().backward()
    assert torch.allclose(z.grad, reference.grad), "the gradient passes straight through the code lookup"


def test_kmeans_initialisation_on_the_first_training_batch():
    quantizer = NormEMAQuantizer(8, 4, kmeans_init=True)
    z = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="codebook is not initialised"):
        quantizer.eval()(z)
    torch.manual_seed(0)
    quantizer.train()(z)
    assert quantizer.embedding.is_initialised()
    assert torch.allclose(quantizer.embedding.weight.norm(dim=1), torch.ones(8), atol=1e-6)


# -------------------------------------------------------------- distributed
def _ddp_worker(rank: int, world: int, init_file: str, batch: torch.Tensor, codebook: torch.Tensor, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        half = batch.shape[0] // world
        local = batch[rank * half : (rank + 1) * half]
        quantizer = NormEMAQuantizer(codebook.shape[0], codebook.shape[1], kmeans_init=False)
        quantizer.embedding.weight.data.copy_(codebook)
        quantizer.train()(local)
        quantizer.train()(local.flip(0))  # two steps

        torch.manual_seed(100 + rank)  # different k-means samples on each rank: rank 0's must win
        fresh = NormEMAQuantizer(codebook.shape[0], codebook.shape[1], kmeans_init=True).train()
        fresh(local)
        torch.save({"ema": quantizer.state_dict(), "kmeans": fresh.state_dict()}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_distributed_update_equals_the_single_process_update_on_the_global_batch(tmp_path):
    import torch.multiprocessing as mp

    batch = torch.randn(4, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    codebook = _unit(32, 4, seed=1)
    single = NormEMAQuantizer(32, 4, kmeans_init=False)
    single.embedding.weight.data.copy_(codebook)
    single.train()(batch)
    single.train()(torch.cat([batch[:2].flip(0), batch[2:].flip(0)]))

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), batch, codebook, str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for result in results:
        assert torch.allclose(result["ema"]["embedding.weight"], single.embedding.weight, atol=1e-6)
        assert torch.allclose(result["ema"]["cluster_size"], single.cluster_size, atol=1e-6)
    assert not torch.equal(single.embedding.weight, codebook)

    # k-means init: every rank ends with rank 0's k-means codebook (then one EMA step on the global batch).
    assert torch.equal(results[0]["kmeans"]["embedding.weight"], results[1]["kmeans"]["embedding.weight"])
    vectors = [F.normalize(half.permute(0, 2, 3, 1).reshape(-1, 4), dim=-1) for half in (batch[:2], batch[2:])]
    torch.manual_seed(100)
    rank0_centres = kmeans_cosine(vectors[0], 32)
    torch.manual_seed(101)
    assert not torch.allclose(kmeans_cosine(vectors[1], 32), rank0_centres), "rank 1 alone would differ"
    expected, _, _ = _reference_ema(rank0_centres, torch.cat(vectors), 0.99)
    assert torch.allclose(results[1]["kmeans"]["embedding.weight"], expected, atol=1e-6)
    assert float(results[1]["kmeans"]["embedding.initted"]) == 1.0


# ---------------------------------------------------------------------- CLI
def test_tokens_command_prints_the_ids_and_writes_the_picture(tmp_path, photo_paths, capsys, tiny_tokenizer):
    weights = tmp_path / "tok.pth"
    torch.save({"model": canonical_to_official_vqkd(tiny_tokenizer.state_dict())}, weights)
    image = photo_paths["chelsea.png"]
    out = tmp_path / "tokens.png"
    assert main(["tokens", str(image), "--tokenizer", "test_vqkd_tiny", "--weights", str(weights), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in printed[1:15]]
    assert len(rows) == 14 and all(len(r) == 14 for r in rows)
    assert printed[-1] == f"wrote {out}"
    from PIL import Image

    picture = Image.open(out)
    assert picture.mode == "RGB" and picture.width > 3 * 14 * 24
    from beitv2_zoo.transforms import create_transform
    from beitv2_zoo.weights.pretraining import TOKENIZER_EVAL

    with torch.no_grad():
        expected = tiny_tokenizer.encode(create_transform(TOKENIZER_EVAL)(image).unsqueeze(0))[0]
    assert [[int(v) for v in row] for row in rows] == expected.tolist()

    assert main(["tokens", str(image), "--tokenizer", "test_vqkd_tiny", "--weights", str(weights), "--json",
                 "--out", str(tmp_path / "again.png")]) == 0
    assert json.loads(capsys.readouterr().out) == expected.tolist()


def test_token_colours_are_stable_and_distinct():
    ids = np.arange(8192)
    colours = token_colors(ids)
    assert colours.shape == (8192, 3) and colours.dtype == np.uint8
    assert np.array_equal(token_colors(np.array([[0, 8191]])), colours[[0, 8191]][None])
    assert len({tuple(c) for c in colours}) > 8000
    assert token_colors(np.array([42])).tolist() == token_colors(np.array([42])).tolist()
    assert math.isclose(float(colours.mean()), float(token_colors(ids).mean()))
