"""Smoke test of the benchmark on the tiny model (no timing is asserted)."""

import json

from beitv2_zoo.bench import format_report, run_benchmark
from beitv2_zoo.bench.machine import flops_per_image
from beitv2_zoo.cli import main


def test_benchmark_runs_and_reports_every_field():
    result = run_benchmark("test_beit_tiny", batch_sizes=(2,), repeats=1, peers=("timm",), cold_repeats=1, log=lambda m: None)
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
    assert "beitv2_zoo fp32" in format_report(result)
    json.dumps(result)  # serialisable


def test_flop_count_matches_the_published_macs():
    base = dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, num_classes=1000)
    assert abs(flops_per_image(base) / 2 - 17_581_219_584) / 17_581_219_584 < 0.002  # mmpretrain's metafile MACs


def test_bench_command_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", "test_beit_tiny", "--batch-sizes", "1", "--repeats", "1", "--precisions", "fp32",
                 "--peers", "--cold-repeats", "0", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["model"] == "test_beit_tiny"
    assert "img/s" in capsys.readouterr().out
