"""What the subcommand modules share: the subparser factory, common options and argument types."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], None]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only where it says something: not for required options, flags or no default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, False, True) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class Commands:
    """Adds subcommands to the ``ddubench`` parser, each with its handler and the outputs checked before it runs."""

    def __init__(self, subparsers: argparse._SubParsersAction) -> None:
        self._subparsers = subparsers

    def add(self, name: str, handler: Handler, help_text: str, outputs: tuple[str, ...] = (),
            folders: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        """A subcommand ``name``; ``outputs``/``folders`` are the dests of files/folders it writes (checked
        writable first, so a bad path stops it with one line and nothing written)."""
        parser = self._subparsers.add_parser(name, help=help_text, description=help_text,
                                             formatter_class=HelpFormatter)
        parser.set_defaults(handler=handler, output_files=outputs, output_folders=folders)
        return parser


def set_threads(value: int | None) -> None:
    """torch intra-op threads (``None``: torch's choice)."""
    if value:
        import torch

        torch.set_num_threads(value)


def add_runtime(parser: argparse.ArgumentParser) -> None:
    """--threads, --device and --no-progress of the commands that train or evaluate."""
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:N or auto (with --distributed: each rank uses cuda:LOCAL_RANK "
                             "and NCCL for cuda/auto, gloo on the CPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs stay readable)")


def resolution(text: str) -> tuple[int, int]:
    """``HEIGHTxWIDTH`` -> (height, width)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution {text!r} is not HEIGHTxWIDTH, e.g. 32x512") from None
    return height, width


def subimage_choice(text: str) -> str:
    """``whole``, ``own`` or a subimage side in pixels."""
    if text in ("whole", "own") or text.isdigit():
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not whole, own or a subimage side in pixels")


def positive_int(text: str) -> int:
    """An integer of at least 1 (a count of timed passes, a batch size)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def count_or_fraction(text: str) -> int | float:
    """A split size: an image count (integer) or a fraction (decimal)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"{text!r} is neither an image count nor a fraction")


def write_table(frame, out: str, config_file: str | None, started: str, clock: float, **extra) -> None:
    """Write ``frame`` as CSV atomically with its provenance sidecar (config, seeds, wall time, ``extra``)."""
    from ..config import load_config
    from ..io import atomic_path
    from ..provenance import provenance, write_sidecar

    config = load_config(config_file) if config_file else None
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    write_sidecar(out, provenance(config=config, config_file=config_file,
                                  seeds=config["seeds"] if config else None, started=started,
                                  wall_time_s=time.perf_counter() - clock, **extra))
    print(f"wrote {out}")
