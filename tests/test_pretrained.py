"""``save_pretrained`` / ``push_to_hub`` / ``get_model(folder | 'hf-hub:org/repo')``, and the safetensors
metadata and cache copies other readers accept (``format: pt``, no filler tensors).

What is tested, and how:

* the round trip ``save_pretrained`` → ``get_model(folder)``: the same outputs bit for bit, the same
  class names, preprocessing and settings, for a classifier, a pretraining model and a tokenizer;
* the download side against a Hub stand-in on 127.0.0.1 (``tests/http_server.py``, through
  ``HF_ENDPOINT``): ``get_model('hf-hub:org/repo[@commit]')`` fetches ``config.json`` and
  ``model.safetensors`` with huggingface_hub (HEAD + GET, its cache), and loads offline afterwards;
  a repository in timm's format (timm's ``config.json``, timm-layout weights from a timm model) too;
* the upload side only up to huggingface_hub: ``HfApi.create_repo`` / ``create_branch`` /
  ``upload_folder`` are replaced by recorders, so the test checks what ``push_to_hub`` asks for
  (repo id, privacy, branch, commit message, pull request, endpoint) and the folder it would upload
  (its files load back to the same model). NOT tested: the real Hub's HTTP upload protocol
  (preupload/LFS/commit endpoints), authentication and its error answers — the stand-in serves
  downloads only;
* safetensors metadata: ``format: pt`` plus ``beitv2_zoo_format``; files with the old
  ``format: beitv2_zoo`` still read as canonical;
* a cache copy of a ``.pth`` has no ``__pad__.*`` tensor, passes transformers' ``format == 'pt'``
  check, and loads into a timm Beit with ``strict=True`` (bit-identical outputs of the mapped model are
  tested in ``tests/test_hub_safetensors_copy.py``).
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import beitv2_zoo
from beitv2_zoo import CheckpointError, get_model, push_to_hub, save_pretrained
from beitv2_zoo.checkpoint import read_checkpoint
from beitv2_zoo.checkpoint.aligned import ALIGNMENT, save_aligned
from beitv2_zoo.checkpoint.cache_copy import write_copy
from beitv2_zoo.checkpoint.canonical import canonical_metadata
from beitv2_zoo.checkpoint.keymaps import canonical_to_mmpretrain
from beitv2_zoo.checkpoint.safetensors_io import PAD_PREFIX, read_header, save
from beitv2_zoo.hub import sha256_of
from beitv2_zoo.models import build_beit

from .conftest import image_batch, max_abs_diff, randomize_
from .http_server import HubServer

CLASSES = ("cat", "dog", "owl", "eel", "yak")


def _classifier() -> torch.nn.Module:
    model = get_model("test_beit_tiny", num_classes=len(CLASSES))
    randomize_(model)
    model.class_names = CLASSES
    return model


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = image_batch(2)
    with torch.inference_mode():
        return torch.equal(a(x), b(x))


# ------------------------------------------------------------------ local round trip
def test_save_pretrained_round_trip_is_bit_identical(tmp_path):
    model = _classifier()
    folder = save_pretrained(model, tmp_path / "tiny")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]

    config = json.loads((folder / "config.json").read_text())
    assert config["library_name"] == "beitv2_zoo" and config["library_version"] == beitv2_zoo.__version__
    assert config["architecture"] == "test_beit_tiny" and config["model_class"] == "Beit"
    assert config["model_settings"]["embed_dim"] == 64 and config["num_classes"] == 5
    assert config["class_names"] == list(CLASSES) and config["id2label"]["4"] == "yak"
    assert config["preprocessing"]["crop_size"] == 224 and config["pretrained_cfg"]["input_size"] == [3, 224, 224]

    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: beitv2_zoo" in card and "pipeline_tag: image-classification" in card
    assert "license: apache-2.0" in card and "base_model" not in card  # a local test record: no Hub repo to name

    loaded = get_model(folder)
    assert _same_outputs(model, loaded)
    assert loaded.class_names == CLASSES and loaded.num_classes == 5
    assert loaded.weights_info.preprocessing == model.weights_info.preprocessing
    assert loaded.build_settings == model.build_settings

    into_name = get_model("test_beit_tiny", pretrained=folder)  # the folder as pretrained= of a registered name
    assert _same_outputs(model, into_name) and into_name.class_names == CLASSES

    save_pretrained(loaded, folder)  # over itself: the files are replaced atomically
    assert _same_outputs(model, get_model(str(folder)))


@pytest.mark.parametrize("name", ["test_beitv2_mim_tiny", "test_vqkd_tiny"])
def test_pretraining_models_and_tokenizers_round_trip(tmp_path, name):
    model = randomize_(get_model(name))
    loaded = get_model(save_pretrained(model, tmp_path / name))
    assert type(loaded) is type(model) and loaded.class_names is None
    original, again = model.state_dict(), loaded.state_dict()
    assert original.keys() == again.keys() and all(torch.equal(original[k], again[k]) for k in original)
    config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["num_classes"] == 0 and "image-feature-extraction" in (tmp_path / name / "README.md").read_text()


def test_a_model_built_without_get_model_has_its_settings_read_off_its_tensors(tmp_path):
    model = randomize_(build_beit("test_beit_tiny", num_classes=7)).eval()
    loaded = get_model(save_pretrained(model, tmp_path / "built"))
    assert _same_outputs(model, loaded) and loaded.num_classes == 7


def test_a_replaced_head_is_saved_as_it_now_is(tmp_path):
    model = _classifier()
    model.reset_classifier(3)
    model.class_names = ("a", "b", "c")
    loaded = get_model(save_pretrained(model, tmp_path / "three"))
    assert loaded.num_classes == 3 and loaded.class_names == ("a", "b", "c") and _same_outputs(model, loaded)


def test_a_folder_without_config_json_is_still_a_run_folder(tmp_path):
    model = _classifier()
    folder = save_pretrained(model, tmp_path / "run")
    (folder / "config.json").unlink()
    (folder / "recipe.json").write_text("{}")
    assert _same_outputs(model, get_model("test_beit_tiny", pretrained=folder))


def test_a_config_json_that_is_not_ours_or_timms_is_refused(tmp_path):
    folder = save_pretrained(_classifier(), tmp_path / "other")
    (folder / "config.json").write_text(json.dumps({"model_type": "beit"}))
    with pytest.raises(beitv2_zoo.ModelConfigError, match="neither beitv2_zoo's"):
        get_model(folder)


# ------------------------------------------------------------------ safetensors metadata
def test_files_say_format_pt_and_old_files_still_read_as_canonical(tmp_path):
    folder = save_pretrained(_classifier(), tmp_path / "meta")
    with safe_open(str(folder / "model.safetensors"), "pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "pt" and metadata["beitv2_zoo_format"] == "1"  # what transformers checks
    assert read_checkpoint(folder / "model.safetensors").layout == "canonical"

    old = tmp_path / "old.safetensors"  # as 0.1 wrote them: format beitv2_zoo, no marker
    legacy = {k: v for k, v in metadata.items() if k != "beitv2_zoo_format"}
    save(old, load_file(str(folder / "model.safetensors")), {**legacy, "format": "beitv2_zoo"})
    checkpoint = read_checkpoint(old)
    assert checkpoint.layout == "canonical" and checkpoint.classes == CLASSES


def test_a_cache_copy_loads_into_timm_strictly(tmp_path):
    pytest.importorskip("timm")
    from timm.models.beit import Beit as TimmBeit

    ours = randomize_(build_beit("test_beit_tiny")).eval()
    pth = tmp_path / "tiny-0123abcd.pth"
    torch.save({"meta": {}, "state_dict": canonical_to_mmpretrain(ours.state_dict())}, pth)
    checkpoint = read_checkpoint(pth)
    copy = write_copy(pth, checkpoint.state_dict, canonical_metadata(checkpoint, pth.name, sha256_of(pth)))

    header = read_header(copy)
    assert not any(name.startswith(PAD_PREFIX) for name in header.tensors)
    with safe_open(str(copy), "pt") as handle:
        assert handle.metadata().get("format") == "pt"  # transformers refuses anything else
    for name, entry in header.tensors.items():
        if (entry.end - entry.begin) % ALIGNMENT == 0:  # every weight matrix is still 64-byte aligned
            assert entry.begin % ALIGNMENT == 0, name

    reference = TimmBeit(img_size=224, patch_size=16, embed_dim=64, depth=4, num_heads=2, num_classes=1000,
                         use_abs_pos_emb=False, use_rel_pos_bias=True, init_values=0.1, global_pool="avg").eval()
    reference.load_state_dict(load_file(str(copy)), strict=True)
    x = image_batch(1)
    with torch.inference_mode():
        assert max_abs_diff(reference(x), ours(x)) < 1e-4


def test_save_aligned_without_fillers_keeps_whole_tensors_aligned(tmp_path):
    tensors = {"odd": torch.arange(3, dtype=torch.float32), "matrix": torch.randn(8, 4),
               "bytes": torch.ones(5, dtype=torch.uint8), "square": torch.randn(16, 16)}
    path = tmp_path / "nofill.safetensors"
    save_aligned(path, tensors, {"format": "pt"}, fillers=False)
    header = read_header(path)
    assert set(header.tensors) == set(tensors) and header.data_start % ALIGNMENT == 0
    assert header.tensors["matrix"].begin % ALIGNMENT == 0 and header.tensors["square"].begin % ALIGNMENT == 0
    back = load_file(str(path))
    assert all(torch.equal(back[k], v) for k, v in tensors.items())


# ------------------------------------------------------------------ the Hub (download side)
@pytest.fixture
def hub(tmp_path, monkeypatch):
    """``hub(repos)`` serves ``{'org/repo': {file: bytes}}`` as the Hub does, with HF_ENDPOINT pointing at it."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    servers = []

    def start(repos: dict) -> HubServer:
        server = HubServer(repos).__enter__()
        servers.append(server)
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def _repo_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_get_model_hf_hub_repo_downloads_config_and_weights(tmp_path, hub):
    model = _classifier()
    server = hub({"org/tiny": _repo_files(save_pretrained(model, tmp_path / "up"))})

    loaded = get_model("hf-hub:org/tiny")
    assert _same_outputs(model, loaded) and loaded.class_names == CLASSES
    got = {r.path for r in server.state.log if r.method == "GET"}
    assert got == {"/org/tiny/resolve/main/config.json", "/org/tiny/resolve/main/model.safetensors"}
    assert (tmp_path / "hf-cache" / "models--org--tiny" / "snapshots" / server.commit / "config.json").is_file()

    pinned = get_model(f"hf-hub:org/tiny@{server.commit}")
    assert _same_outputs(model, pinned)
    server.state.log.clear()
    assert _same_outputs(model, get_model("hf-hub:org/tiny", offline=True))
    assert server.state.log == [], "offline: huggingface_hub's cache only"


