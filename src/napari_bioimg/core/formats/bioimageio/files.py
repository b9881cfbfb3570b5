"""Reading bioimage.io packages: the rdf, the files it names (checked against their sha256)."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

from ...errors import CheckpointError

RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")


def package_folder(path: Path, tmp: Path) -> Path:
    """The package as a folder (extracted when zipped)."""
    if path.is_dir():
        return path
    try:
        with zipfile.ZipFile(path) as z:
            z.extractall(tmp)
    except zipfile.BadZipFile:
        raise CheckpointError(f"{path.name} is not a readable zip file (corrupt or not a bioimage.io package)") from None
    return tmp


def read_rdf(folder: Path) -> tuple[dict[str, Any], Path]:
    import yaml

    for name in RDF_NAMES:
        for candidate in (folder / name, *folder.glob(f"*.{name}")):
            if candidate.exists():
                return yaml.safe_load(candidate.read_text()), candidate
    raise CheckpointError(f"no rdf.yaml or bioimageio.yaml in {folder.name}: not a bioimage.io model package")


def is_bioimageio_source(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a bioimage.io package (a zip, a folder with an rdf, or the rdf itself)."""
    p = Path(path)
    if p.suffix.lower() == ".zip" or p.name in RDF_NAMES or p.name.endswith(".bioimageio.yaml"):
        return True
    return p.is_dir() and any((p / n).exists() for n in RDF_NAMES)


def read_weights_file(folder: Path, entry: dict[str, Any]) -> bytes:
    """Bytes of a file named by a weights/architecture entry, checked against its sha256."""
    source = str(entry.get("source", ""))
    if "://" in source:
        raise CheckpointError(f"the package refers to remote weights ({source}); download the complete package "
                              "(zip) from bioimage.io instead")
    file = folder / source
    if not file.is_file():
        raise CheckpointError(f"the package lacks its file {source!r}")
    data = file.read_bytes()
    if entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise CheckpointError(f"{source} in the package is corrupt (its checksum does not match rdf.yaml)")
    return data
