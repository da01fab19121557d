"""``--resume`` verifies what it resumes from (issue 12, items 6–7): a damaged newest checkpoint is
skipped with a warning naming it, the previous one is used, and a full disk is a typed error."""

import logging
import shutil

import pytest
import torch

from beitv2_zoo import CheckpointWriteError
from beitv2_zoo.checkpoint.safetensors_io import load_mmap, read_header
from beitv2_zoo.train import checkpointing
from beitv2_zoo.train.checkpointing import list_checkpoints, verified_checkpoint, verify_checkpoint
from beitv2_zoo.train.config import apply_overrides
from beitv2_zoo.train.engine import train
from beitv2_zoo.train.errors import ResumeError
from beitv2_zoo.train.recipes import get_recipe

from .conftest import TINY_FINETUNE, run

STEPS = dict(max_steps=6, save_interval=2, keep_last=3, num_workers=0)


def _zero_after_header(path):
    header = read_header(path)
    data = bytearray(path.read_bytes())
    data[header.data_start:] = bytes(len(data) - header.data_start)
    path.write_bytes(bytes(data))


def _flip_low_bits(path):
    header = read_header(path)
    data = bytearray(path.read_bytes())
    for offset in range(header.data_start, len(data), 97):
        data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _random_bytes(path):
    header = read_header(path)
    data = bytearray(path.read_bytes())
    data[header.data_start:] = torch.randint(0, 256, (len(data) - header.data_start,), dtype=torch.uint8).numpy().tobytes()
    path.write_bytes(bytes(data))


DAMAGE = {
    "zeroed weights": lambda folder: _zero_after_header(folder / "model.safetensors"),
    "flipped low bits": lambda folder: _flip_low_bits(folder / "model.safetensors"),
    "random weights": lambda folder: _random_bytes(folder / "model.safetensors"),
    "deleted weights": lambda folder: (folder / "model.safetensors").unlink(),
    "truncated state": lambda folder: (folder / "training_state.pt").write_bytes(
        (folder / "training_state.pt").read_bytes()[:100]),
}


@pytest.fixture(scope="module")
def stopped_run(image_folder, tmp_path_factory):
    """A run stopped at step 4 with checkpoints at steps 2 and 4, and the uninterrupted run to compare with."""
    root = tmp_path_factory.mktemp("verified")
    whole = run(TINY_FINETUNE, image_folder, root / "whole", **STEPS)
    recipe = apply_overrides(get_recipe(TINY_FINETUNE), {"data_root": str(image_folder), **STEPS})
    train(recipe, root / "parts", stop_at=4, progress=False)
    return recipe, root / "parts", whole


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_skips_a_damaged_checkpoint_and_says_so(stopped_run, tmp_path, damage, caplog):
    recipe, parts, whole = stopped_run
    work = tmp_path / "work"
    shutil.copytree(parts, work)
    newest = list_checkpoints(work)[-1]
    assert newest.name == "step_00000004"
    DAMAGE[damage](newest)
    with pytest.raises(ResumeError):
        verify_checkpoint(newest)
    with caplog.at_level(logging.WARNING, logger="beitv2_zoo"):
        assert verified_checkpoint(work).name == "step_00000002"
    assert "skipping step_00000004" in caplog.text
    train(recipe, work, resume=True, progress=False)  # from step 2, to the same end
    final, expected = load_mmap(work / "model.safetensors"), load_mmap(whole / "model.safetensors")
    assert all(torch.equal(final[k], expected[k]) for k in expected)


def test_resume_from_a_named_damaged_folder_is_an_error(stopped_run, tmp_path):
    recipe, parts, _ = stopped_run
    work = tmp_path / "work"
    shutil.copytree(parts, work)
    folder = list_checkpoints(work)[-1]
    _zero_after_header(folder / "model.safetensors")
    with pytest.raises(ResumeError, match="sha256 differs"):
        train(recipe, work, resume_from=folder, progress=False)


def test_a_full_disk_during_a_checkpoint_is_a_typed_error(stopped_run, tmp_path, monkeypatch):
    recipe, parts, _ = stopped_run

    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0; file write failed")

    monkeypatch.setattr(checkpointing.torch, "save", full_disk)
    with pytest.raises(CheckpointWriteError, match=r"MB free in .*"):
        train(recipe, tmp_path / "work", stop_at=2, progress=False)
    assert not list((tmp_path / "work" / "checkpoints").glob("step_*"))


def test_convert_onto_a_full_disk_is_a_typed_error(tmp_path, monkeypatch, capsys):
    import safetensors.torch

    from beitv2_zoo import get_model
    from beitv2_zoo.cli import main

    torch.save(get_model("test_beit_tiny").state_dict(), tmp_path / "tiny.pth")

    def full_disk(*args, **kwargs):
        raise safetensors.SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    assert main(["convert", str(tmp_path / "tiny.pth"), str(tmp_path / "out.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err and "MB free in" in err
    assert not (tmp_path / "out.safetensors").exists()