def test_a_hub_repo_without_config_json_says_to_use_pretrained(tmp_path, hub):
    model = _classifier()
    files = _repo_files(save_pretrained(model, tmp_path / "up"))
    del files["config.json"]
    hub({"org/bare": files})
    with pytest.raises(CheckpointError, match="no config.json.*pretrained="):
        get_model("hf-hub:org/bare")
    assert _same_outputs(model, get_model("test_beit_tiny", pretrained="hf-hub:org/bare", num_classes=5))
    assert _same_outputs(model, get_model("test_beit_tiny", pretrained="hf-hub:org/bare/model.safetensors",
                                          num_classes=5))


def test_a_timm_format_repo_loads_with_its_preprocessing(tmp_path, hub):
    pytest.importorskip("timm")
    from timm.models.beit import Beit as TimmBeit

    torch.manual_seed(0)
    reference = TimmBeit(img_size=224, patch_size=16, embed_dim=64, depth=4, num_heads=2, num_classes=1000,
                         use_abs_pos_emb=False, use_rel_pos_bias=True, init_values=0.1, global_pool="avg").eval()
    randomize_(reference)
    state = {k: v.contiguous() for k, v in reference.state_dict().items() if not k.endswith("relative_position_index")}
    save_file(state, str(tmp_path / "timm.safetensors"), metadata={"format": "pt"})
    config = {  # the shape of timm's config.json (push_to_hub with model_args for the tiny width)
        "architecture": "beitv2_base_patch16_224", "num_classes": 1000, "num_features": 64, "global_pool": "avg",
        "model_args": {"embed_dim": 64, "depth": 4, "num_heads": 2},
        "pretrained_cfg": {"tag": "in1k_ft_in1k", "input_size": [3, 224, 224], "fixed_input_size": True,
                           "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center",
                           "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "num_classes": 1000,
                           "first_conv": "patch_embed.proj", "classifier": "head"},
    }
    hub({"timm/tiny_beitv2": {"config.json": json.dumps(config).encode(),
                              "model.safetensors": (tmp_path / "timm.safetensors").read_bytes()}})

    loaded = get_model("hf-hub:timm/tiny_beitv2")
    x = image_batch(1)
    with torch.inference_mode():
        assert max_abs_diff(loaded(x), reference(x)) < 1e-4
    pre = loaded.weights_info.preprocessing
    assert (pre.crop_size, pre.resize_size, pre.crop_pct, pre.mean) == (224, 248, 0.9, (0.5, 0.5, 0.5))
    assert loaded.weights_info.upstream == "beitv2_base_patch16_224.in1k_ft_in1k"
    assert loaded.class_names is not None and len(loaded.class_names) == 1000  # ImageNet-1k by head size


