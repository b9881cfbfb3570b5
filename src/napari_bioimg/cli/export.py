"""``napari-bioimg export``: a model as a bioimage.io package, TorchScript or ONNX."""

from __future__ import annotations

import sys


def cmd_export(args) -> int:
    from ..core.data.io import read_image
    from ..core.errors import ConfigError
    from ..core.formats.export import export_model, onnx_difference, sample_input
    from ..core.formats.loading import load_model

    loaded = load_model(args.model, "cpu")
    sample, hint = read_image(args.sample) if args.sample else (None, None)
    info = {k: v for k, v in {"name": args.name, "description": args.description, "authors": args.author,
                              "license": args.license}.items() if v is not None and args.format == "bioimageio"}
    path = export_model(loaded, args.format, args.out, sample=sample, sample_axes=args.axes or hint, **info)
    print(f"wrote {path}", file=sys.stderr)
    if args.format == "onnx":
        try:
            diff = onnx_difference(loaded, path, sample_input(loaded, sample, args.axes or hint))
        except ConfigError as err:
            print(f"napari-bioimg: note: not checked with onnxruntime ({err})", file=sys.stderr)
        else:
            print(f"onnxruntime vs PyTorch on the sample: max abs difference {diff:.2e}", file=sys.stderr)
    return 0
