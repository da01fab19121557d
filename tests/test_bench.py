"""Smoke test of the benchmark on the tiny models (no timing is asserted)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

from beitv2_zoo import get_model
from beitv2_zoo.bench import SECTIONS, _add_ratios, _settings, _throughput, format_report, run_benchmark
from beitv2_zoo.bench import runners as bench_runners
from beitv2_zoo.bench.folder import folder_throughput, write_photo_folder
from beitv2_zoo.bench.machine import ISA_FLAGS, cpu_isa, flops_per_image, gemm_ceiling, model_gemm_shapes, nominal_bf16_tflops
from beitv2_zoo.bench.runners import Runner, build_runners
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
    labels = {(row["library"], row["precision"], row["how"]) for row in result["throughput"]}
    assert labels == {("beitv2_zoo", "fp32", "fp32"), ("beitv2_zoo", "bf16", "bf16 weights"), ("timm", "fp32", "fp32"),
                      ("timm", "bf16", "bf16 weights"), ("timm", "bf16", "bf16 autocast")}
    ours = next(r for r in result["throughput"] if r["library"] == "beitv2_zoo" and r["precision"] == "fp32")
    assert ours["images_per_s"] > 0 and set(ours["ratio_to"]) == {"timm"} and ours["ms_per_image"] > 0
    numerics = result["numerics_vs_beitv2_zoo_fp32"]
    assert numerics["timm fp32"]["max_abs_diff"] <= 1e-4  # same weights, same function
    assert numerics["beitv2_zoo bf16"]["min_cosine"] >= 0.99 and numerics["timm bf16 weights"]["min_cosine"] >= 0.99
    assert {"gemm_ceiling", "batch1_latency", "compile_s"} <= set(result) and result["compile_s"] == {}
    assert set(result["machine"]["cpu_isa"]) >= {"amx_bf16", "amx_int8", "avx512_bf16", "avx512f"}
    cold = result["cold_start"]
    assert {"beitv2_zoo", "timm", "import beitv2_zoo", "import torch"} <= set(cold)
    assert cold["import beitv2_zoo"]["peak_rss_mb"] < cold["import torch"]["peak_rss_mb"]
    assert [row["precision"] for row in result["folder"]] == ["fp32", "bf16"]
    for folder in result["folder"]:
        assert (folder["images"], folder["batch"], folder["workers_chosen_by"]) == (4, 2, "auto")
        assert folder["folder_images_per_s"] > 0 and folder["model_images_per_s"] > 0 and folder["ratio"] > 0
    mim = result["mim_step"]
    assert [row["attention"] for row in mim["rows"]] == ["sdpa", "eager"]
    assert all(row["images_per_s"] > 0 and row["of_gemm_peak"] > 0 and row["mfu"] is None for row in mim["rows"])
    assert mim["gflop_per_image"]["training"] > 0 and max(mim["logits_max_abs_diff"].values()) <= 1e-5
    report = format_report(result)
    assert "beitv2_zoo fp32" in report and "folder img/s" in report and "MIM pretraining step" in report
    assert "GEMM ceiling" in report and "batch-1 latency" in report and "avx512_bf16" in report
    json.dumps(result)  # serialisable


@pytest.mark.slow  # compiles the tiny timm model twice with inductor (about half a minute on one thread)
def test_every_peer_runs_or_is_left_out_with_its_reason():
    peers = ("timm", "timm-inductor", "onnxruntime", "openvino", "nonesuch")
    result = run_benchmark("test_beit_tiny", batch_sizes=(1,), repeats=1, peers=peers, log=lambda m: None,
                           sections=("throughput",))
    hows = {(row["library"], row["precision"]): [] for row in result["throughput"]}
    for row in result["throughput"]:
        hows[row["library"], row["precision"]].append(row["how"])
    for peer in peers:
        ran = any(library == peer for library, _ in hows)
        noted = [note for note in result["notes"] if note.startswith(f"{peer}:")]
        assert ran != bool(noted), (peer, noted)  # either it ran or it says why not
    assert any("nonesuch: unknown peer" in note for note in result["notes"])
    if ("timm", "bf16") in hows:
        assert sorted(hows["timm", "bf16"]) == ["bf16 autocast", "bf16 weights"]
    if ("timm-inductor", "fp32") in hows:
        compiled = [row for row in result["throughput"] if row["library"] == "timm-inductor"]
        assert all(row["compiled"] and row["first_call_s"] > 0 for row in compiled)
        assert set(result["compile_s"]) == {f"{row['label']} batch 1" for row in compiled}
        assert result["numerics_vs_beitv2_zoo_fp32"]["timm-inductor fp32"]["max_abs_diff"] <= 1e-4
    if ("openvino", "fp32") in hows:
        assert ("openvino", "bf16") in hows and hows["openvino", "fp32"] == ["f32 hint"]
        assert result["numerics_vs_beitv2_zoo_fp32"]["openvino fp32"]["max_abs_diff"] <= 1e-4
        assert result["numerics_vs_beitv2_zoo_fp32"]["openvino bf16"]["min_cosine"] >= 0.99
    ours = next(r for r in result["throughput"] if r["label"] == "beitv2_zoo bf16")
    assert set(ours["ratio_to"]) == set(ours["peer_how"]) == {lib for lib, precision in hows if precision == "bf16"} - {"beitv2_zoo"}
    assert set(result["batch1_latency"]) == {row["label"] for row in result["throughput"]}
    json.dumps(result)


def test_inductor_is_left_out_with_a_reason_without_a_compiler(monkeypatch):
    monkeypatch.setattr(bench_runners, "cxx_compiler", lambda: None)
    model = get_model("test_beit_tiny")
    runners, notes = build_runners(model, _settings("test_beit_tiny"), "test_beit_tiny", ("timm-inductor", "nonesuch"))
    assert [r.library for r in runners] == ["beitv2_zoo", "beitv2_zoo"]
    assert any(note.startswith("timm-inductor: skipped: no C++ compiler") for note in notes)
    assert any(note.startswith("nonesuch: unknown peer") for note in notes)


def test_a_runner_whose_first_call_fails_is_left_out_with_a_note():
    def broken(x):
        raise RuntimeError("compiler exploded\nmore detail")

    runners = [Runner("beitv2_zoo", "fp32", "fp32", lambda x: x.mean((2, 3))),
               Runner("timm-inductor", "fp32", "fp32, inductor + freezing", broken, compiled=True)]
    notes: list[str] = []
    rows = _throughput(runners, (1, 2), 1, 8, torch.device("cpu"), lambda m: None, notes)
    assert [(row["label"], row["batch"]) for row in rows] == [("beitv2_zoo fp32", 1), ("beitv2_zoo fp32", 2)]
    assert notes == ["timm-inductor fp32 (fp32, inductor + freezing): left out, its first call at batch 1 failed: "
                     "RuntimeError: compiler exploded"]


def test_ratios_take_each_peers_fastest_variant_and_fractions_the_ceiling():
    def row(library, how, speed, precision="bf16"):
        return {"library": library, "label": f"{library} {how}", "precision": precision, "how": how, "batch": 8,
                "images_per_s": speed}

    rows = [row("beitv2_zoo", "bf16 weights", 30.0), row("timm", "bf16 weights", 20.0), row("timm", "bf16 autocast", 10.0),
            row("timm", "fp32", 100.0, "fp32")]
    ceilings = [{"batch": 8, "rows": 1576, "bf16": {"gflops": 2000.0}, "fp32": {"gflops": 200.0}}]
    _add_ratios(rows, 35e9, {"fp32": 400.0, "bf16": 1000.0}, ceilings)
    ours = rows[0]
    assert ours["ratio_to"] == {"timm": 1.5} and ours["peer_how"] == {"timm": "bf16 weights"}
    assert ours["gflops"] == pytest.approx(35 * 30) and ours["ceiling_gflops"] == 2000.0
    assert ours["ceiling_fraction"] == pytest.approx(35 * 30 / 2000) and ours["peak_fraction"] == pytest.approx(35 * 30 / 1000)
    assert rows[3]["ceiling_fraction"] == pytest.approx(35 * 100 / 200)


def test_gemm_ceiling_is_measured_on_the_models_own_shapes():
    settings = dict(img_size=224, patch_size=16, embed_dim=64, mlp_ratio=4.0)
    assert model_gemm_shapes(settings, 2) == {"qkv": (394, 64, 192), "proj": (394, 64, 64), "fc1": (394, 64, 256),
                                              "fc2": (394, 256, 64)}
    (entry,) = gemm_ceiling(settings, (2,), repeats=1)
    assert (entry["batch"], entry["rows"]) == (2, 394)
    for precision in ("fp32", "bf16"):
        shapes = entry[precision]["shapes"]
        assert set(shapes) == {"qkv", "proj", "fc1", "fc2"}
        assert all(s["gflops"] > 0 and s["gflops"] == max(s["paths"].values()) and "addmm" in s["paths"] for s in shapes.values())
        rates = [s["gflops"] for s in shapes.values()]
        assert min(rates) <= entry[precision]["gflops"] <= max(rates)  # a weighted harmonic mean


def test_cpu_isa_names_every_flag():
    isa = cpu_isa()
    assert set(isa) == set(ISA_FLAGS) and all(v in (True, False, None) for v in isa.values())


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
    bf16 = folder_throughput(model.to(torch.bfloat16), tmp_path, batch_size=2, repeats=1, num_workers=1, log=lambda m: None)
    assert bf16["precision"] == "bf16" and bf16["folder_images_per_s"] > 0 and bf16["ratio"] > 0
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


def test_cli_sections_and_peers_match_the_benchmark():
    assert bench_command.SECTIONS == SECTIONS
    assert bench_command.PEERS == bench_runners.DEFAULT_PEERS and set(bench_runners.DEFAULT_PEERS) == set(bench_runners.PEER_MODULES)


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
