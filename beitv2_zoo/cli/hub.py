"""``beitv2-zoo download``, ``beitv2-zoo cache list|verify|clean`` and ``beitv2-zoo convert``
(to a canonical ``.safetensors`` file, or with ``--to transformers`` to a folder transformers loads)."""

import argparse
import json
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    download = commands.add_parser("download", help="fetch and verify weights into the cache (for offline use later)")
    download.add_argument("names", nargs="+", metavar="NAME", help="registered names (also URLs or hf-hub:org/repo specs)")
    download.add_argument("--source", help="only this source of each record: a host (openmmlab, official, hf-hub) or 1, 2, …")
    _add_cache_dir(download)
    _add_json(download)
    download.set_defaults(handler=run_download, one_line_errors=True)

    cache = commands.add_parser("cache", help="list, verify or clean the download cache")
    actions = cache.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="files in the cache, their size and the names they belong to")
    verify = actions.add_parser("verify", help="re-hash every cached file against its record (exit 1 if one is bad)")
    clean = actions.add_parser("clean", help="remove unfinished downloads and orphaned safetensors copies "
                                             "(with --all: every cached checkpoint and copy)")
    clean.add_argument("--all", action="store_true", help="remove every cached checkpoint too")
    for parser, handler in ((listing, run_cache_list), (verify, run_cache_verify), (clean, run_cache_clean)):
        _add_cache_dir(parser)
        _add_json(parser)
        parser.set_defaults(handler=handler, one_line_errors=True)

    convert = commands.add_parser(
        "convert", help="write any supported checkpoint as a canonical .safetensors file with metadata, "
                        "or (--to transformers) as a folder for transformers.BeitForImageClassification"
    )
    convert.add_argument("src", help="checkpoint file (mmpretrain, official, timm, transformers; .pth or "
                                     ".safetensors), URL, hf-hub:org/repo, or a registered name (its weights)")
    convert.add_argument("dst", type=Path, help="the .safetensors file to write (with --to transformers: the folder)")
    convert.add_argument("--to", choices=("canonical", "transformers"), default="canonical",
                         help="canonical: this package's safetensors file (default); transformers: config.json, "
                              "model.safetensors and preprocessor_config.json for "
                              "BeitForImageClassification.from_pretrained(DST) (classifiers only)")
    convert.add_argument("--source", help="for a registered name: which of its sources to fetch")
    _add_cache_dir(convert)
    _add_json(convert)
    convert.set_defaults(handler=run_convert, one_line_errors=True)


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object per result instead of text")


def _emit(args: argparse.Namespace, text: str, record: dict) -> None:
    """One result: ``text`` for people, or ``record`` as one JSON line with ``--json``."""
    print(json.dumps(record) if args.json else text)


def _add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=None, help="cache root (default $BEITV2_ZOO_CACHE or ~/.cache/beitv2_zoo)")


