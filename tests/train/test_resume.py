"""Kill-and-resume equals an uninterrupted run, bit for bit; checkpoints are atomic and pruned."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from beitv2_zoo.checkpoint.safetensors_io import load_mmap
from beitv2_zoo.train.checkpointing import list_checkpoints, load_training_state
from beitv2_zoo.train.config import apply_overrides
from beitv2_zoo.train.engine import train
from beitv2_zoo.train.errors import NonFiniteLossError, ResumeError
from beitv2_zoo.train.recipes import get_recipe

from .conftest import TINY_FINETUNE, TINY_MIM, TINY_VQKD, run

# Every source of randomness on: Mixup/CutMix, drop path, RandAugment, erasing, EMA, worker processes.
NOISY = dict(max_steps=8, mixup=0.8, cutmix=1.0, drop_path_rate=0.1, ema_decay=0.9, save_interval=3, keep_last=2)


def _assert_same_files(a, b, names=("model.safetensors", "ema.safetensors")):
    for name in names:
        left, right = load_mmap(a / name), load_mmap(b / name)
        assert left.keys() == right.keys()
        for key in left:
            assert torch.equal(left[key], right[key]), f"{name}:{key} differs"


def test_stop_and_resume_is_bit_for_bit(image_folder, tmp_path, mim_run):
    overrides = {**NOISY, "pretrained": str(mim_run / "model.safetensors"), "num_workers": 1}
    whole = run(TINY_FINETUNE, image_folder, tmp_path / "whole", **overrides)
    recipe = apply_overrides(get_recipe(TINY_FINETUNE), {"data_root": str(image_folder), **overrides})
    train(recipe, tmp_path / "parts", stop_at=4, progress=False)
    assert not (tmp_path / "parts" / "model.safetensors").exists()
    assert [p.name for p in list_checkpoints(tmp_path / "parts")] == ["step_00000003", "step_00000004"]
    (tmp_path / "parts" / "checkpoints" / ".step_00000005.dead.tmp").mkdir()  # a crash mid-write leaves this
    train(recipe, tmp_path / "parts", resume=True, progress=False)
    _assert_same_files(whole, tmp_path / "parts")
    assert [p.name for p in list_checkpoints(tmp_path / "parts")] == ["step_00000006", "step_00000008"]  # keep_last=2
    assert not list((tmp_path / "parts" / "checkpoints").glob(".*.tmp"))
    state = load_training_state(list_checkpoints(tmp_path / "parts")[-1])  # weights_only=True
    assert state.step == 8 and state.global_batch == 8 and len(state.rng) == 1


def test_mim_resume_is_bit_for_bit(image_folder, tmp_path, vqkd_run):
    overrides = {"max_steps": 6, "drop_path_rate": 0.1, "tokenizer": str(vqkd_run / "model.safetensors")}
    whole = run(TINY_MIM, image_folder, tmp_path / "whole", **overrides)
    recipe = apply_overrides(get_recipe(TINY_MIM), {"data_root": str(image_folder), **overrides})
    train(recipe, tmp_path / "parts", stop_at=2, progress=False)
    train(recipe, tmp_path / "parts", resume=True, progress=False)
    _assert_same_files(whole, tmp_path / "parts", names=("model.safetensors",))


def test_killed_process_resumes_to_the_same_weights(image_folder, tmp_path, mim_run):
    args = ["train", TINY_FINETUNE, "--data", str(image_folder), "--no-progress", "max_steps=60",
            "save_interval=5", f"pretrained={mim_run / 'model.safetensors'}", "drop_path_rate=0.1", "mixup=0.8"]
    whole = tmp_path / "whole"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "beitv2_zoo", *args, "--work-dir", str(whole)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "beitv2_zoo", *args, "--work-dir", str(killed)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list_checkpoints(killed) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "model.safetensors").exists()
    resumed = subprocess.run([sys.executable, "-m", "beitv2_zoo", *args, "--work-dir", str(killed), "--resume"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stderr
    _assert_same_files(whole, killed, names=("model.safetensors",))


def test_resume_refuses_another_global_batch(image_folder, tmp_path):
    run(TINY_FINETUNE, image_folder, tmp_path / "run", max_steps=2)
    recipe = apply_overrides(get_recipe(TINY_FINETUNE), {"data_root": str(image_folder), "max_steps": 2,
                                                                 "batch_size": 4})
    with pytest.raises(ResumeError, match="global batch of 8"):
        train(recipe, tmp_path / "run", resume=True, progress=False)


def test_non_finite_loss_stops_with_a_clear_message(image_folder, tmp_path):
    recipe = apply_overrides(get_recipe(TINY_FINETUNE), {"data_root": str(image_folder), "max_steps": 4,
                                                                 "lr": 1e30, "save_interval": 1})
    with pytest.raises(NonFiniteLossError, match=r"loss is not finite .* last good weights are in"):
        train(recipe, tmp_path / "nan", progress=False)


def test_vqkd_resume_across_a_codebook_restart_is_bit_for_bit(image_folder, tmp_path):
    overrides = {"max_steps": 20}  # 8 steps per epoch: restarts happen at steps 9 and 17
    whole = run(TINY_VQKD, image_folder, tmp_path / "whole", **overrides)
    recipe = apply_overrides(get_recipe(TINY_VQKD), {"data_root": str(image_folder), **overrides})
    train(recipe, tmp_path / "parts", stop_at=16, progress=False)  # stop exactly at an epoch's end
    train(recipe, tmp_path / "parts", resume=True, progress=False)
    _assert_same_files(whole, tmp_path / "parts", names=("model.safetensors",))
    rows = [line for line in (whole / "log.jsonl").read_text().splitlines() if '"restarted_codes"' in line]
    assert any('"restarted_codes": 0' not in row for row in rows)  # the run did restart codes
