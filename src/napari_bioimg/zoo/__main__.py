"""``python -m napari_bioimg.zoo build NAME [--hours H | --time-limit S] [--work DIR] [--out FILE]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from .recipes import RECIPES

    parser = argparse.ArgumentParser(prog="python -m napari_bioimg.zoo", description="make the built-in models")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train a built-in from simulated images (resumable: run again to continue)")
    b.add_argument("name", choices=sorted(RECIPES))
    budget = b.add_mutually_exclusive_group()
    budget.add_argument("--hours", type=float, help="wall-clock budget of the whole build, in hours (default 2)")
    budget.add_argument("--time-limit", type=float, help="wall-clock budget of the whole build, in seconds")
    b.add_argument("--chunk", type=float, help="training seconds per chunk (a checkpoint after each)")
    b.add_argument("--work", type=Path, help="work folder (checkpoints; default in ~/.cache/napari-bioimg)")
    b.add_argument("--out", type=Path, help="model file to write (default: the package's weights folder)")
    b.add_argument("--pool", type=int, help="scenes per chunk (default: the recipe's; small for a trial run)")
    b.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    args = parser.parse_args(argv)
    seconds = args.time_limit if args.time_limit is not None else 3600 * (args.hours if args.hours is not None else 2)
    if seconds <= 0:
        parser.error("--hours / --time-limit must be positive")
    from .build import build

    out = build(args.name, time_limit=seconds, work=args.work, out=args.out, threads=args.threads,
                chunk_seconds=args.chunk, pool=args.pool, log=lambda line: print(line, flush=True))
    return 0 if out is not None else 1


if __name__ == "__main__":
    sys.exit(main())
