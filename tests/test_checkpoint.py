"""Checkpoint layouts, converters, strict loading and safe unpickling."""

import logging
import os
import sys
import types

import pytest
import torch
from safetensors.torch import save_file

from beitv2_zoo import get_model
from beitv2_zoo.checkpoint import read_checkpoint, split_layout
from beitv2_zoo.checkpoint.keymaps import canonical_to_mmpretrain, mmpretrain_to_canonical
from beitv2_zoo.errors import CheckpointError, CheckpointMismatchError, UnsafeCheckpointError
from beitv2_zoo.models import build_beit

from .conftest import image_batch, max_abs_diff, randomize_


def mmpretrain_reference_keys(depth: int = 12) -> set[str]:
    """The key set of mmpretrain's BEiT classifier, written out from its documented layout
    (reference/mmpretrain_beitv2.md §4.1), not derived from our converter."""
    keys = {"backbone.cls_token", "backbone.patch_embed.projection.weight", "backbone.patch_embed.projection.bias",
            "backbone.ln2.weight", "backbone.ln2.bias", "head.fc.weight", "head.fc.bias"}
    per_layer = ["gamma_1", "gamma_2", "ln1.weight", "ln1.bias", "attn.q_bias", "attn.v_bias",
                 "attn.relative_position_bias_table", "attn.relative_position_index", "attn.qkv.weight",
                 "attn.proj.weight", "attn.proj.bias", "ln2.weight", "ln2.bias", "ffn.layers.0.0.weight",
                 "ffn.layers.0.0.bias", "ffn.layers.1.weight", "ffn.layers.1.bias"]
    for i in range(depth):
        keys.update(f"backbone.layers.{i}.{name}" for name in per_layer)
    return keys


def test_mmpretrain_layout_matches_the_documented_key_set():
    model = build_beit("beit_base_patch16")
    with_index = dict(model.state_dict())
    for i, block in enumerate(model.blocks):
        with_index[f"blocks.{i}.attn.relative_position_index"] = block.attn.relative_position_index
    converted = canonical_to_mmpretrain(with_index)
    assert set(converted) == mmpretrain_reference_keys()
    assert len(converted) == 211
    assert converted["backbone.layers.3.ffn.layers.0.0.weight"].shape == (3072, 768)
    assert converted["backbone.layers.0.attn.relative_position_bias_table"].shape == (732, 12)


def test_mmpretrain_round_trip_is_identity():
    state = randomize_(build_beit("test_beit_tiny")).state_dict()
    back = mmpretrain_to_canonical(canonical_to_mmpretrain(state))
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_split_layout_recognises_every_wrapper():
    state = build_beit("test_beit_tiny").state_dict()
    official = {**state, "blocks.0.attn.relative_position_index": torch.zeros(197, 197, dtype=torch.long)}
    cases = {
        "mmpretrain": {"meta": {}, "state_dict": canonical_to_mmpretrain(state)},
        "official": {"model": official},
        "timm": dict(state),
    }
    for expected, raw in cases.items():
        converted, layout = split_layout(raw)
        assert layout == expected
        assert converted.keys() == state.keys()
    deepspeed = {"module": {f"module.{k}": v for k, v in official.items()}, "epoch": 3}
    converted, layout = split_layout(deepspeed)
    assert layout == "official" and converted.keys() == state.keys()


def test_mmpretrain_file_with_mmengine_objects_loads(tmp_path, photo_paths):
    """Published mmpretrain files carry mmengine HistoryBuffer objects: they are stubbed, never imported."""
    names = ("mmengine", "mmengine.logging", "mmengine.logging.history_buffer")
    saved = {name: sys.modules.get(name) for name in names}
    fakes = {name: types.ModuleType(name) for name in names}

    class HistoryBuffer:
        def __init__(self):
            self.history = [1.0, 2.0]

    HistoryBuffer.__module__ = "mmengine.logging.history_buffer"
    HistoryBuffer.__qualname__ = "HistoryBuffer"
    fakes["mmengine.logging.history_buffer"].HistoryBuffer = HistoryBuffer
    model = randomize_(build_beit("test_beit_tiny")).eval()
    classes = [f"class {i}" for i in range(1000)]
    raw = {"meta": {"dataset_meta": {"classes": classes}}, "state_dict": canonical_to_mmpretrain(model.state_dict()),
           "message_hub": {"log_scalars": {"train/loss": HistoryBuffer()}}}
    path = tmp_path / "published.pth"
    sys.modules.update(fakes)
    try:
        torch.save(raw, path, _use_new_zipfile_serialization=False)
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module

    before = set(sys.modules)
    checkpoint = read_checkpoint(path)
    assert not {m for m in set(sys.modules) - before if m.startswith("mmengine")}, "the loader imported mmengine"
    assert checkpoint.layout == "mmpretrain"
    assert checkpoint.classes == tuple(classes)
    loaded = get_model("test_beit_tiny", pretrained=path)
    assert loaded.class_names == tuple(classes)
    x = image_batch(1)
    with torch.no_grad():
        assert max_abs_diff(loaded(x), model(x)) == 0.0


