"""A benchmark anyone can rerun: beitv2_zoo against timm (and mmpretrain, onnxruntime) on the same weights.

    python -m beitv2_zoo.bench                      # full run, about 10 minutes on 2 cores
    beitv2-zoo bench --batch-sizes 8 --repeats 5 --json bench.json

Everything is measured in one process run, interleaved (each repeat times every
implementation once, in turn) so that a noisy machine affects all alike; medians are
reported with the ratio of beitv2_zoo to each peer at the same precision.
"""

import importlib.util
import inspect
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ..convert import canonical_to_mmpretrain
from ..factory import get_model
from ..models import ARCHITECTURES
from ..registry import get_record
from . import cold_start, machine
from .runners import Runner, build_runners

DEFAULT_MODEL = "beit-base-p16_beitv2-in21k-pre_3rdparty_in1k"
EXAMPLE_IMAGE = Path(__file__).resolve().parents[2] / "examples" / "images" / "chelsea.jpg"


def _settings(name: str) -> dict:
    """Every constructor setting of the model ``name`` builds, defaults included (peers need them spelled out)."""
    record = get_record(name)
    architecture = ARCHITECTURES[record.architecture]
    defaults = {k: p.default for k, p in inspect.signature(architecture.model_class).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return {**defaults, **architecture.settings, **record.model_kwargs,
            "num_classes": record.num_classes, "img_size": record.preprocessing.crop_size}


def _random_weights(name: str, folder: Path, seed: int) -> tuple[Path, Path]:
    """The same random weights as a canonical safetensors file and an mmpretrain-layout .pth."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = get_model(name)
    torch.nn.init.normal_(model.head.weight, std=0.02)  # a head that separates classes, unlike the 1e-3 init scale
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    canonical, mm = folder / "weights.safetensors", folder / "weights_mmpretrain.pth"
    save_file(state, canonical)
    torch.save({"state_dict": canonical_to_mmpretrain(state)}, mm)
    return canonical, mm


def _numerics(runners: list[Runner], size: int) -> dict:
    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = runners[0].forward(x).double()
        report = {}
        for runner in runners:
            out = runner.forward(x).double()
            cosine = torch.nn.functional.cosine_similarity(out, reference, dim=-1).min().item()
            agree = (out.argmax(-1) == reference.argmax(-1)).double().mean().item()
            report[runner.label] = {"max_abs_diff": (out - reference).abs().max().item(), "min_cosine": cosine,
                                    "top1_agreement": agree}
    return report


def _throughput(runners: list[Runner], batch_sizes: tuple[int, ...], repeats: int, size: int, log) -> list[dict]:
    rows = []
    for batch in batch_sizes:
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
        times: dict[str, list[float]] = {r.label: [] for r in runners}
        with torch.inference_mode():
            for runner in runners:  # warm-up: first calls build kernels and caches
                runner.forward(x)
            for repeat in range(repeats):
                for runner in runners:
                    start = time.perf_counter()
                    runner.forward(x)
                    times[runner.label].append(time.perf_counter() - start)
                log(f"  batch {batch}: repeat {repeat + 1}/{repeats}")
        for runner in runners:
            runs = [batch / t for t in times[runner.label]]
            rows.append({"library": runner.library, "precision": runner.precision, "how": runner.how, "batch": batch,
                         "images_per_s": statistics.median(runs), "runs": runs})
    return rows


def _add_ratios(rows: list[dict], flops: float, peaks: dict[str, float]) -> None:
    for row in rows:
        row["gflops"] = flops * row["images_per_s"] / 1e9
        row["peak_fraction"] = row["gflops"] / peaks[row["precision"]]
        if row["library"] != "beitv2_zoo":
            continue
        row["ratio_to"] = {
            peer["library"]: row["images_per_s"] / peer["images_per_s"]
            for peer in rows
            if peer["library"] != "beitv2_zoo" and peer["batch"] == row["batch"] and peer["precision"] == row["precision"]
        }


def _cold_starts(name: str, weights: Path, mm_weights: Path, settings: dict, repeats: int, log) -> dict:
    timm_keys = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "use_abs_pos_emb",
                 "use_rel_pos_bias", "use_shared_rel_pos_bias", "init_values", "num_classes", "global_pool")
    fields = dict(name=name, weights=str(weights), mm_weights=str(mm_weights), image=str(EXAMPLE_IMAGE),
                  timm_kwargs={k: settings[k] for k in timm_keys if k in settings})
    scripts = {"beitv2_zoo": cold_start.OURS.format(**fields)}
    if importlib.util.find_spec("timm"):
        scripts["timm"] = cold_start.TIMM.format(**fields)
    if importlib.util.find_spec("mmpretrain") and name.startswith("beit-base-p16_beit"):
        scripts["mmpretrain"] = cold_start.MMPRETRAIN.format(**fields)
    scripts.update(cold_start.IMPORT_ONLY)
    runs: dict[str, list[dict]] = {label: [] for label in scripts}
    for repeat in range(repeats):
        for label, code in scripts.items():
            runs[label].append(cold_start.run_script(code))
        log(f"  cold start: repeat {repeat + 1}/{repeats}")
    result = {label: {"seconds": statistics.median(r["seconds"] for r in rs),
                      "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
                      "runs_seconds": [r["seconds"] for r in rs]} for label, rs in runs.items()}
    ours = result["beitv2_zoo"]
    ours["ratio_to"] = {label: {"seconds": ours["seconds"] / r["seconds"], "peak_rss": ours["peak_rss_mb"] / r["peak_rss_mb"]}
                        for label, r in result.items() if label in ("timm", "mmpretrain")}
    return result


def run_benchmark(
    name: str = DEFAULT_MODEL,
    batch_sizes: tuple[int, ...] = (1, 8, 32),
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    repeats: int = 5,
    peers: tuple[str, ...] = ("timm", "mmpretrain", "onnxruntime"),
    cold_repeats: int = 5,
    seed: int = 0,
    log=print,
) -> dict:
    """Run every measurement and return them as one JSON-serialisable dict."""
    settings = _settings(name)
    folder = Path(tempfile.mkdtemp(prefix="beitv2_zoo_bench_"))
    weights, mm_weights = _random_weights(name, folder, seed)
    model = get_model(name, pretrained=weights)
    runners, notes = build_runners(model, settings, name, peers)
    runners = [r for r in runners if r.precision in precisions]
    log(f"benchmarking {name}: {', '.join(r.label for r in runners)}")
    peaks = machine.gemm_peak()
    flops = machine.flops_per_image(settings)
    rows = _throughput(runners, batch_sizes, repeats, settings["img_size"], log)
    _add_ratios(rows, flops, peaks)
    result = {
        "model": name, "machine": machine.describe(), "date": time.strftime("%Y-%m-%d"),
        "gemm_peak_gflops": peaks, "gflop_per_image": flops / 1e9, "repeats": repeats,
        "numerics_vs_beitv2_zoo_fp32": _numerics(runners, settings["img_size"]), "throughput": rows, "notes": notes,
    }
    if cold_repeats:
        result["cold_start"] = _cold_starts(name, weights, mm_weights, settings, cold_repeats, log)
    return result


def format_report(result: dict) -> str:
    """A readable table of :func:`run_benchmark`'s result."""
    lines = [f"model {result['model']} on {result['machine']['cpu']} ({result['machine']['torch_threads']} threads), "
             f"{result['gflop_per_image']:.2f} GFLOP/image; GEMM peak fp32 {result['gemm_peak_gflops']['fp32']:.0f}, "
             f"bf16 {result['gemm_peak_gflops']['bf16']:.0f} GFLOP/s; medians of {result['repeats']}", ""]
    lines.append(f"{'implementation':<28}{'batch':>6}{'img/s':>9}{'GFLOP/s':>9}{'of peak':>9}  ratio of beitv2_zoo")
    for row in result["throughput"]:
        ratios = ", ".join(f"{k} {v:.2f}x" for k, v in row.get("ratio_to", {}).items())
        label = f"{row['library']} {row['precision']} ({row['how']})" if row["how"] != row["precision"] else f"{row['library']} {row['precision']}"
        lines.append(f"{label:<28}{row['batch']:>6}{row['images_per_s']:>9.2f}{row['gflops']:>9.0f}"
                     f"{row['peak_fraction']:>9.0%}  {ratios}")
    lines += ["", "numerics against beitv2_zoo fp32 (4 random images):"]
    for label, n in result["numerics_vs_beitv2_zoo_fp32"].items():
        lines.append(f"  {label:<24} max abs diff {n['max_abs_diff']:.2e}  min cosine {n['min_cosine']:.6f}  "
                     f"top-1 agreement {n['top1_agreement']:.0%}")
    if "cold_start" in result:
        lines += ["", "cold start (new process → first prediction, weights on disk):"]
        for label, r in result["cold_start"].items():
            ratio = ", ".join(f"{k}: {v['seconds']:.2f}x time, {v['peak_rss']:.2f}x RSS" for k, v in r.get("ratio_to", {}).items())
            lines.append(f"  {label:<18}{r['seconds']:>7.2f} s {r['peak_rss_mb']:>8.0f} MB peak RSS  {ratio}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)
