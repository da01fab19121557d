"""``beitv2-zoo card``: print or write model cards and the README model table."""

import argparse
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    card = commands.add_parser("card", help="print or write model cards generated from the registry")
    card.add_argument("name", nargs="?", help="a registered name (omit with --all)")
    card.add_argument("--all", action="store_true", help="every registered name")
    card.add_argument("--write", action="store_true", help="write the cards into --dir instead of printing")
    card.add_argument("--dir", type=Path, default=Path("model_cards"), help="card folder (default model_cards)")
    card.add_argument("--readme", type=Path, help="also regenerate the model table inside this README")
    card.set_defaults(handler=run_card)


def run_card(args: argparse.Namespace) -> int:
    from ..cards import regenerate_readme, render_card, write_cards
    from ..weights import get_record

    if args.readme:
        args.readme.write_text(regenerate_readme(args.readme.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"updated the generated tables in {args.readme}")
    if args.all:
        if args.write:
            paths = write_cards(args.dir)
            print(f"wrote {len(paths)} cards to {args.dir}")
            return 0
        from ..weights import list_models

        for name in list_models():
            print(render_card(get_record(name)))
        return 0
    if args.name:
        text = render_card(get_record(args.name))
        if args.write:
            args.dir.mkdir(parents=True, exist_ok=True)
            from ..cards import card_filename

            (args.dir / card_filename(args.name)).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0
    if not args.readme:
        print("error: give a NAME, --all, or --readme README.md", file=sys.stderr)
        return 2
    return 0
