"""``napari-bioimg info``: what a model file holds (its :class:`~..core.formats.checkpoint.ModelCard`), or the
tasks and models there are."""

from __future__ import annotations

import json


def cmd_info(args) -> int:
    if args.model:
        from ..core.formats.loading import read_card

        print(json.dumps(read_card(args.model).describe(), indent=2, default=str))
    else:
        from ..core import list_models, list_tasks

        print(json.dumps({"tasks": list_tasks(), "models": list_models()}, indent=2))
    return 0
