"""A benchmark anyone can rerun: beitv2_zoo against the peers a user would pick instead, on the same weights,
and against the machine's own GEMM ceiling.

    python -m beitv2_zoo.bench                      # full run
    beitv2-zoo bench --batch-sizes 8 --repeats 5 --json bench.json
    beitv2-zoo bench --only folder                  # folder inference against the bare model
    beitv2-zoo bench --peers timm openvino          # some peers only
    beitv2-zoo bench --device cuda --batch-sizes 256 --mim-step   # on a GPU (examples/gpu_bench.sh)

Sections (``--only``): ``throughput`` (images/s, batch-1 latency and numerics against the peers,
see :mod:`.runners`: timm eager in fp32, with bf16 weights and under bf16 autocast, timm under
``torch.compile`` with inductor's freezing, mmpretrain, onnxruntime, OpenVINO with its f32 and
bf16 precision hints, each when installed), ``folder`` (``predict DIR`` end to end against the
model-only forward, fp32 and bf16, see :mod:`.folder`), ``cold-start`` (see :mod:`.cold_start`)
and ``mim-step`` (a BEiT v2 pretraining step with fused against eager attention, see
:mod:`.mim_step`; not in the default set). Everything is measured in one process run,
interleaved (each repeat times every implementation once, in turn) so that a noisy machine
affects all alike; medians are reported with the ratio of beitv2_zoo to each peer's fastest
variant at the same batch and precision (for timm bf16, the faster of bf16 weights and
autocast). A compiled peer's first call at each batch size (its compilation) is timed and
reported apart from its steady state.

The throughput section first measures the GEMM ceiling of the model's own linear layers
(qkv, proj, fc1, fc2 at batch × tokens rows) per batch size and dtype, through every matmul path
the build has (BLAS ``addmm``, oneDNN, oneDNN and MKL with prepacked weights; see
:func:`.machine.gemm_ceiling`), and reports each throughput as model FLOPs × images/s ÷ that
ceiling. The header names the CPU and its AMX / AVX-512 BF16 support (:func:`.machine.cpu_isa`).
"""

import copy
import importlib.util
import inspect
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..checkpoint.keymaps import canonical_to_mmpretrain
from ..api import get_model
from ..models import ARCHITECTURES
from ..weights import get_record
from . import cold_start, machine
from .folder import folder_throughput, write_photo_folder
from .mim_step import DEFAULT_ATTENTIONS, mim_step_throughput
from .runners import DEFAULT_PEERS, Runner, build_runners

DEFAULT_MODEL = "beit-base-p16_beitv2-in21k-pre_3rdparty_in1k"
EXAMPLE_IMAGE = Path(__file__).resolve().parents[2] / "examples" / "images" / "chelsea.jpg"
SECTIONS = ("throughput", "folder", "cold-start", "mim-step")
DEFAULT_SECTIONS = ("throughput", "folder", "cold-start")


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


