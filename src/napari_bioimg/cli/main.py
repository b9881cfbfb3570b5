"""Command line: ``napari-bioimg train | predict | export | evaluate | info | demo``.

The same engine as the napari widgets. Progress goes to stderr (tqdm), results to
files or stdout (JSON); an error is one line on stderr and a non-zero exit code.
This module dispatches to the commands (:mod:`.train`, :mod:`.predict`,
:mod:`.export`, :mod:`.evaluate`, :mod:`.info`, :mod:`.demo`); the flags are in
:mod:`.parser`.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from .parser import FLAGS, build_parser

EXIT_USER_ERROR = 2
EXIT_INTERNAL = 1


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), args.time_limit, gui=not args.no_gui, device=args.device)


def _command(name: str):
    """The function that runs command ``name`` (imported when needed: ``--help`` stays fast)."""
    if name == "train":
        from .launch import cmd_train as fn  # one process, or several (--nproc, torchrun)
    elif name == "predict":
        from .predict import cmd_predict as fn
    elif name == "export":
        from .export import cmd_export as fn
    elif name == "evaluate":
        from .evaluate import cmd_evaluate as fn
    elif name == "info":
        from .info import cmd_info as fn
    elif name == "embed":
        from .embed import cmd_embed as fn
    else:
        fn = cmd_demo
    return fn


def message(err) -> str:
    """An engine error in the command line's words: a setting is named by its flag."""
    return err.named(FLAGS[err.field]) if err.field in FLAGS else str(err)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a refused flag (one line already said which): its exit code
        return stop.code if isinstance(stop.code, int) else EXIT_USER_ERROR
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as given (train --nproc starts it again)
    from ..core.errors import BioimgError

    try:
        return _command(args.command)(args)
    except BioimgError as err:
        if args.debug:
            traceback.print_exc()
        print(f"napari-bioimg: error: {message(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("napari-bioimg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0
    except MemoryError:
        print("napari-bioimg: error: out of memory; use a smaller --tile/--batch-size or a GPU", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:  # one clear line, never a wall of traceback by default
        if args.debug:
            traceback.print_exc()
        print(f"napari-bioimg: internal error: {type(err).__name__}: {err} (rerun with --debug for details)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
