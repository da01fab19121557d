"""Each task trains a few steps on CPU and its loss drops; the outputs chain into the next stage."""

import json

import pytest
import torch

from beitv2_zoo.checkpoint import read_checkpoint
from beitv2_zoo.train.models import build_for_recipe, load_weights
from beitv2_zoo.train.recipes import get_recipe

from .conftest import TINY_FINETUNE, TINY_LINEAR_PROBE, TINY_MIM, losses, run


def _drops(values: list[float], k: int = 2) -> bool:
    return sum(values[-k:]) / k < sum(values[:k]) / k


def test_vqkd_learns_and_uses_its_codebook(vqkd_run):
    rec = losses(vqkd_run, "rec_loss")
    assert len(rec) == 8 and _drops(rec), rec
    metrics = json.loads((vqkd_run / "metrics.json").read_text())
    assert 0.0 < metrics["val_codebook_usage"] <= 1.0 and metrics["val_rec_loss"] < rec[0]
    state = read_checkpoint(vqkd_run / "model.safetensors").state_dict
    assert state["quantize.embedding.initted"].item() == 1.0  # k-means ran on the first batch
    assert any(k.startswith("decoder.") for k in state) and not any(k.startswith("teacher") for k in state)
    rows = [json.loads(line) for line in (vqkd_run / "log.jsonl").read_text().splitlines()]
    assert all("codebook_usage" in row for row in rows if "epoch" in row)
    assert rows[-2]["skipped_images"] >= 1  # the broken file was skipped, not fatal


def test_mim_learns_with_the_trained_tokenizer(mim_run, vqkd_run):
    assert _drops(losses(mim_run)), losses(mim_run)
    metrics = json.loads((mim_run / "metrics.json").read_text())
    assert {"val_mlm_acc_1", "val_mlm_acc_2", "val_loss"} <= set(metrics)
    state = read_checkpoint(mim_run / "model.safetensors").state_dict
    tokenizer = read_checkpoint(vqkd_run / "model.safetensors").state_dict
    # the tokenizer stayed frozen: its codebook is the trained one, unchanged by pretraining
    torch.testing.assert_close(state["tokenizer.quantize.embedding.weight"], tokenizer["quantize.embedding.weight"],
                               rtol=0, atol=0)
    assert {"mask_token", "lm_head.weight", "cls_pt_layers.0.attn.qkv.weight"} <= set(state)


@pytest.mark.parametrize("recipe", [TINY_FINETUNE, TINY_LINEAR_PROBE], ids=["finetune", "linear_probe"])
def test_classifier_tasks_learn_from_the_mim_weights(recipe, image_folder, mim_run, tmp_path):
    work = run(recipe, image_folder, tmp_path / "run", max_steps=8, pretrained=str(mim_run / "model.safetensors"))
    assert _drops(losses(work)), losses(work)
    metrics = json.loads((work / "metrics.json").read_text())
    assert 0.0 <= metrics["val_top1"] <= metrics["val_top5"] <= 100.0
    # the saved classifier is rebuilt from the recipe beside it and loads strictly
    model = build_for_recipe(get_recipe(str(work)))
    assert load_weights(model, str(work)) == []
    if recipe == TINY_LINEAR_PROBE:  # the backbone did not move: it equals the MIM weights
        mim = read_checkpoint(mim_run / "model.safetensors").state_dict
        torch.testing.assert_close(model.blocks[0].attn.qkv.weight, mim["blocks.0.attn.qkv.weight"], rtol=0, atol=0)
        torch.testing.assert_close(model.norm.weight, mim["norm.weight"], rtol=0, atol=0)


def test_gradient_accumulation_equals_the_large_batch(image_folder, tmp_path):
    from beitv2_zoo.checkpoint.safetensors_io import load_mmap

    big = run(TINY_FINETUNE, image_folder, tmp_path / "big", max_steps=3, batch_size=8)
    small = run(TINY_FINETUNE, image_folder, tmp_path / "small", max_steps=3, batch_size=4, accum_steps=2)
    left, right = load_mmap(big / "model.safetensors"), load_mmap(small / "model.safetensors")
    assert max(float((left[k] - right[k]).abs().max()) for k in left) < 1e-5


def test_bf16_autocast_with_gradient_checkpointing(image_folder, tmp_path):
    work = run(TINY_MIM, image_folder, tmp_path / "bf16", max_steps=3, amp="bf16", grad_checkpointing=True,
               accum_steps=2, tokenizer="test_vqkd_tiny", patch_size=16, img_size=64, num_mask_patches=6)
    assert all(value == value and value < 100 for value in losses(work))  # finite


def test_dead_codes_are_reseeded_from_the_next_batch():
    from beitv2_zoo.models import VQKD
    from beitv2_zoo.train.tasks.vqkd import DeadCodeRestart

    torch.manual_seed(0)
    tokenizer = VQKD(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_codes=16, code_dim=4,
                     decoder_depth=0, kmeans_init=False)
    restart = DeadCodeRestart(tokenizer)
    quantize = tokenizer.quantize
    quantize.cluster_size.fill_(1.0)
    quantize.cluster_size[[3, 7]] = 0.0
    before = quantize.embedding.weight.detach().clone()
    restart.epoch_end()
    tokenizer.eval()
    tokenizer.encode(torch.rand(2, 3, 32, 32))  # eval mode: nothing happens
    assert torch.equal(quantize.embedding.weight, before) and restart.dead is not None
    tokenizer.train()
    images = torch.rand(2, 3, 32, 32)
    vectors = torch.nn.functional.normalize(tokenizer.features(images).permute(0, 2, 3, 1).reshape(-1, 4), dim=-1)
    quantize.decay = 1.0  # no EMA step, so that only the restart moves codes
    tokenizer.quantize_images(images)
    changed = (quantize.embedding.weight - before).abs().sum(-1) > 1e-5
    assert changed.nonzero().flatten().tolist() == [3, 7] and restart.restarted == 2 and restart.dead is None
    for code in (3, 7):  # each new code is one of the batch's (normalised) encoder outputs
        assert torch.isclose(vectors @ quantize.embedding.weight[code], torch.tensor(1.0), atol=1e-5).any()