def _numerics(runners: list[Runner], size: int, device: torch.device, batch: int) -> dict:
    """Each runner's logits against the first's (ours, fp32) on the same random images: at least 4, fed in
    batches of ``batch`` (a benchmarked size, so that compiled runners need no new graph)."""
    count = -(-4 // batch) * batch
    x = torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.inference_mode():
        outputs = {r.label: torch.cat([r.forward(chunk) for chunk in x.split(batch)]).double() for r in runners}
    reference = outputs[runners[0].label]
    report = {}
    for label, out in outputs.items():
        cosine = torch.nn.functional.cosine_similarity(out, reference, dim=-1).min().item()
        agree = (out.argmax(-1) == reference.argmax(-1)).double().mean().item()
        report[label] = {"max_abs_diff": (out - reference).abs().max().item(), "min_cosine": cosine,
                         "top1_agreement": agree, "images": count}
    return report


def _throughput(runners: list[Runner], batch_sizes: tuple[int, ...], repeats: int, size: int, device: torch.device,
                log, notes: list[str]) -> list[dict]:
    """Images/s of every runner at every batch size, interleaved; a runner whose first call fails is
    dropped from then on, with a note. Each row keeps its first call's time (for a compiled runner,
    the compilation for that batch size) apart from the timed steady state."""
    rows = []
    failed: set[str] = set()
    for batch in batch_sizes:
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch)).to(device)
        running = [r for r in runners if r.label not in failed]
        first: dict[str, float] = {}
        times: dict[str, list[float]] = {r.label: [] for r in running}
        with torch.inference_mode():
            for runner in list(running):  # warm-up: first calls build kernels, caches, compiled graphs
                try:
                    first[runner.label] = _timed(runner.forward, x, device)
                    runner.forward(x)  # a second call: some runtimes finish setting up here
                except Exception as error:  # e.g. a compiler that fails on this machine
                    failed.add(runner.label)
                    running.remove(runner)
                    notes.append(f"{runner.label} ({runner.how}): left out, its first call at batch {batch} failed: "
                                 f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}")
                if runner.compiled and runner.label in first:
                    log(f"  batch {batch}: {runner.label} compiled in {first[runner.label]:.1f} s")
            for repeat in range(repeats):
                for runner in running:
                    times[runner.label].append(_timed(runner.forward, x, device))
                log(f"  batch {batch}: repeat {repeat + 1}/{repeats}")
        for runner in running:
            runs = [batch / t for t in times[runner.label]]
            rows.append({"library": runner.library, "label": runner.label, "precision": runner.precision,
                         "how": runner.how, "batch": batch, "images_per_s": statistics.median(runs),
                         "ms_per_image": 1000 * statistics.median(t / batch for t in times[runner.label]),
                         "first_call_s": first[runner.label], "compiled": runner.compiled, "runs": runs})
    return rows


def _timed(forward, x: torch.Tensor, device: torch.device) -> float:
    machine.synchronize(device)
    start = time.perf_counter()
    forward(x)
    machine.synchronize(device)
    return time.perf_counter() - start


def _add_ratios(rows: list[dict], flops: float, peaks: dict[str, float], ceilings: list[dict]) -> None:
    """Per row: achieved GFLOP/s, its fraction of the GEMM peak and of the model-shape ceiling of its batch
    and precision; for ours, the ratio to each peer library's fastest row at the same batch and
    precision (``ratio_to``) and which of its variants that was (``peer_how``)."""
    ceiling = {(c["batch"], p): c[p]["gflops"] for c in ceilings for p in ("fp32", "bf16") if p in c}
    for row in rows:
        row["gflops"] = flops * row["images_per_s"] / 1e9
        row["peak_fraction"] = row["gflops"] / peaks[row["precision"]]
        row["ceiling_gflops"] = ceiling.get((row["batch"], row["precision"]))
        row["ceiling_fraction"] = row["gflops"] / row["ceiling_gflops"] if row["ceiling_gflops"] else None
    for row in rows:
        if row["library"] != "beitv2_zoo":
            continue
        fastest: dict[str, dict] = {}
        for peer in rows:
            if peer["library"] == "beitv2_zoo" or (peer["batch"], peer["precision"]) != (row["batch"], row["precision"]):
                continue
            if peer["library"] not in fastest or peer["images_per_s"] > fastest[peer["library"]]["images_per_s"]:
                fastest[peer["library"]] = peer
        row["ratio_to"] = {library: row["images_per_s"] / peer["images_per_s"] for library, peer in fastest.items()}
        row["peer_how"] = {library: peer["how"] for library, peer in fastest.items()}


def _latency(rows: list[dict]) -> dict:
    """Batch-1 latency per implementation: median ms per image, and ours against each peer's fastest."""
    single = [r for r in rows if r["batch"] == 1]
    result = {r["label"]: {"precision": r["precision"], "how": r["how"], "ms": r["ms_per_image"]} for r in single}
    for ours in (r for r in single if r["library"] == "beitv2_zoo"):
        result[ours["label"]]["speedup_over"] = dict(ours.get("ratio_to", {}))
    return result


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