def test_an_unknown_class_in_a_pickle_is_refused_even_if_inert(tmp_path):
    """Only the named, inert bookkeeping classes are stubbed; any other class is refused."""
    module = types.ModuleType("some_trainer_lib")

    class Tracker:
        pass

    Tracker.__module__ = "some_trainer_lib"
    Tracker.__qualname__ = "Tracker"
    module.Tracker = Tracker
    sys.modules["some_trainer_lib"] = module
    try:
        torch.save({"state_dict": {"x": torch.ones(1)}, "tracker": Tracker()}, tmp_path / "other.pth")
    finally:
        del sys.modules["some_trainer_lib"]
    with pytest.raises(UnsafeCheckpointError, match="some_trainer_lib.Tracker"):
        read_checkpoint(tmp_path / "other.pth")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.ones(1)}, "payload": _RunsCode(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        read_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError):
        get_model("test_beit_tiny", pretrained=path)
    assert not marker.exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(build_beit("test_beit_tiny").state_dict(), path)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        get_model("test_beit_tiny", pretrained=truncated)
    sf = tmp_path / "model.safetensors"
    save_file(build_beit("test_beit_tiny").state_dict(), sf)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(sf.read_bytes()[: sf.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        get_model("test_beit_tiny", pretrained=cut)


def test_missing_file_and_non_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        get_model("test_beit_tiny", pretrained=tmp_path / "nope.pth")
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights")
    with pytest.raises(CheckpointError):
        get_model("test_beit_tiny", pretrained=text)
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    with pytest.raises(CheckpointError, match="dict of tensors"):
        get_model("test_beit_tiny", pretrained=listing)


def test_checkpoint_of_another_architecture_lists_every_difference(tmp_path):
    path = tmp_path / "other.safetensors"
    other = build_beit("test_beit_tiny", depth=2, use_rel_pos_bias=False, use_shared_rel_pos_bias=True)
    save_file(other.state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as error:
        get_model("test_beit_tiny", pretrained=path)
    message = str(error.value)
    assert "blocks.{2-3}.norm1.weight" in message  # missing deeper blocks, folded into one line
    assert "rel_pos_bias.relative_position_bias_table" not in message  # copied into blocks deliberately
    assert "missing from the checkpoint" in message


def test_tensor_of_wrong_shape_is_named(tmp_path):
    state = build_beit("test_beit_tiny").state_dict()
    state["blocks.1.mlp.fc1.weight"] = torch.zeros(100, 64)
    path = tmp_path / "bad.safetensors"
    save_file(state, path)
    with pytest.raises(CheckpointMismatchError, match=r"blocks\.1\.mlp\.fc1\.weight: checkpoint \[100, 64\] vs model \[256, 64\]"):
        get_model("test_beit_tiny", pretrained=path)


def test_unexpected_keys_are_reported(tmp_path):
    state = build_beit("test_beit_tiny").state_dict()
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "extra.safetensors"
    save_file(state, path)
    with pytest.raises(CheckpointMismatchError, match="unexpected in the checkpoint:\n  extra.weight"):
        get_model("test_beit_tiny", pretrained=path)


def test_new_num_classes_drops_the_head_and_says_so(tmp_path, caplog):
    source = randomize_(build_beit("test_beit_tiny")).eval()
    path = tmp_path / "tiny.safetensors"
    save_file(source.state_dict(), path)
    with caplog.at_level(logging.WARNING, logger="beitv2_zoo"):
        model = get_model("test_beit_tiny", pretrained=path, num_classes=10)
    assert "dropped the checkpoint's 1000-class head" in caplog.text
    assert model.head.weight.shape == (10, 64) and not model.head.weight.is_meta
    assert model.class_names is None
    x = image_batch(1)
    with torch.no_grad():
        assert max_abs_diff(model.extract_feat(x)[0], source.extract_feat(x)[0]) == 0.0


def test_checkpoint_path_alone_infers_the_architecture(tmp_path):
    source = randomize_(build_beit("test_beit_tiny", num_classes=7)).eval()
    path = tmp_path / "custom.safetensors"
    save_file(source.state_dict(), path)
    model = get_model(path)
    assert model.num_classes == 7 and len(model.blocks) == 4 and model.weights_info is None
    x = image_batch(1)
    with torch.no_grad():
        assert max_abs_diff(model(x), source(x)) <= 1e-5


def _callables_that_run_code():
    import cProfile
    import profile
    import pydoc
    import timeit

    found = {"timeit.timeit": timeit.timeit, "cProfile.run": cProfile.run, "profile.run": profile.run,
             "pydoc.pipepager": pydoc.pipepager, "torch.load": torch.load}
    try:
        import _posixsubprocess

        found["_posixsubprocess.fork_exec"] = _posixsubprocess.fork_exec
    except ImportError:
        pass
    try:
        from numpy.testing._private.utils import runstring

        found["numpy runstring"] = runstring
    except ImportError:
        pass
    return found


class _Calls:
    def __init__(self, function, args):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


@pytest.mark.parametrize("label", sorted(_callables_that_run_code()))
def test_globals_outside_the_allowlist_are_refused(tmp_path, label):
    """0.1 stubbed these (nothing ran, but the file loaded); now they are refused like os.system."""
    function = _callables_that_run_code()[label]
    marker = tmp_path / "ran"
    args = {"torch.load": (str(tmp_path / "inner.pth"),), "_posixsubprocess.fork_exec": ()}.get(
        label, (f"open({str(marker)!r}, 'w')",))
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.ones(1)}, "payload": _Calls(function, args)}, path)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        read_checkpoint(path)
    assert not marker.exists()
