"""``beitv2-zoo bench``: throughput, numerics and cold start against timm / mmpretrain / onnxruntime."""

import argparse
import json
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="benchmark against timm (and mmpretrain, onnxruntime) on the same weights")
    bench.add_argument("--model", default="beit-base-p16_beitv2-in21k-pre_3rdparty_in1k")
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    bench.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    bench.add_argument("--repeats", type=int, default=5, help="timed repeats per configuration (median reported)")
    bench.add_argument("--peers", nargs="*", default=["timm", "mmpretrain", "onnxruntime"])
    bench.add_argument("--cold-repeats", type=int, default=5, help="cold-start runs per implementation (0 to skip)")
    bench.add_argument("--json", type=Path, help="also write the full result as JSON")
    bench.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from ..bench import format_report, run_benchmark

    result = run_benchmark(args.model, tuple(args.batch_sizes), tuple(args.precisions), args.repeats, tuple(args.peers),
                           args.cold_repeats, log=lambda message: print(message, file=sys.stderr))
    print(format_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