def _folder(model: torch.nn.Module, count: int, batch_sizes: tuple[int, ...], workers: int | None, repeats: int,
            folder: Path, log, precisions: tuple[str, ...] = ("fp32",)) -> list[dict]:
    """Folder inference against the model alone at each precision (bf16: a bf16 copy of the model, as
    ``get_model(..., dtype=torch.bfloat16)`` would give) and batch size."""
    photos = folder / "photos"
    write_photo_folder(photos, count)
    rows = []
    for precision in precisions:
        subject = model if precision == "fp32" else copy.deepcopy(model).to(torch.bfloat16)
        rows += [folder_throughput(subject, photos, batch, repeats, workers, log) for batch in batch_sizes]
        del subject
    return rows


def run_benchmark(
    name: str = DEFAULT_MODEL,
    batch_sizes: tuple[int, ...] = (1, 8, 32),
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    repeats: int = 5,
    peers: tuple[str, ...] = DEFAULT_PEERS,
    cold_repeats: int = 5,
    seed: int = 0,
    log=print,
    *,
    device: str | torch.device = "cpu",
    sections: tuple[str, ...] = DEFAULT_SECTIONS,
    folder_images: int = 64,
    folder_batch_sizes: tuple[int, ...] = (8,),
    folder_workers: int | None = None,
    mim_architecture: str = "beitv2_mim_base_patch16",
    mim_batch_size: int | None = None,
    mim_steps: int | None = None,
    mim_attentions: tuple[str, ...] = DEFAULT_ATTENTIONS,
) -> dict:
    """Run the requested ``sections`` (see the module docstring) and return one JSON-serialisable dict.

    ``repeats`` applies to throughput, folder and MIM-step runs alike; ``cold_repeats=0`` or
    ``folder_images=0`` skips those sections; ``folder_workers=None`` lets ``inference_model``
    choose its decoding threads, as it does by default. The MIM step defaults to batch 256 and 10 steps
    per run on CUDA, batch 8 and 1 step on CPU.
    """
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    device = torch.device(device)
    result: dict = {"model": name, "device": str(device), "machine": machine.describe(device),
                    "date": time.strftime("%Y-%m-%d"), "repeats": repeats, "sections": list(sections), "notes": []}
    if {"throughput", "folder", "cold-start"} & set(sections):  # the classifier's sections
        settings = _settings(name)
        folder = Path(tempfile.mkdtemp(prefix="beitv2_zoo_bench_"))
        weights, mm_weights = _random_weights(name, folder, seed)
        model = get_model(name, pretrained=weights, device=device)
    if "throughput" in sections or "mim-step" in sections:
        result["gemm_peak_gflops"] = machine.gemm_peak(device=device)
    if "throughput" in sections:
        log("GEMM ceiling on the model's linear-layer shapes")
        result["gemm_ceiling"] = machine.gemm_ceiling(settings, batch_sizes, precisions, device)
        runners, notes = build_runners(model, settings, name, peers)
        runners = [r for r in runners if r.precision in precisions]
        result["notes"] += notes
        log(f"benchmarking {name} on {device}: {', '.join(r.label for r in runners)}")
        flops = machine.flops_per_image(settings)
        rows = _throughput(runners, batch_sizes, repeats, settings["img_size"], device, log, result["notes"])
        _add_ratios(rows, flops, result["gemm_peak_gflops"], result["gemm_ceiling"])
        ran = {row["label"] for row in rows}
        runners = [r for r in runners if r.label in ran]
        result.update(gflop_per_image=flops / 1e9,
                      numerics_vs_beitv2_zoo_fp32=_numerics(runners, settings["img_size"], device, min(batch_sizes)),
                      throughput=rows, batch1_latency=_latency(rows))
        result["compile_s"] = {f"{row['label']} batch {row['batch']}": row["first_call_s"] for row in rows if row["compiled"]}
        del runners
        if "torch._dynamo" in sys.modules:  # compiled peers: their graphs hold frozen copies of the weights
            torch._dynamo.reset()
    if "folder" in sections and folder_images:
        log(f"folder inference: {folder_images} photos, batch sizes {', '.join(map(str, folder_batch_sizes))}, "
            f"{', '.join(precisions)}")
        result["folder"] = _folder(model, folder_images, folder_batch_sizes, folder_workers, repeats, folder, log,
                                   precisions)
    model = None  # the cold start needs only the files; free the device for the MIM step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if "mim-step" in sections:
        on_gpu = device.type == "cuda"
        log(f"MIM pretraining step of {mim_architecture}: {', '.join(mim_attentions)} attention")
        result["mim_step"] = mim_step_throughput(
            mim_architecture, mim_batch_size or (256 if on_gpu else 8), mim_steps or (10 if on_gpu else 1), repeats,
            device, mim_attentions, peak_gflops=result["gemm_peak_gflops"],
            nominal_peak_tflops=result["machine"].get("nominal_bf16_tflops"), seed=seed, log=log)
    if "cold-start" in sections and cold_repeats:
        result["cold_start"] = _cold_starts(name, weights, mm_weights, settings, cold_repeats, log)
    return result


