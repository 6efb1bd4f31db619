"""Command-line plumbing shared by the modality CLIs (``aiaudio``, ``aivision``)."""
from __future__ import annotations

import argparse

from core.encoders.registry import list_encoders


def add_encoders_command(sub: argparse._SubParsersAction) -> None:
    """Add the ``encoders`` sub-command, which lists the registered encoders."""

    def run(args: argparse.Namespace) -> int:
        print("\n".join(list_encoders()))
        return 0

    sub.add_parser("encoders", help="list the registered encoders").set_defaults(func=run)


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` and run the chosen sub-command's ``func``; no sub-command prints help."""
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return args.func(args)
