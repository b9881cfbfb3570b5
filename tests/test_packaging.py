"""Hub readiness: the built wheel installs into a fresh venv and napari (npe2) finds the plugin and its samples.

Builds from a copy of the project (nothing is written into the repository) without
build isolation (offline, and fast: setuptools comes from this environment). The
fresh venv sees this environment's torch/napari through a filtered view of its
site-packages, so the only napari-bioimg it can import is the installed wheel.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.packaging, pytest.mark.slow]

CHECK = r"""
import json, sys
from pathlib import Path
import napari_bioimg
from npe2 import PluginManager
pm = PluginManager.instance()
pm.discover()
manifest = pm.get_manifest("napari-bioimg")
samples = dict(pm.iter_sample_data())["napari-bioimg"]
layers = samples[0].open()
print(json.dumps({
    "module": napari_bioimg.__file__,
    "prefix": sys.prefix,
    "widgets": [w.display_name for w in manifest.contributions.widgets],
    "samples": [s.key for s in samples],
    "first_sample": [[type(d).__name__, list(d.shape), kind] for d, _, kind in layers],
}))
"""


def run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert res.returncode == 0, f"{cmd}\n{res.stdout}\n{res.stderr}"
    return res


def filtered_site_packages(dest: Path) -> Path:
    """This environment's packages, minus napari-bioimg itself (its editable install and metadata)."""
    dest.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("napari_bioimg", "__editable__", "napari-bioimg")) or name.endswith(".pth"):
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    if not (ROOT / "README.md").exists():
        pytest.skip("README.md (the package's long description) is not in this checkout yet")
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "project"
    ignore = shutil.ignore_patterns(".git", ".venv", "dist", "build", "*.egg-info", "__pycache__", ".pytest_cache",
                                    ".ruff_cache", "demo_output", "bench_output", "tests", "benchmarks")
    shutil.copytree(ROOT, src, symlinks=True, ignore=ignore)
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)])
    return tmp / "dist"


def test_wheel_and_sdist_contents(dist):
    wheel = next(dist.glob("*.whl"))
    sdist = next(dist.glob("*.tar.gz"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("napari_bioimg/napari.yaml", "napari_bioimg/_sample_files/nuclei_3d.tif",
                   "napari_bioimg/_sample_files/nuclei_3d_labels.tif", "napari_bioimg/_sample_files/README.md",
                   "napari_bioimg/core/formats/export.py", "napari_bioimg/_qt/widget.py",
                   "napari_bioimg/cli/main.py", "napari_bioimg/py.typed"):
        assert needed in names, needed
    assert any(n.endswith("licenses/LICENSE") for n in names)
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "napari.manifest" in entry_points and "napari-bioimg = napari_bioimg:napari.yaml" in entry_points
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Classifier: Framework :: napari" in metadata and "License-Expression: BSD-3-Clause" in metadata
    assert "Project-URL: Bug Tracker" in metadata
    run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)])


def test_manifest_validates():
    npe2 = [sys.executable, "-c", "import sys; from npe2.cli import main; sys.argv[0] = 'npe2'; main()"]
    res = run([*npe2, "validate", str(ROOT / "src" / "napari_bioimg" / "napari.yaml")])
    assert "valid" in res.stdout


def test_installed_wheel_is_discovered_by_napari(dist, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(purelib) / "shared_env.pth").write_text(str(filtered_site_packages(tmp_path / "shared")) + "\n")
    wheel = next(dist.glob("*.whl"))
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--quiet",
         str(wheel)])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    res = run([str(python), "-c", CHECK], env=env, cwd=tmp_path)
    import json

    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["module"].startswith(purelib), info["module"]  # the wheel, not the source tree
    assert info["widgets"] and {"nuclei", "nuclei_3d", "noisy_timelapse"} <= set(info["samples"])
    assert [kind for _, _, kind in info["first_sample"]] == ["image", "labels"]
    assert info["first_sample"][0][1] == [256, 256]
    cli = run([str(venv / "bin" / "napari-bioimg"), "info"], env=env, cwd=tmp_path)
    assert "instance" in cli.stdout
