"""The public API contract of DESIGN §2: get_model, inference_model and the model's methods."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from beitv2_zoo import ModelConfigError, UnknownModelError, get_model, inference_model
from beitv2_zoo.errors import ImageLoadError
from beitv2_zoo.weights.labels import imagenet1k_classes, imagenet21k_classes
from beitv2_zoo.layers.rel_pos import _relative_position_index
from beitv2_zoo.models import build_beit
from beitv2_zoo.transforms import create_transform

from .conftest import image_batch, max_abs_diff, randomize_


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_file(randomize_(build_beit("test_beit_tiny")).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny(tiny_weights):
    return get_model("test_beit_tiny", pretrained=tiny_weights)


def test_get_model_returns_eval_model_with_record(tiny):
    assert not tiny.training
    assert tiny.weights_info.name == "test_beit_tiny"
    assert tiny.class_names == imagenet1k_classes()
    assert next(tiny.parameters()).device.type == "cpu"
    random = get_model("test_beit_tiny")
    assert not random.training and random.num_classes == 1000


def test_unknown_name_raises_with_suggestions():
    with pytest.raises(UnknownModelError, match="beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k"):
        get_model("beit-base-p16_beitv2-pre_8xb128-coslr-100e")


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True])
def test_bad_num_classes(num_classes):
    with pytest.raises(ModelConfigError, match="num_classes must be a positive int"):
        get_model("test_beit_tiny", num_classes=num_classes)


def test_img_size_off_the_patch_grid():
    with pytest.raises(ModelConfigError, match="multiple of the patch size 16.*try 224"):
        get_model("test_beit_tiny", img_size=225)


def test_kwargs_reach_the_model(tiny_weights):
    model = get_model("test_beit_tiny", pretrained=tiny_weights, img_size=256, drop_path_rate=0.2, num_classes=5)
    assert model.patch_embed.img_size == 256 and model.num_classes == 5
    assert model.blocks[-1].drop_path.p == pytest.approx(0.2)
    with torch.no_grad():
        assert model(image_batch(1, 256)).shape == (1, 5)


def test_model_methods(tiny):
    x = image_batch(2)
    with torch.no_grad():
        tokens = tiny.forward_features(x)
        assert tokens.shape == (2, 197, 64)
        pooled = tiny.forward_head(tokens, pre_logits=True)
        assert pooled.shape == (2, 64)
        assert max_abs_diff(tiny.forward_head(tokens), tiny(x)) == 0.0
        assert max_abs_diff(tiny.extract_feat(x, stage="pre_logits"), pooled) == 0.0
        assert max_abs_diff(tiny.extract_feat(x)[-1], pooled) == 0.0
        # the pooled feature is fc_norm(mean of patch tokens), CLS excluded
        expected = torch.nn.functional.layer_norm(tokens[:, 1:].mean(1), (64,), tiny.fc_norm.weight, tiny.fc_norm.bias, 1e-6)
        assert max_abs_diff(pooled, expected) <= 1e-6
        # timm's contract: patch tokens without CLS for NLC, [B, D, h, w] maps for NCHW (the default)
        inter = tiny.forward_intermediates(x, indices=[1, -1], output_fmt="NLC", intermediates_only=True)
        assert len(inter) == 2 and max_abs_diff(inter[1], tokens[:, 1:]) == 0.0
        final, maps = tiny.forward_intermediates(x, indices=2)
        assert max_abs_diff(final, tokens) == 0.0 and [m.shape for m in maps] == [(2, 64, 14, 14)] * 2
    with pytest.raises(IndexError):
        tiny.forward_intermediates(x, indices=[9])
    with pytest.raises(ValueError, match="stage"):
        tiny.extract_feat(x, stage="head")
    assert tiny.no_weight_decay() == {"pos_embed", "cls_token"}


def test_gradient_checkpointing_gives_the_same_gradients(tiny_weights):
    model = get_model("test_beit_tiny", pretrained=tiny_weights).train()
    x = image_batch(2)
    model(x).square().mean().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).square().mean().backward()
    assert all(max_abs_diff(a, p.grad) <= 1e-6 for a, p in zip(plain, model.parameters()))


def test_reset_classifier(tiny_weights):
    model = get_model("test_beit_tiny", pretrained=tiny_weights)
    model.reset_classifier(3)
    with torch.no_grad():
        assert model(image_batch(1)).shape == (1, 3)


def test_inference_model_keys_and_types(tiny, photo_paths):
    prediction = inference_model(tiny, photo_paths["chelsea.png"])
    assert set(prediction) == {"pred_scores", "pred_label", "pred_score", "pred_class"}
    scores = prediction["pred_scores"]
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float32 and scores.shape == (1000,)
    assert scores.sum() == pytest.approx(1.0, abs=1e-5)
    assert type(prediction["pred_label"]) is int and type(prediction["pred_score"]) is float
    assert prediction["pred_label"] == int(scores.argmax())
    assert prediction["pred_score"] == pytest.approx(float(scores.max()))
    assert prediction["pred_class"] == imagenet1k_classes()[prediction["pred_label"]]


def test_inference_model_equals_the_manual_pipeline(tiny, photo_paths):
    path = photo_paths["astronaut.jpg"]
    x = create_transform(tiny)(path).unsqueeze(0)
    with torch.no_grad():
        expected = tiny(x).softmax(-1)[0].numpy()
    assert max_abs_diff(inference_model(tiny, path)["pred_scores"], expected) <= 1e-6


def test_inference_model_on_a_list_is_batched_and_equal_to_single_calls(tiny, photo_paths):
    inputs = [photo_paths["chelsea.jpg"], Image.open(photo_paths["coffee.png"]),
              np.asarray(Image.open(photo_paths["astronaut.png"]).convert("RGB")), photo_paths["chelsea.png"]]
    batched = inference_model(tiny, inputs, batch_size=3)
    assert isinstance(batched, list) and len(batched) == 4
    for item, result in zip(inputs, batched):
        single = inference_model(tiny, item)
        assert max_abs_diff(single["pred_scores"], result["pred_scores"]) <= 1e-5
        assert single["pred_label"] == result["pred_label"]


def test_inference_model_topk(tiny, photo_paths):
    prediction = inference_model(tiny, photo_paths["coffee.jpg"], topk=5)
    top = prediction["pred_topk"]
    assert len(top) == 5 and top[0][0] == prediction["pred_label"]
    assert [s for _, _, s in top] == sorted((s for _, _, s in top), reverse=True)
    assert top[2][2] == pytest.approx(float(np.sort(prediction["pred_scores"])[-3]))


def test_inference_model_by_name_passes_kwargs(tiny_weights, photo_paths):
    prediction = inference_model("test_beit_tiny", photo_paths["chelsea.png"], pretrained=str(tiny_weights), device="cpu")
    reference = inference_model(get_model("test_beit_tiny", pretrained=tiny_weights), photo_paths["chelsea.png"])
    assert max_abs_diff(prediction["pred_scores"], reference["pred_scores"]) == 0.0


def test_inference_model_with_a_bad_image_names_it(tiny, tmp_path):
    with pytest.raises(ImageLoadError, match="missing.jpg"):
        inference_model(tiny, tmp_path / "missing.jpg")


def test_21k_heads_get_imagenet21k_names(tmp_path, photo_paths):
    model = randomize_(build_beit("test_beit_tiny", num_classes=21841))
    path = tmp_path / "tiny21k.safetensors"
    save_file(model.state_dict(), path)
    loaded = get_model(path)
    prediction = inference_model(loaded, photo_paths["chelsea.png"])
    assert prediction["pred_scores"].shape == (21841,)
    assert prediction["pred_class"] == imagenet21k_classes()[prediction["pred_label"]]


def test_device_argument():
    model = get_model("test_beit_tiny", device=torch.device("cpu"))
    assert next(model.parameters()).device == torch.device("cpu")


def test_background_preprocessing_gives_the_same_results(tiny, photo_paths):
    inputs = [photo_paths[k] for k in sorted(photo_paths)] * 2
    threaded = inference_model(tiny, inputs, batch_size=2, num_workers=2)
    inline = inference_model(tiny, inputs, batch_size=2, num_workers=0)
    assert [p["pred_label"] for p in threaded] == [p["pred_label"] for p in inline]
    assert max(max_abs_diff(a["pred_scores"], b["pred_scores"]) for a, b in zip(threaded, inline)) == 0.0


def test_background_threads_only_where_a_core_is_free(monkeypatch):
    import beitv2_zoo.inference as inference

    monkeypatch.setattr(inference.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(inference.torch, "get_num_threads", lambda: 4)
    assert inference.auto_workers(torch.device("cpu")) == 0  # torch's threads fill every core
    assert inference.auto_workers(torch.device("cuda")) == 2  # the CPU only decodes
    monkeypatch.setattr(inference.torch, "get_num_threads", lambda: 2)
    assert inference.auto_workers(torch.device("cpu")) == 2


def test_unreadable_images_raise_or_are_skipped(tiny, photo_paths, tmp_path, caplog):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(photo_paths["chelsea.jpg"].read_bytes()[:500])
    inputs = [photo_paths["coffee.png"], broken, photo_paths["chelsea.png"]]
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        inference_model(tiny, inputs, batch_size=2)
    results = inference_model(tiny, inputs, batch_size=2, on_error="skip")
    assert results[1] is None and results[0] is not None and results[2] is not None
    assert "broken.jpg" in caplog.text
    assert results[2]["pred_label"] == inference_model(tiny, photo_paths["chelsea.png"])["pred_label"]


@pytest.mark.parametrize("name", ["test_beit_tiny", "test_beitv2_mim_tiny", "test_vqkd_tiny"])
def test_a_model_loaded_from_a_file_keeps_no_tensor_on_the_meta_device(tmp_path, name):
    """get_model builds on ``meta`` and assigns the file's tensors; derived buffers must be real too."""
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in get_model(name).state_dict().items()}, str(path))
    _relative_position_index.cache_clear()  # the index is memoised: build it anew, inside the meta build
    model = get_model(name, pretrained=path)
    left = [k for k, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    assert not left, left