def _human(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def run_download(args: argparse.Namespace) -> int:
    from .. import hub
    from ..errors import BeitZooError
    from ..weights import get_record

    failed = 0
    for name in args.names:
        try:
            if name.startswith("hf-hub:"):
                path = hub.fetch_hf_spec(name)
            elif name.startswith(("http://", "https://")):
                path = hub.fetch_url(name, cache_dir=args.cache_dir)
            else:  # an unknown name raises UnknownModelError with the closest names
                path = hub.fetch_weights(get_record(name), source=args.source, cache_dir=args.cache_dir)
        except (BeitZooError, ValueError) as error:
            print(f"error: {name}: {' '.join(str(error).split())}", file=sys.stderr)
            failed += 1
            continue
        size, digest = path.stat().st_size, hub.sha256_of(path)
        _emit(args, f"{name}: {path} ({size:,} bytes, {_human(size)}; sha256 {digest})",
              {"name": name, "path": str(path), "bytes": size, "sha256": digest})
    return 1 if failed else 0


def run_cache_list(args: argparse.Namespace) -> int:
    from .. import hub

    root = hub.checkpoints_dir(args.cache_dir)
    entries = hub.list_cache(args.cache_dir)
    if args.json:
        for entry in entries:
            print(json.dumps({"path": str(entry.path), "bytes": entry.size, "partial": entry.partial,
                              "names": list(entry.names), "copy_of": entry.copy_of}))
        return 0
    print(f"cache: {root}")
    for entry in entries:
        state = "partial" if entry.partial else "copy" if entry.copy_of else "file"
        names = ", ".join(entry.names) if entry.names else ("(unfinished download)" if entry.partial else "(no record)")
        if entry.copy_of and not entry.partial:
            names = f"{names}; safetensors copy of {entry.copy_of}"
        print(f"  {_human(entry.size):>10}  {state:<7}  {entry.path.name}  {names}")
    total = sum(e.size for e in entries)
    print(f"{len(entries)} file{'s' if len(entries) != 1 else ''}, {_human(total)}")
    return 0


def run_cache_verify(args: argparse.Namespace) -> int:
    from .. import hub

    bad = 0
    entries = hub.list_cache(args.cache_dir)
    for entry in entries:
        status, detail = hub.verify_entry(entry)
        bad += status == "bad"
        _emit(args, f"{status.upper():<9} {entry.path.name}  {detail}",
              {"path": str(entry.path), "status": status, "detail": detail})
    if bad:
        print(f"{bad} bad file(s): delete them (`beitv2-zoo cache clean --all`, or by hand) and download again",
              file=sys.stderr)
    elif not entries and not args.json:
        print(f"no files in {hub.checkpoints_dir(args.cache_dir)}")
    return 1 if bad else 0


def run_cache_clean(args: argparse.Namespace) -> int:
    from .. import hub

    removed = hub.clean_cache(args.cache_dir, everything=args.all)
    for path, size in removed:
        _emit(args, f"removed {path} ({_human(size)})", {"removed": str(path), "bytes": size})
    if not args.json:
        print(f"freed {_human(sum(size for _, size in removed))}" if removed else "nothing to remove")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from ..api import convert_checkpoint
    from ..arguments import UsageError

    if args.to == "transformers":
        return _run_convert_transformers(args)
    if args.dst.is_dir():
        raise UsageError(f"{args.dst} is a folder; give the .safetensors file to write, e.g. {args.dst / 'model.safetensors'}")
    try:
        result = convert_checkpoint(args.src, args.dst, source=args.source, cache_dir=args.cache_dir)
    except ValueError as error:  # an unknown --source
        print(f"error: {error}", file=sys.stderr)
        return 1
    meta = result.metadata
    if args.json:
        print(json.dumps({"path": str(result.path), "tensors": result.num_tensors, "bytes": result.num_bytes,
                          "sha256": result.sha256, "metadata": meta}))
        return 0
    print(f"wrote {result.path} ({result.num_tensors} tensors, {_human(result.num_bytes)}; sha256 {result.sha256})")
    print(f"  from {meta['source']} ({meta['source_layout']} layout, sha256 {meta['source_sha256']})")
    return 0


def _run_convert_transformers(args: argparse.Namespace) -> int:
    from ..arguments import UsageError
    from ..export_transformers import convert_to_transformers

    if args.dst.exists() and not args.dst.is_dir():
        raise UsageError(f"{args.dst} is a file; with --to transformers give the folder to write")
    try:
        result = convert_to_transformers(args.src, args.dst, source=args.source, cache_dir=args.cache_dir)
    except ValueError as error:  # an unknown --source (ModelConfigError, a BeitZooError, is reported by main)
        from ..errors import BeitZooError

        if isinstance(error, BeitZooError):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    config = result.config
    if args.json:
        print(json.dumps({"directory": str(result.directory), "files": [str(p) for p in result.files],
                          "tensors": result.num_tensors, "config": config}))
        return 0
    print(f"wrote {result.directory}/ ({', '.join(p.name for p in result.files)}; {result.num_tensors} tensors)")
    print(f"  BeitForImageClassification: {config['num_hidden_layers']} layers, width {config['hidden_size']}, "
          f"{len(config['id2label'])} classes, image {config['image_size']}")
    return 0
