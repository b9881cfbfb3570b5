"""``napari-bioimg info``: what a model file holds (its :class:`~..core.formats.checkpoint.ModelCard`), or the
tasks and models there are."""

from __future__ import annotations

import json


def cmd_info(args) -> int:
    if getattr(args, "builtin", False):
        from ..core.formats.builtins import BUILTINS, PREFIX, available, builtin_path
        from ..core.formats.loading import read_card

        have = set(available())
        listing = {}
        for name, what in BUILTINS.items():
            entry: dict = {"description": what, "installed": name in have}
            if name in have:
                card = read_card(builtin_path(name))
                entry.update(summary=card.summary(), card=card.builtin or {}, metrics=card.metrics)
            listing[PREFIX + name] = entry
        print(json.dumps(listing, indent=2, default=str))
    elif args.model:
        from ..core.formats.loading import read_card

        print(json.dumps(read_card(args.model).describe(), indent=2, default=str))
    else:
        from ..core import list_models, list_tasks

        print(json.dumps({"tasks": list_tasks(), "models": list_models()}, indent=2))
    return 0
