"""Hugging Face transformers' BEiT: its files read as a fourth layout, and ``export_transformers`` /
``beitv2-zoo convert --to transformers`` write folders ``BeitForImageClassification.from_pretrained`` loads.

transformers itself is the oracle: random weights go through its classes and ours, and the logits
are compared on the same normalised input.
"""

import json

import pytest
import torch

from beitv2_zoo import get_model
from beitv2_zoo.checkpoint import read_checkpoint
from beitv2_zoo.checkpoint.keymaps import canonical_to_mmpretrain
from beitv2_zoo.checkpoint.keymaps_transformers import canonical_to_transformers, transformers_to_canonical
from beitv2_zoo.cli import main
from beitv2_zoo.errors import ModelConfigError
from beitv2_zoo.export_transformers import export_transformers
from beitv2_zoo.models import ARCHITECTURES, build_beit

from .conftest import image_batch, max_abs_diff, randomize_

transformers = pytest.importorskip("transformers", minversion="5")

TINY = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=256, image_size=224,
            patch_size=16, use_relative_position_bias=True, use_mean_pooling=True, layer_scale_init_value=0.1,
            layer_norm_eps=1e-6, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0,
            use_absolute_position_embeddings=False, use_shared_relative_position_bias=False)
"""A ``BeitConfig`` computing the same function as ``test_beit_tiny`` (transformers' own defaults
differ: ``layer_norm_eps=1e-12``, ``use_mean_pooling`` only by luck of the default)."""


def _canonical(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.endswith("relative_position_index")}


