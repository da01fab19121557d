"""The ``beitv2-zoo`` command.

Each sub-command lives in its own module of this package and exposes
``register(commands)``, which adds its parser and sets ``handler``; heavy imports
happen inside the handlers so that ``--help`` and ``list`` start fast.
"""

import argparse
import os
import sys
from collections.abc import Sequence

from ..version import __version__
from ..arguments import USAGE_EXIT, OneLineParser, UsageError
from . import bench as _bench
from . import cards as _cards
from . import export as _export
from . import hub as _hub
from . import models as _models
from . import pictures as _pictures
from . import predict as _predict
from . import segment as _segment
from . import tokens as _tokens
from . import train as _train

DEFAULT_MODEL = _predict.DEFAULT_MODEL
COMMAND_MODULES = (_models, _predict, _segment, _tokens, _hub, _pictures, _export, _bench, _cards, _train)
"""Modules whose ``register(subparsers)`` adds sub-commands, in help order."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="beitv2-zoo", description="BEiT v2 and BEiT models, weights and inference.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_verbosity(parser, default=0)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for module in COMMAND_MODULES:
        module.register(commands)
    for sub in commands.choices.values():  # -v / -q also after the command name
        if sub.prefix_chars == "-":
            _add_verbosity(sub, default=argparse.SUPPRESS)
    return parser


def _add_verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="say more (retries, cache decisions; -vv: debug)")
    parser.add_argument("-q", "--quiet", action="count", default=default, help="errors only")


def configure_logging(verbose: int, quiet: int) -> None:
    """Warnings by default; ``-v`` adds this package's INFO lines (download retries, conversions), ``-vv``
    DEBUG, ``-q`` errors only. huggingface_hub's own messages show only with ``-v``."""
    import logging

    level = logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(format="%(levelname)s: %(message)s")
    logging.getLogger("beitv2_zoo").setLevel(level)
    logging.getLogger("huggingface_hub").setLevel(level if verbose else logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``beitv2-zoo``; returns the process exit code (2 for a bad argument, 1 for a failure)."""
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is printed escaped, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if not getattr(args, "log_info", 0):  # train and test configure their own logging (INFO, one prefix per rank)
        configure_logging(args.verbose, args.quiet)
    from ..errors import BeitZooError

    try:
        return args.handler(args)
    except BrokenPipeError:  # `beitv2-zoo list | head`: the reader left; end quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UsageError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return USAGE_EXIT
    except BeitZooError as error:
        one_line = getattr(args, "one_line_errors", False)
        print(f"error: {' '.join(str(error).split()) if one_line else error}", file=sys.stderr)
        return 1