def _isa_text(described: dict) -> str:
    isa = described.get("cpu_isa") or {}
    shown = [flag for flag in ("amx_bf16", "amx_int8", "avx512_bf16", "avx512f") if flag in isa]
    return " ".join(f"{flag}{'+' if isa[flag] else '-' if isa[flag] is False else '?'}" for flag in shown)


def _header(result: dict) -> str:
    described = result["machine"]
    where = described.get("gpu") or f"{described['cpu']} [{_isa_text(described)}] ({described['torch_threads']} threads)"
    model = f"model {result['model']} on " if set(result) & {"throughput", "folder", "cold_start"} else ""
    line = f"{model}{where}, torch {described['torch']}, {result['date']}; medians of {result['repeats']}"
    if "gemm_peak_gflops" in result:
        peaks = result["gemm_peak_gflops"]
        line += f"; GEMM peak fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GFLOP/s"
    return line


def _ceiling_lines(ceilings: list[dict]) -> list[str]:
    lines = ["GEMM ceiling on the model's own linear shapes (best path per shape; ceiling = FLOP-weighted harmonic mean):",
             f"{'batch':>6}{'rows':>7}{'dtype':>6}{'ceiling':>9}  qkv / proj / fc1 / fc2 GFLOP/s (best path)"]
    for entry in ceilings:
        for precision in ("fp32", "bf16"):
            if precision not in entry:
                continue
            c = entry[precision]
            shapes = " / ".join(f"{s['gflops']:.0f} ({s['best_path']})" for s in c["shapes"].values())
            lines.append(f"{entry['batch']:>6}{entry['rows']:>7}{precision:>6}{c['gflops']:>9.0f}  {shapes}")
    return lines


def _throughput_lines(result: dict) -> list[str]:
    lines = [f"throughput ({result['gflop_per_image']:.2f} GFLOP/image; 'of ceil': model GFLOP/s / the GEMM ceiling "
             "of its batch and dtype):",
             f"{'implementation':<54}{'batch':>6}{'img/s':>9}{'ms/img':>9}{'GFLOP/s':>9}{'of ceil':>8}  "
             "ratio of beitv2_zoo (to the peer's fastest variant)"]
    for row in result["throughput"]:
        ratios = ", ".join(f"{k} {v:.2f}x" for k, v in row.get("ratio_to", {}).items())
        label = f"{row['library']} {row['precision']} ({row['how']})" if row["how"] != row["precision"] else f"{row['library']} {row['precision']}"
        fraction = "–" if row.get("ceiling_fraction") is None else f"{row['ceiling_fraction']:.0%}"
        lines.append(f"{label:<54}{row['batch']:>6}{row['images_per_s']:>9.2f}{row['ms_per_image']:>9.1f}"
                     f"{row['gflops']:>9.0f}{fraction:>8}  {ratios}")
    compiled = [row for row in result["throughput"] if row.get("compiled")]
    if compiled:
        lines += ["", "compilation (first call at each batch size, not in the figures above):"]
        lines += [f"  {row['label']:<24} batch {row['batch']:>4}: {row['first_call_s']:.1f} s" for row in compiled]
    latency = result.get("batch1_latency") or {}
    if not latency:
        lines += ["", "batch-1 latency: not measured (batch 1 is not among the batch sizes)"]
    else:
        lines += ["", "batch-1 latency (median ms per image; speed-up = our speed / the peer's fastest variant's):"]
        for label, entry in latency.items():
            speedups = ", ".join(f"{k} {v:.2f}x" for k, v in entry.get("speedup_over", {}).items())
            lines.append(f"  {label:<24} {entry['how']:<36}{entry['ms']:>8.1f} ms" + (f"  speed-up: {speedups}" if speedups else ""))
    first: dict = next(iter(result["numerics_vs_beitv2_zoo_fp32"].values()), {})
    lines += ["", f"numerics against beitv2_zoo fp32 ({first.get('images', 4)} random images):"]
    for label, n in result["numerics_vs_beitv2_zoo_fp32"].items():
        lines.append(f"  {label:<24} max abs diff {n['max_abs_diff']:.2e}  min cosine {n['min_cosine']:.6f}  "
                     f"top-1 agreement {n['top1_agreement']:.0%}")
    return lines