def _hf_classifier(num_labels: int = 1000, seed: int = 0, **overrides):
    """A transformers ``BeitForImageClassification`` with random, non-trivial weights."""
    config = transformers.BeitConfig(**{**TINY, **overrides}, num_labels=num_labels)
    model = transformers.BeitForImageClassification(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lambda" in name:
                parameter.copy_(0.25 + 0.5 * torch.rand(parameter.shape, generator=generator))
            elif "layernorm" in name and name.endswith("weight"):
                parameter.copy_(1.0 + 0.2 * torch.randn(parameter.shape, generator=generator))
            else:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model


def _hf_logits(model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(pixel_values=x).logits


@pytest.fixture(scope="module")
def tiny():
    return randomize_(build_beit("test_beit_tiny")).eval()


# ----------------------------------------------------------------- key maps
@pytest.mark.parametrize("settings", [
    {},
    dict(use_rel_pos_bias=False, use_shared_rel_pos_bias=True, use_abs_pos_emb=True, global_pool="token",
         init_values=None, num_classes=7),
], ids=["v2-classifier", "shared-abs-token"])
def test_round_trip_is_exact(settings):
    state = _canonical(randomize_(build_beit("test_beit_tiny", **settings)))
    back = transformers_to_canonical(canonical_to_transformers(state))
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


@pytest.mark.parametrize("overrides", [
    {},
    dict(use_relative_position_bias=False, use_shared_relative_position_bias=True,
         use_absolute_position_embeddings=True, use_mean_pooling=False),
], ids=["v2-classifier", "shared-abs-token"])
def test_names_are_those_transformers_saves(tmp_path, overrides):
    from safetensors import safe_open

    hf = _hf_classifier(num_labels=5, **overrides)
    hf.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as file:
        saved = set(file.keys())
    settings = dict(num_classes=5)
    if overrides:
        settings.update(use_rel_pos_bias=False, use_shared_rel_pos_bias=True, use_abs_pos_emb=True, global_pool="token")
    ours = _canonical(build_beit("test_beit_tiny", **settings))
    assert set(canonical_to_transformers(ours)) == saved
    # transformers >= 5 names its modules differently in memory; both spellings read the same
    in_memory = transformers_to_canonical(hf.state_dict())
    assert in_memory.keys() == ours.keys()
    assert all(in_memory[k].shape == ours[k].shape for k in ours)


# ----------------------------------------------------------------- reading transformers files
def test_transformers_file_loads_and_matches(tmp_path):
    hf = _hf_classifier()
    hf.save_pretrained(tmp_path)
    file = tmp_path / "model.safetensors"
    assert read_checkpoint(file).layout == "transformers"
    x = image_batch(2)
    reference = _hf_logits(hf, x)
    for model in (get_model("test_beit_tiny", pretrained=file), get_model(file)):
        with torch.no_grad():
            assert max_abs_diff(model(x), reference) < 1e-5


def test_transformers_variants_load(tmp_path):
    """Shared table + absolute positions + CLS pooling (a BEiT v1 style config), read without a name."""
    hf = _hf_classifier(num_labels=3, use_relative_position_bias=False, use_shared_relative_position_bias=True,
                        use_absolute_position_embeddings=True, use_mean_pooling=False)
    hf.save_pretrained(tmp_path)
    model = get_model(tmp_path / "model.safetensors")
    assert model.global_pool == "token"
    x = image_batch(1)
    with torch.no_grad():
        assert max_abs_diff(model(x), _hf_logits(hf, x)) < 1e-5


def test_transformers_backbone_and_state_dict_files_load(tmp_path):
    hf = _hf_classifier(num_labels=4)
    # a BeitModel file: no head, no "beit." prefix
    hf.beit.save_pretrained(tmp_path / "backbone")
    checkpoint = read_checkpoint(tmp_path / "backbone" / "model.safetensors")
    assert checkpoint.layout == "transformers"
    backbone = build_beit("test_beit_tiny").eval()
    report = backbone.load_state_dict(checkpoint.state_dict, strict=False)  # get_model asks every file for a head
    assert sorted(report.missing_keys) == ["head.bias", "head.weight"] and not report.unexpected_keys
    x = image_batch(1)
    with torch.no_grad():
        assert max_abs_diff(backbone.extract_feat(x)[-1], hf.beit(pixel_values=x).pooler_output) < 1e-5
    # torch.save(model.state_dict()) of a live transformers 5 model (its in-memory names)
    torch.save(hf.state_dict(), tmp_path / "state.pth")
    model = get_model(tmp_path / "state.pth")
    with torch.no_grad():
        assert max_abs_diff(model(x), _hf_logits(hf, x)) < 1e-5


# ----------------------------------------------------------------- export
def test_export_loads_in_transformers(tiny, tmp_path):
    names = [f"class {i}" for i in range(1000)]
    result = export_transformers(tiny, tmp_path / "hf", class_names=names)
    assert sorted(p.name for p in result.files) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    hf = transformers.BeitForImageClassification.from_pretrained(tmp_path / "hf").eval()
    config = hf.config
    assert (config.layer_norm_eps, config.use_mean_pooling, config.layer_scale_init_value) == (1e-6, True, 0.1)
    assert config.id2label[3] == "class 3" and config.label2id["class 3"] == 3
    x = image_batch(2)
    with torch.no_grad():
        assert max_abs_diff(_hf_logits(hf, x), tiny(x)) < 1e-4
    from safetensors import safe_open

    with safe_open(tmp_path / "hf" / "model.safetensors", "pt") as file:
        assert file.metadata() == {"format": "pt"}
    # and back: the exported folder reads as a transformers checkpoint into the same model
    again = get_model(tmp_path / "hf" / "model.safetensors")
    with torch.no_grad():
        assert max_abs_diff(again(x), tiny(x)) == 0.0


def test_exported_image_processor_matches_our_transform(tiny, tmp_path, photo_paths):
    from PIL import Image

    from beitv2_zoo.transforms import create_transform

    export_transformers(tiny, tmp_path)
    processor = transformers.AutoImageProcessor.from_pretrained(tmp_path)
    settings = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert settings["size"] == {"shortest_edge": 256} and settings["crop_size"] == {"height": 224, "width": 224}
    image = Image.open(photo_paths["chelsea.png"]).convert("RGB").resize((256, 256))  # no resize left to differ on
    theirs = processor(images=image, return_tensors="pt")["pixel_values"]
    ours = create_transform(tiny)(image)[None]
    assert theirs.shape == ours.shape == (1, 3, 224, 224)
    assert max_abs_diff(theirs, ours) < 1e-4
    # PIL's resampling (transformers' "pil" backend) resizes a non-square photo as ours does
    pil = transformers.AutoImageProcessor.from_pretrained(tmp_path, backend="pil")
    photo = Image.open(photo_paths["chelsea.png"]).convert("RGB")
    assert photo.size != (256, 256)
    theirs = pil(images=photo, return_tensors="pt")["pixel_values"]
    assert max_abs_diff(theirs, create_transform(tiny)(photo)[None]) < 1e-5


def test_export_token_pooling_and_checkpoint_source(tmp_path):
    model = randomize_(build_beit("test_beit_tiny", global_pool="token", use_abs_pos_emb=True, num_classes=3)).eval()
    torch.save(_canonical(model), tmp_path / "ours.pth")
    export_transformers(read_checkpoint(tmp_path / "ours.pth"), tmp_path / "hf")
    hf = transformers.BeitForImageClassification.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.use_mean_pooling is False and hf.config.id2label[0] == "LABEL_0"
    x = image_batch(1)
    with torch.no_grad():
        assert max_abs_diff(_hf_logits(hf, x), model(x)) < 1e-4


def test_export_refuses_what_is_not_a_classifier(tmp_path):
    mim = ARCHITECTURES["test_beitv2_mim_tiny"].build()
    with pytest.raises(ModelConfigError, match="only BEiT classifiers"):
        export_transformers(mim, tmp_path / "mim")
    tokenizer = ARCHITECTURES["test_vqkd_tiny"].build()
    with pytest.raises(ModelConfigError, match="tokenizer"):
        export_transformers(tokenizer, tmp_path / "vqkd")
    with pytest.raises(ModelConfigError, match="no classification head"):
        export_transformers(build_beit("test_beit_tiny", num_classes=0), tmp_path / "headless")
    with pytest.raises(ModelConfigError, match="class_names has 2 names"):
        export_transformers(build_beit("test_beit_tiny", num_classes=3), tmp_path / "x", class_names=["a", "b"])
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_export_base_size_matches(tmp_path):
    model = randomize_(build_beit("beit_base_patch16")).eval()
    export_transformers(model, tmp_path)
    hf = transformers.BeitForImageClassification.from_pretrained(tmp_path).eval()
    x = image_batch(1)
    with torch.no_grad():
        assert max_abs_diff(_hf_logits(hf, x), model(x)) < 1e-4


# ----------------------------------------------------------------- the command
def test_convert_to_transformers_command(tiny, tmp_path, capsys):
    classes = [f"kind {i}" for i in range(1000)]
    source = tmp_path / "mm-tiny.pth"
    torch.save({"meta": {"dataset_meta": {"classes": classes}}, "state_dict": canonical_to_mmpretrain(tiny.state_dict())},
               source)
    assert main(["convert", str(source), str(tmp_path / "hf"), "--to", "transformers"]) == 0
    assert "BeitForImageClassification" in capsys.readouterr().out
    hf = transformers.BeitForImageClassification.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.id2label[999] == "kind 999"
    x = image_batch(1)
    with torch.no_grad():
        assert max_abs_diff(_hf_logits(hf, x), tiny(x)) < 1e-4
    pipe = transformers.pipeline("image-classification", model=str(tmp_path / "hf"), device="cpu")
    assert pipe(_pil(), top_k=1)[0]["label"].startswith("kind ")


def _pil():
    from PIL import Image

    return Image.new("RGB", (320, 240), (120, 60, 200))


def test_convert_to_transformers_refuses(tmp_path, capsys):
    assert main(["convert", "beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k", str(tmp_path / "hf"),
                 "--to", "transformers"]) == 1
    assert "only BEiT classifiers export to transformers" in capsys.readouterr().err
    assert not (tmp_path / "hf").exists()
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["convert", "test_beit_tiny", str(file), "--to", "transformers"]) == 2
    assert "is a file" in capsys.readouterr().err


def test_convert_a_transformers_file_to_canonical(tmp_path, capsys):
    hf = _hf_classifier(num_labels=6)
    hf.save_pretrained(tmp_path / "hf")
    dst = tmp_path / "canonical.safetensors"
    assert main(["convert", str(tmp_path / "hf" / "model.safetensors"), str(dst)]) == 0
    assert "transformers layout" in capsys.readouterr().out
    assert read_checkpoint(dst).layout == "canonical"
    x = image_batch(1)
    with torch.no_grad():
        assert max_abs_diff(get_model(dst)(x), _hf_logits(hf, x)) < 1e-5
