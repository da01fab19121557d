"""``beitv2-zoo bench``: throughput (against the GEMM ceiling of the model's shapes), batch-1 latency, numerics,
folder inference and cold start against timm (eager, bf16 weights and autocast; inductor with freezing) /
mmpretrain / onnxruntime / OpenVINO; on request, a BEiT v2 pretraining step with fused against eager attention."""

import argparse
import json
import sys
from pathlib import Path

from ..arguments import non_negative_int, positive_int

SECTIONS = ("throughput", "folder", "cold-start", "mim-step")  # as beitv2_zoo.bench.SECTIONS (not imported: torch)
DEFAULT_SECTIONS = ("throughput", "folder", "cold-start")
PEERS = ("timm", "timm-inductor", "mmpretrain", "onnxruntime", "openvino")  # as beitv2_zoo.bench.runners.DEFAULT_PEERS


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="benchmark against timm (eager, inductor), mmpretrain, onnxruntime and "
                                              "OpenVINO on the same weights, and against the machine's GEMM ceiling")
    bench.add_argument("--model", default="beit-base-p16_beitv2-in21k-pre_3rdparty_in1k")
    bench.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N")
    bench.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                       help=f"run only these sections of {', '.join(SECTIONS)} (default: {' '.join(DEFAULT_SECTIONS)})")
    bench.add_argument("--mim-step", action="store_true", help="add the MIM pretraining-step section to the default ones")
    bench.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[1, 8, 32])
    bench.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"],
                       help="for throughput and folder inference (default: both)")
    bench.add_argument("--repeats", type=positive_int, default=5, help="timed repeats per configuration (median reported)")
    bench.add_argument("--peers", nargs="*", default=list(PEERS), metavar="PEER",
                       help=f"of {', '.join(PEERS)} (default: all; those not installed are noted and left out)")
    bench.add_argument("--cold-repeats", type=non_negative_int, default=5, help="cold-start runs per implementation (0 to skip)")
    folder = bench.add_argument_group("folder inference")
    folder.add_argument("--folder-images", type=non_negative_int, default=64, help="JPEG photos written for it (0 to skip; default 64)")
    folder.add_argument("--folder-batch-sizes", type=positive_int, nargs="+", default=[8], help="default 8, as predict's")
    folder.add_argument("--folder-workers", type=non_negative_int,
                        help="decoding threads (default: inference_model's choice, 0 or 2; see inference.auto_workers)")
    mim = bench.add_argument_group("MIM pretraining step")
    mim.add_argument("--mim-model", default="beitv2_mim_base_patch16", help="a pretraining architecture")
    mim.add_argument("--mim-batch-size", type=positive_int, help="images per step (default 256 on CUDA, 8 on CPU)")
    mim.add_argument("--mim-steps", type=positive_int, help="steps per timed run (default 10 on CUDA, 1 on CPU)")
    mim.add_argument("--mim-attentions", nargs="+", default=["sdpa", "eager"],
                     help="eager, sdpa, or sdpa:flash|efficient|cudnn|math (default: sdpa eager)")
    bench.add_argument("--json", type=Path, help="also write the full result as JSON")
    bench.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from ..bench import format_report, run_benchmark

    sections = tuple(args.only or DEFAULT_SECTIONS)
    if args.mim_step and "mim-step" not in sections:
        sections += ("mim-step",)
    result = run_benchmark(args.model, tuple(args.batch_sizes), tuple(args.precisions), args.repeats, tuple(args.peers),
                           args.cold_repeats, log=lambda message: print(message, file=sys.stderr),
                           device=args.device, sections=sections, folder_images=args.folder_images,
                           folder_batch_sizes=tuple(args.folder_batch_sizes), folder_workers=args.folder_workers,
                           mim_architecture=args.mim_model, mim_batch_size=args.mim_batch_size, mim_steps=args.mim_steps,
                           mim_attentions=tuple(args.mim_attentions))
    print(format_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
