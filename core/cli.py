"""Command-line plumbing shared by the modality CLIs (``aiaudio``, ``aivision``)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.encoders.registry import list_encoders


def add_encoders_command(sub: argparse._SubParsersAction) -> None:
    """Add the ``encoders`` sub-command, which lists the registered encoders."""

    def run(args: argparse.Namespace) -> int:
        print("\n".join(list_encoders()))
        return 0

    sub.add_parser("encoders", help="list the registered encoders").set_defaults(func=run)


def add_pareto_command(sub: argparse._SubParsersAction, prog: str) -> None:
    """Add ``pareto``: score against cost of several ``probe`` / ``finetune`` ``--json`` reports,
    as a table and a PNG with the Pareto front (:mod:`core.analysis.pareto`)."""
    from core.analysis.pareto import COSTS

    def run(args: argparse.Namespace) -> int:
        from core.analysis.pareto import pareto_rows, read_reports
        from core.analysis.plots import pareto_plot
        from core.demo import format_table

        try:
            rows = pareto_rows(read_reports(args.reports), args.cost, args.score, args.label)
            named = [{"label": r["label"], args.cost: r["cost"], args.score: r["score"]} for r in rows]
            figure = pareto_plot(named, args.cost, args.score, "label", args.out, log_x=args.log_x,
                                 title=f"{args.score} against {args.cost}")
        except ValueError as err:
            print(f"{prog} pareto: error: {err}", file=sys.stderr)
            return 2
        table = [{**r, "on_front": "yes" if r["front"] else ""} for r in rows]
        print(format_table(table, [("label", "fit", "s"), ("cost", args.cost, "g"), ("score", args.score, ".4f"),
                                   ("on_front", "Pareto front", "s")]))
        print(f"plot: {figure}")
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"cost": args.cost, "score": args.score, "rows": rows}, indent=2))
        return 0

    p = sub.add_parser("pareto", help="score against cost (parameters, time, memory) of probe/finetune "
                       "--json reports, with the Pareto front")
    p.add_argument("reports", nargs="+", metavar="REPORT.json", help="--json outputs of probe and finetune")
    p.add_argument("--cost", default="trainable_params", choices=list(COSTS))
    p.add_argument("--score", default="accuracy", help="test metric: accuracy, mean_class_accuracy or r2")
    p.add_argument("--label", nargs="+", default=None, help="one label per report (default: command and mode)")
    p.add_argument("--log-x", action="store_true", help="logarithmic cost axis")
    p.add_argument("--out", default="pareto.png", help="PNG to write")
    p.add_argument("--json", default=None, help="write the rows as JSON")
    p.set_defaults(func=run)


def _overrides_action(parser: argparse.ArgumentParser, command: str | None) -> bool:
    """Whether ``command``'s sub-parser takes ``a.b=value`` overrides (a positional named overrides)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return any(a.dest == "overrides" for a in action.choices[command]._actions)
    return False


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``, taking ``a.b=value`` overrides anywhere on the line (also after flags).

    argparse gives a ``nargs="*"`` positional only the first run of bare words; the words after
    a later flag come back as unknown. Those that look like ``key=value`` are appended to the
    command's overrides in order; anything else is the usual usage error (exit status 2).
    """
    args, extra = parser.parse_known_args(argv)
    if not extra:
        return args
    takes_overrides = _overrides_action(parser, getattr(args, "command", None))
    stray = [word for word in extra if word.startswith("-") or "=" not in word or not takes_overrides]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    args.overrides = [*args.overrides, *extra]
    return args


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` and run the chosen sub-command's ``func``; no sub-command prints help.

    The rule every command follows (:mod:`core.errors`): a user error exits 2 with one line
    naming the file, key or value; a named run failure exits 1 with one line; any other
    exception is an internal error, one line and exit 1. ``--debug`` anywhere on the line (or
    ``AI_DEBUG=1``) lets the traceback through instead.
    """
    from core.errors import EXIT_FAILED, classify, debug_requested, debugging

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or debug_requested()
    argv = [word for word in argv if word != "--debug"]
    args = parse_command_line(parser, argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    prefix = f"{parser.prog} {args.command}" if getattr(args, "command", None) else parser.prog
    try:
        with debugging(debug):
            return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the one place every escaping error is reported
        if debug:
            raise
        status, message = classify(err)
        print(f"{prefix}: error: {message}", file=sys.stderr)
        return status or EXIT_FAILED