# ------------------------------------------------------------------ the Hub (upload side, up to huggingface_hub)
def test_push_to_hub_uploads_what_save_pretrained_writes(tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    calls: list[tuple[str, dict]] = []
    uploaded = tmp_path / "uploaded"

    def recorder(method):
        def record(self, *args, **kwargs):
            calls.append((method, {"args": args, "endpoint": self.endpoint, **kwargs}))
            if method == "upload_folder":
                shutil.copytree(kwargs["folder_path"], uploaded, dirs_exist_ok=True)
                return "commit-info"
            return None
        return record

    for method in ("create_repo", "create_branch", "upload_folder"):
        monkeypatch.setattr(HfApi, method, recorder(method))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # read at call time; nothing is contacted

    model = _classifier()
    result = push_to_hub(model, "me/tiny", revision="v1", private=True, commit_message="first")
    assert result == "commit-info"
    assert [name for name, _ in calls] == ["create_repo", "create_branch", "upload_folder"]
    repo, branch, upload = (kwargs for _, kwargs in calls)
    assert repo["args"] == ("me/tiny",) and repo["private"] is True and repo["exist_ok"] is True
    assert branch["branch"] == "v1" and upload["revision"] == "v1" and upload["commit_message"] == "first"
    assert upload["repo_id"] == "me/tiny" and upload["create_pr"] is False
    assert {c["endpoint"] for _, c in calls} == {"http://127.0.0.1:9"}
    assert sorted(p.name for p in uploaded.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert _same_outputs(model, get_model(uploaded))
    assert "get_model('hf-hub:me/tiny')" in (uploaded / "README.md").read_text()

    calls.clear()
    push_to_hub(model, "me/tiny", create_pr=True)
    assert [name for name, _ in calls] == ["create_repo", "upload_folder"]
    assert calls[1][1]["create_pr"] is True and "Upload test_beit_tiny with beitv2_zoo" in calls[1][1]["commit_message"]


def test_read_config_understands_timms_older_flat_form_and_label_names():
    from beitv2_zoo.pretrained import read_config

    flat = {"architecture": "beit_base_patch16_384", "num_classes": 3, "input_size": [3, 384, 384],
            "interpolation": "bicubic", "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3,
            "label_names": {"0": "x", "1": "y", "2": "z"}}
    config = read_config(flat, "flat")
    assert config.architecture_name == "beit_base_patch16" and config.settings == {"img_size": 384, "num_classes": 3}
    assert config.class_names == ("x", "y", "z") and config.record.preprocessing.resize_size == 384
    synsets = {"architecture": "beitv2_base_patch16_224", "num_classes": 1000,
               "pretrained_cfg": {"input_size": [3, 224, 224]}, "label_names": [f"n{i:08d}" for i in range(1000)]}
    assert read_config(synsets, "synsets").class_names is None  # ImageNet-1k's readable names apply instead
    with pytest.raises(beitv2_zoo.ModelConfigError, match="not a BEiT"):
        read_config({"architecture": "resnet50", "pretrained_cfg": {}}, "resnet")


def test_a_config_that_does_not_fit_its_weights_fails_the_strict_load(tmp_path):
    folder = save_pretrained(_classifier(), tmp_path / "wrong")
    config = json.loads((folder / "config.json").read_text())
    config["model_settings"]["depth"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(beitv2_zoo.CheckpointMismatchError, match="blocks.3"):
        get_model(folder)
