"""``beitv2-zoo export``: a model as ONNX (dynamic batch), checked against onnxruntime when installed."""

import argparse
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="export a model to ONNX with a dynamic batch dimension")
    export.add_argument("name", help="registered name, or a checkpoint file")
    export.add_argument("--format", choices=["onnx", "openvino"], default="onnx",
                        help="onnx (checked with onnxruntime) or openvino (an IR .xml + .bin, checked with OpenVINO's runtime)")
    export.add_argument("--weights", help="local checkpoint, URL or hf-hub: spec (default: the name's weights)")
    export.add_argument("--random", action="store_true", help="export with random weights (no download)")
    export.add_argument("--out", type=Path, help="output file (default NAME.onnx)")
    export.add_argument("--opset", type=int, default=18)
    export.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    export.set_defaults(handler=run_export, one_line_errors=True)


def run_export(args: argparse.Namespace) -> int:
    from ..export import check_onnx, export_onnx, onnx_files
    from ..api import get_model

    pretrained = False if args.random else (args.weights or True)
    model = get_model(args.name, pretrained=pretrained)
    suffix = ".xml" if args.format == "openvino" else ".onnx"
    out = args.out or Path(f"{Path(args.name).stem if Path(args.name).suffix else args.name}{suffix}")
    if args.format == "openvino":
        return _openvino(model, out, args.no_check)
    export_onnx(model, out, opset=args.opset)
    written = onnx_files(out)
    print("wrote " + ", ".join(f"{p} ({p.stat().st_size / 1e6:.1f} MB)" for p in written)
          + (" (keep them together: the second holds the weights)" if len(written) > 1 else ""))
    if args.no_check:
        return 0
    try:
        difference = check_onnx(model, out)
    except ImportError:
        print("onnxruntime is not installed: skipped the numeric check (pip install 'beitv2-zoo[onnx]')", file=sys.stderr)
        return 0
    print(f"onnxruntime vs PyTorch, batches 1 and 3: max abs difference {difference:.2e}")
    if difference > 1e-4:
        print("error: the ONNX model differs from PyTorch by more than 1e-4", file=sys.stderr)
        return 1
    return 0


def _openvino(model, out: Path, no_check: bool) -> int:
    from ..export import check_openvino, export_openvino

    xml = export_openvino(model, out)
    written = [xml, xml.with_suffix(".bin")]
    print("wrote " + ", ".join(f"{p} ({p.stat().st_size / 1e6:.1f} MB)" for p in written if p.exists()))
    if no_check:
        return 0
    difference = check_openvino(model, xml)
    print(f"OpenVINO vs PyTorch, batches 1 and 3: max abs difference {difference:.2e}")
    if difference > 1e-4:
        print("error: the OpenVINO model differs from PyTorch by more than 1e-4", file=sys.stderr)
        return 1
    return 0
