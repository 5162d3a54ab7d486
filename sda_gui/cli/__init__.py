"""Command line: ``python -m sda_gui simulate | observe | train | assimilate | compare | evaluate | bench | lessons``.

Every run takes three stages, the same for each subcommand:

1. parse (``cli.parser``) — argparse's own errors are one ``error: …`` line;
2. validate (``cli.validate``) — every argument and input file checked, and the
   memory a run needs estimated, before any work: a refused run writes nothing;
3. run (``cli.run_data``, ``cli.run_assim``) — progress on stderr (``cli.report``),
   results written atomically, the result line on stdout.

Bad input, an unreadable or damaged file, a failed write and out of memory end
with one ``error: …`` line on stderr and exit status 2; a cancel exits 130. An
unexpected exception is one line too (exit 1), with its traceback under ``-v``.
Importing this package loads no torch (``--help`` stays fast).
"""

from __future__ import annotations

import sys

from .checks import CliError
from .parser import build_parser

__all__ = ["main", "build_parser", "CliError"]


def _commands():
    from .run_assim import cmd_assimilate, cmd_bench, cmd_compare, cmd_evaluate
    from .run_data import cmd_observe, cmd_simulate, cmd_train
    from .run_lessons import cmd_lessons

    return {"simulate": cmd_simulate, "train": cmd_train, "assimilate": cmd_assimilate, "compare": cmd_compare,
            "evaluate": cmd_evaluate, "bench": cmd_bench, "lessons": cmd_lessons, "observe": cmd_observe}


def _expected_errors() -> tuple:
    from sda_gui.core.assimilation import DeviceError
    from sda_gui.core.datasets import DatasetError, WriteError
    from sda_gui.core.diffusion.checkpoint import CheckpointError
    from sda_gui.core.methods import MethodError
    from sda_gui.core.observation import ObservationError

    return (CliError, ObservationError, CheckpointError, DatasetError, DeviceError, MethodError, WriteError,
            ValueError, FloatingPointError, OSError, InterruptedError)


def _one_line(exc: BaseException) -> str:
    from sda_gui.core.datasets import first_line

    return first_line(exc)


def _report_error(exc: BaseException, args, say) -> int:
    from sda_gui.core.methods import Cancelled

    from .resources import is_out_of_memory, oom_hint, oom_summary

    if isinstance(exc, CliError):
        say_error(str(exc))
        return 2
    if is_out_of_memory(exc):
        device = getattr(args, "device", "cpu")
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        say_error(f"out of memory ({oom_summary(exc)}); {oom_hint(args.command, device)}")
        return 2
    if isinstance(exc, Cancelled):
        say_error("cancelled")
        return 130
    if isinstance(exc, _expected_errors()):
        say_error(_one_line(exc))
        return 2
    if say.verbose:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    say_error(f"unexpected {type(exc).__name__}: {_one_line(exc)} (run with -v for the traceback)")
    return 1


def _join_process_group(args, plan, say):
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): joins the process group for ``train`` and ``assimilate``.

    Every rank validated the same arguments; only rank 0 reports progress and
    writes. Other subcommands refuse to run on several processes.
    """
    from sda_gui.core import distributed

    if distributed.env_world_size() <= 1:
        return None
    if args.command not in ("train", "assimilate"):
        raise CliError(f"{args.command} runs in one process; torchrun is for train and assimilate")
    info = distributed.init_from_env(str(getattr(plan, "device", "cpu")))
    plan.device = distributed.rank_device(plan.device, info)
    if not info.is_main:
        say.quiet = True
        say.result = lambda text: None
    say.info(f"distributed: {info.world_size} processes ({'nccl' if plan.device.type == 'cuda' else 'gloo'}); "
             "rank 0 reports and writes")
    return info


def say_error(text: str) -> None:
    print(f"error: {text}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    """Runs one subcommand; returns the exit status (0, 1 unexpected, 2 bad input, 130 cancelled)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:            # --help (0) or a usage error, already printed as one line (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    from .report import Reporter

    say = Reporter(verbose=args.verbose, quiet=args.quiet)
    restore = None
    try:
        from .resources import apply_threads, parse_threads
        from .validate import validate

        threads = parse_threads(args.threads)
        import torch

        restore = torch.get_num_threads()   # main() may run in-process (tests): leave torch as found
        apply_threads(threads)
        say.detail(f"torch {torch.__version__}, {threads} thread(s)")
        plan = validate(args)
        dist = _join_process_group(args, plan, say)
        try:
            return _commands()[args.command](args, plan, say) or 0
        finally:
            if dist is not None:
                from sda_gui.core import distributed

                distributed.shutdown()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every error ends as one line; see _report_error
        return _report_error(exc, args, say)
    finally:
        if restore is not None:
            import torch

            torch.set_num_threads(restore)
