"""Smoke test of the benchmark on the tiny models (no timing is asserted)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

from beitv2_zoo import get_model
from beitv2_zoo.bench import SECTIONS, format_report, run_benchmark
from beitv2_zoo.bench.folder import folder_throughput, write_photo_folder
from beitv2_zoo.bench.machine import flops_per_image, nominal_bf16_tflops
from beitv2_zoo.bench.mim_step import RECIPE_NAME, mask_generator, mim_step_throughput, step_lr, training_flops
from beitv2_zoo.cli import main
from beitv2_zoo.cli import bench as bench_command
from beitv2_zoo.models import BeitV2Pretrain
from beitv2_zoo.models.mim import MIM_ARCHITECTURES
from beitv2_zoo.weights.pretraining import TOKENIZER_GMACS


def test_benchmark_runs_and_reports_every_field():
    result = run_benchmark("test_beit_tiny", batch_sizes=(2,), repeats=1, peers=("timm",), cold_repeats=1, log=lambda m: None,
                           sections=SECTIONS, folder_images=4, folder_batch_sizes=(2,),
                           mim_architecture="test_beitv2_mim_tiny", mim_batch_size=2, mim_steps=1)
    labels = {(row["library"], row["precision"]) for row in result["throughput"]}
    assert labels == {("beitv2_zoo", "fp32"), ("beitv2_zoo", "bf16"), ("timm", "fp32"), ("timm", "bf16")}
    ours = next(r for r in result["throughput"] if r["library"] == "beitv2_zoo" and r["precision"] == "fp32")
    assert ours["images_per_s"] > 0 and set(ours["ratio_to"]) == {"timm"}
    numerics = result["numerics_vs_beitv2_zoo_fp32"]
    assert numerics["timm fp32"]["max_abs_diff"] <= 1e-4  # same weights, same function
    assert numerics["beitv2_zoo bf16"]["min_cosine"] >= 0.99
    cold = result["cold_start"]
    assert {"beitv2_zoo", "timm", "import beitv2_zoo", "import torch"} <= set(cold)
    assert cold["import beitv2_zoo"]["peak_rss_mb"] < cold["import torch"]["peak_rss_mb"]
    (folder,) = result["folder"]
    assert (folder["images"], folder["batch"], folder["workers_chosen_by"]) == (4, 2, "auto")
    assert folder["folder_images_per_s"] > 0 and folder["model_images_per_s"] > 0 and folder["ratio"] > 0
    mim = result["mim_step"]
    assert [row["attention"] for row in mim["rows"]] == ["sdpa", "eager"]
    assert all(row["images_per_s"] > 0 and row["of_gemm_peak"] > 0 and row["mfu"] is None for row in mim["rows"])
    assert mim["gflop_per_image"]["training"] > 0 and max(mim["logits_max_abs_diff"].values()) <= 1e-5
    report = format_report(result)
    assert "beitv2_zoo fp32" in report and "folder img/s" in report and "MIM pretraining step" in report
    json.dumps(result)  # serialisable


def test_photo_folder_looks_like_imagenet_and_holds_different_files(tmp_path):
    paths = write_photo_folder(tmp_path, count=6)
    assert len(paths) == 6 and len({p.read_bytes() for p in paths}) == 6
    for path in paths:
        with Image.open(path) as photo:
            assert photo.format == "JPEG" and 400 <= min(photo.size) <= 500 and max(photo.size) <= 750


def test_folder_measurement_uses_the_same_batches(tmp_path):
    write_photo_folder(tmp_path, count=5)
    model = get_model("test_beit_tiny")
    result = folder_throughput(model, tmp_path, batch_size=2, repeats=1, num_workers=1, log=lambda m: None)
    assert result["images"] == 5 and result["batch"] == 2 and result["precision"] == "fp32" and result["workers"] == 1
    assert len(result["runs"]["folder_images_per_s"]) == len(result["runs"]["model_images_per_s"]) == 1
    assert result["preprocess_ms_per_image"] > 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        folder_throughput(model, tmp_path / "empty", log=lambda m: None)


def test_mim_step_reports_a_refusing_backend_and_rejects_unknown_variants():
    result = mim_step_throughput("test_beitv2_mim_tiny", batch_size=2, steps=1, repeats=1,
                                 attentions=("sdpa", "sdpa:efficient"), log=lambda m: None)
    rows = {row["attention"]: row for row in result["rows"]}
    assert rows["sdpa"]["speed_vs_sdpa"] == 1.0
    assert "error" in rows["sdpa:efficient"]  # no memory-efficient kernel on CPU
    with pytest.raises(ValueError, match="unknown attention variant"):
        mim_step_throughput("test_beitv2_mim_tiny", attentions=("flash",), log=lambda m: None)


def test_mim_step_takes_its_settings_from_the_published_recipe():
    from beitv2_zoo.train.recipes import get_recipe

    recipe = get_recipe(RECIPE_NAME)
    masks = mask_generator(recipe, (14, 14), seed=0)
    assert (masks.num_masking_patches, masks.min_num_patches, masks.max_num_patches) == (75, 16, 75)
    assert mask_generator(recipe, (7, 7), seed=0).num_masking_patches == 19  # 75/196 of the patches, rounded
    assert step_lr(recipe, recipe.base_batch_size) == recipe.lr and step_lr(recipe, 1024) == recipe.lr / 2
    result = mim_step_throughput("test_beitv2_mim_tiny", batch_size=2, steps=1, repeats=1, attentions=("eager",),
                                 log=lambda m: None)
    assert result["recipe"] == RECIPE_NAME and result["masked_patches"] == 75
    assert "betas 0.9/0.98" in result["optimizer"] and "wd 0.05" in result["optimizer"]
    with pytest.raises(ValueError, match="needs a MIM recipe"):
        mim_step_throughput("test_beitv2_mim_tiny", recipe="vqkd_encoder_base_decoder_3x768x12_clip", log=lambda m: None)


def test_mim_training_flops_follow_the_stated_formula():
    with torch.device("meta"):
        model = BeitV2Pretrain(**MIM_ARCHITECTURES["beitv2_mim_base_patch16"])
    flops = training_flops(model, masked=75)
    assert abs(flops["tokenizer_forward"] / 2e9 - TOKENIZER_GMACS) / TOKENIZER_GMACS < 0.002  # the registry's count
    base = dict(img_size=224, patch_size=16, embed_dim=768, depth=14, mlp_ratio=4.0, num_classes=0)
    assert flops["student_forward"] == flops_per_image(base) + 2 * 2 * 75 * 768 * 8192  # 12 + 2 blocks, 2 LM heads
    assert flops["training"] == 3 * flops["student_forward"] + flops["tokenizer_forward"]


def test_nominal_peaks_of_known_cards():
    assert nominal_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert nominal_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert nominal_bf16_tflops("Some Future Card") is None


def test_cli_sections_match_the_benchmark():
    assert bench_command.SECTIONS == SECTIONS


def test_flop_count_matches_the_published_macs():
    base = dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, num_classes=1000)
    assert abs(flops_per_image(base) / 2 - 17_581_219_584) / 17_581_219_584 < 0.002  # mmpretrain's metafile MACs


def test_bench_command_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", "test_beit_tiny", "--batch-sizes", "1", "--repeats", "1", "--precisions", "fp32",
                 "--peers", "--cold-repeats", "0", "--folder-images", "0", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["model"] == "test_beit_tiny"
    assert "img/s" in capsys.readouterr().out


def test_bench_command_runs_only_the_sections_asked_for(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", "test_beit_tiny", "--only", "folder", "mim-step", "--repeats", "1",
                 "--folder-images", "3", "--folder-batch-sizes", "2", "--mim-model", "test_beitv2_mim_tiny",
                 "--mim-batch-size", "2", "--mim-attentions", "eager", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {"folder", "mim_step"} <= set(result) and not {"throughput", "cold_start"} & set(result)
    assert [row["attention"] for row in result["mim_step"]["rows"]] == ["eager"]


def test_prepared_gpu_script_dry_runs_on_cpu(tmp_path):
    """examples/gpu_bench.sh with BENCH_DEVICE=cpu BENCH_SMALL=1: the same four runs on the tiny models."""
    script = Path(__file__).resolve().parents[1] / "examples" / "gpu_bench.sh"
    env = {**os.environ, "BENCH_DEVICE": "cpu", "BENCH_SMALL": "1"}
    result = subprocess.run(["bash", str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in ("throughput", "mim", "folder", "mim_kernels"):
        assert json.loads((tmp_path / f"bench_gpu_{name}.json").read_text())["device"] == "cpu"
