"""Pictures: predictions with bars, CLS attention maps, training curves."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from beitv2_zoo import get_model
from beitv2_zoo.cli import main
from beitv2_zoo.models import build_beit
from beitv2_zoo.viz import colormap, curves_figure

from .conftest import EXAMPLE_IMAGE, image_batch, randomize_


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("pictures") / "tiny.safetensors"
    save_file(randomize_(build_beit("test_beit_tiny")).state_dict(), path)
    return path


def assert_picture(path, min_size=(300, 200)):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.width >= min_size[0] and image.height >= min_size[1]
        assert image.width <= 4000 and image.height <= 4000
        pixels = np.asarray(image)
    assert pixels.std() > 10, "the picture is (nearly) blank"
    return pixels


def test_predict_show_draws_image_and_bars(tmp_path, tiny_weights):
    out = tmp_path / "pred.png"
    assert main(["predict", str(EXAMPLE_IMAGE), "--model", "test_beit_tiny", "--weights", str(tiny_weights),
                 "--show", str(out)]) == 0
    pixels = assert_picture(out)
    bar_blue = np.all(pixels == (52, 101, 164), axis=-1)
    assert bar_blue.sum() > 500, "no bars drawn"


def test_predict_show_several_images_writes_a_folder(tmp_path, tiny_weights, photo_paths):
    out = tmp_path / "shown"
    images = [str(photo_paths["coffee.png"]), str(photo_paths["astronaut.jpg"])]
    assert main(["predict", *images, "--model", "test_beit_tiny", "--weights", str(tiny_weights), "--topk", "3",
                 "--show", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["astronaut_top3.png", "coffee_top3.png"]


def test_attention_picture(tmp_path, tiny_weights):
    out = tmp_path / "attention.png"
    assert main(["attention", str(EXAMPLE_IMAGE), "--model", "test_beit_tiny", "--weights", str(tiny_weights),
                 "--layer", "-2", "--out", str(out)]) == 0
    assert_picture(out, (900, 300))


def test_attention_maps_are_the_attention_the_model_uses(tiny_weights):
    model = get_model("test_beit_tiny", pretrained=tiny_weights)
    x = image_batch(1)
    with torch.no_grad():
        probs = model.attention_maps(x, 0)
        assert probs.shape == (1, 2, 197, 197)
        assert torch.allclose(probs.sum(-1), torch.ones(1, 2, 197))
        attn, tokens = model.blocks[0].attn, model.blocks[0].norm1(model._embed(x))
        q, k, v = attn.split_heads(torch.nn.functional.linear(tokens, attn.qkv.weight, attn.qkv_bias()))
        from_probs = (probs @ v).transpose(1, 2).reshape(1, 197, 64)
        direct = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn.position_bias(None, q.dtype))
        assert torch.allclose(from_probs, direct.transpose(1, 2).reshape(1, 197, 64), atol=1e-5)
    with pytest.raises(IndexError):
        model.attention_maps(x, 4)


def test_plot_log(tmp_path):
    log = tmp_path / "train.jsonl"
    rows = [{"step": s, "loss": 5.0 / (1 + s), "lr": 1e-3 * s / 10} for s in range(10)]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n\n", encoding="utf-8")
    assert main(["plot-log", str(log)]) == 0
    assert_picture(tmp_path / "train.png")
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"note": "nothing numeric"}\n', encoding="utf-8")
    assert main(["plot-log", str(empty)]) == 1


def test_colormap_and_empty_curves():
    colours = colormap(np.array([0.0, 0.5, 1.0, -1.0, 2.0]))
    assert colours.shape == (5, 3) and colours.dtype == np.uint8
    assert tuple(colours[0]) == tuple(colours[3]) and tuple(colours[2]) == tuple(colours[4])
    assert colours[2].sum() > colours[0].sum()  # bright end is brighter
    with pytest.raises(ValueError):
        curves_figure({"loss": []})
