"""``ddubench``: the command line of the suite. Every Snakemake rule calls one of these subcommands.

Each module declares its group of subcommands, their options beside their handlers (data, training,
measure, tables, analysis). This entry point is the only place that turns project errors into exit codes:
a user mistake prints one line (``ddubench: error: ...``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..compat import check_torch
from ..errors import DdubenchError
from . import analysis, data, measure, tables, training
from ._shared import Commands

DESCRIPTION = """\
ddubench: a reproducible benchmark suite for DDU-Net (a U-Net split into subimages joined by a coarse
network that exchanges bottleneck features) and its baselines. The Snakemake workflow in the repository
root calls these subcommands; you can also call them by hand.

Model specs name a registered model and its hyperparameters: unet_D3 = U-Net(3);
ddunet_D3_F16_CY = DDU-Net(D=3, F=16, C=Y); ddunet_D3_F16_CN has the coarse network applied per
subimage; add _W8 for base width 8. resnetddunet_R18_F256_CY = DDU-Net(4, 256, Y) with a frozen
ResNet18 encoder (R50: ResNet50), the DeepGlobe model of journal Table 9.
"""

COMMAND_GROUPS = (data, training, tables, measure, analysis)


def build_parser() -> argparse.ArgumentParser:
    """The ``ddubench`` parser with every subcommand of every group."""
    parser = argparse.ArgumentParser(prog="ddubench", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def _check_outputs(args: argparse.Namespace) -> None:
    """Stop with one line, before any work, when a file or folder the command writes is not writable."""
    from ..io import check_writable, check_writable_folder

    for check, dests in ((check_writable, args.output_files), (check_writable_folder, args.output_folders)):
        for dest in dests:
            if getattr(args, dest, None):
                check(getattr(args, dest))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; project errors and foreseeable I/O errors become one line and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        check_torch()
        _check_outputs(args)
        args.handler(args)
    except DdubenchError as err:
        print(f"ddubench: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early (`ddubench compare ... | head`): stop quietly, as a pipe expects
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
        return 1
    except OSError as err:  # a read or write the checks above could not foresee, e.g. a full disk
        if err.filename is None:
            raise
        print(f"ddubench: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ddubench: interrupted; finished checkpoints and outputs are kept", file=sys.stderr)
        return 130
    return 0