def _folder_lines(rows: list[dict]) -> list[str]:
    lines = ["folder inference (inference_model on a folder of JPEG photos vs the model alone, same batches; target ratio 0.90):",
             f"{'dtype':>6}{'images':>8}{'batch':>6}{'workers':>8}{'folder img/s':>14}{'model img/s':>13}{'ratio':>7}{'paired':>8}"
             f"{'decode+preprocess':>19}"]
    for row in rows:
        lines.append(f"{row.get('precision', 'fp32'):>6}{row['images']:>8}{row['batch']:>6}{row['workers']:>8}"
                     f"{row['folder_images_per_s']:>14.2f}{row['model_images_per_s']:>13.2f}{row['ratio']:>7.2f}"
                     f"{row['ratio_paired']:>8.2f}{row['preprocess_ms_per_image']:>12.1f} ms/img (1 thread)")
    return lines


def _mim_lines(mim: dict) -> list[str]:
    flops = mim["gflop_per_image"]
    lines = [f"MIM pretraining step, {mim['architecture']}, batch {mim['batch']}, {mim['precision']}, "
             f"{flops['training']:.1f} GFLOP/image (3 x {flops['student_forward']:.1f} student + "
             f"{flops['tokenizer_forward']:.1f} tokenizer); SDPA picks the {mim['sdpa_kernel']} kernel:",
             f"{'attention':<18}{'img/s':>9}{'step ms':>9}{'TFLOP/s':>9}{'MFU':>7}{'of GEMM':>9}{'memory':>10}{'vs sdpa':>9}"]
    for row in mim["rows"]:
        if "error" in row:
            lines.append(f"{row['attention']:<18}  {row['error']}")
            continue
        mfu = "–" if row["mfu"] is None else f"{row['mfu']:.0%}"
        gemm = "–" if row["of_gemm_peak"] is None else f"{row['of_gemm_peak']:.0%}"
        memory = "–" if row["peak_memory_mb"] is None else f"{row['peak_memory_mb'] / 1024:.1f} GiB"
        lines.append(f"{row['attention']:<18}{row['images_per_s']:>9.2f}{row['step_ms']:>9.1f}{row['model_tflops']:>9.2f}"
                     f"{mfu:>7}{gemm:>9}{memory:>10}{row.get('speed_vs_sdpa', 0):>8.2f}x")
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in mim["logits_max_abs_diff"].items())
    lines.append(f"same function: fp32 code logits, max abs diff to the first variant: {diffs}")
    return lines


def format_report(result: dict) -> str:
    """A readable table of :func:`run_benchmark`'s result (the sections it ran)."""
    lines = [_header(result)]
    if "gemm_ceiling" in result:
        lines += ["", *_ceiling_lines(result["gemm_ceiling"])]
    if "throughput" in result:
        lines += ["", *_throughput_lines(result)]
    if "folder" in result:
        lines += ["", *_folder_lines(result["folder"])]
    if "mim_step" in result:
        lines += ["", *_mim_lines(result["mim_step"])]
    if "cold_start" in result:
        lines += ["", "cold start (new process → first prediction, weights on disk):"]
        for label, r in result["cold_start"].items():
            ratio = ", ".join(f"{k}: {v['seconds']:.2f}x time, {v['peak_rss']:.2f}x RSS" for k, v in r.get("ratio_to", {}).items())
            lines.append(f"  {label:<18}{r['seconds']:>7.2f} s {r['peak_rss_mb']:>8.0f} MB peak RSS  {ratio}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)
