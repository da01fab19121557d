"""Two gloo processes under torchrun give the same parameters as one process with the same global batch.

Tolerance: ``atol = 1e-5`` on every parameter after 4 AdamW steps (float32 sums taken in another
order give ~1e-7 per step; a wrong gradient average or data split gives > 1e-2). Mixup, drop
path and dropout are off: each rank draws its own Mixup λ, as timm does, so those runs differ by design.
"""

import json
import os
import subprocess
import sys

import pytest

from beitv2_zoo.checkpoint.safetensors_io import load_mmap

from .conftest import TINY_FINETUNE, TINY_MIM, run


@pytest.mark.parametrize("recipe, extra", [
    (TINY_FINETUNE, {}),
    (TINY_MIM, {"clip_grad": 0.5}),
], ids=["finetune", "mim"])
def test_two_processes_equal_one(recipe, extra, image_folder, tmp_path, mim_run, vqkd_run):
    start = {TINY_FINETUNE: f"pretrained={mim_run / 'model.safetensors'}",
             TINY_MIM: f"tokenizer={vqkd_run / 'model.safetensors'}"}[recipe]
    overrides = [start, "max_steps=4", "batch_size=4", *(f"{k}={v}" for k, v in extra.items())]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "beitv2_zoo", "train", recipe, "--data", str(image_folder), "--no-progress", "--device", "cpu",
               "--work-dir", str(tmp_path / "two"), *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    values = dict(o.split("=", 1) for o in overrides)
    values["batch_size"] = "8"  # one process, the same global batch
    one = run(recipe, image_folder, tmp_path / "one", **values)
    start_row = json.loads((tmp_path / "two" / "log.jsonl").read_text().splitlines()[0])
    assert start_row["run"]["world_size"] == 2 and start_row["run"]["global_batch"] == 8
    left, right = load_mmap(tmp_path / "two" / "model.safetensors"), load_mmap(one / "model.safetensors")
    assert left.keys() == right.keys()
    worst = max(float((left[k].float() - right[k].float()).abs().max()) for k in left)
    assert worst < 1e-5, worst


def test_test_command_under_torchrun_counts_every_image_once(image_folder, tmp_path, mim_run):
    run_dir = run(TINY_FINETUNE, image_folder, tmp_path / "run", max_steps=2,
                  pretrained=str(mim_run / "model.safetensors"))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "beitv2_zoo",
               "test", str(run_dir), "--data", str(image_folder), "--device", "cpu", "--workers", "0",
               "--batch-size", "5", "--out", str(tmp_path / "two.json")]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    from beitv2_zoo.train.evaluate import run_test

    one = run_test(str(run_dir), str(image_folder), num_workers=0)
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["num_images"] == one["num_images"] == 24  # 24 validation images, split 12 / 12, none twice
    assert two["per_class"] == one["per_class"] and two["top1"] == one["top1"] and two["top5"] == one["top5"]
