"""napari-bioimg's benchmarks, grouped by purpose; run from the repository root as modules.

* ``speed/``: speed and scale, side by side with a reference in the same run (``bench_*.py``; ``run_all`` runs
  them all, as ``scripts/bench.sh`` does; ``table`` and ``plot`` render its output).
* ``quality/``: quality on real images with ground truth (``suite``: entries and locked splits; ``quality``: the
  harness, ``--report`` for the locked test split; ``quality_stats``: the verdicts; ``*_quality``, ``zoo_curves``).
* ``references/``: the fair references the quality harness runs beside ours (``ref_*``, ``careamics_n2v``); they
  import nothing from napari-bioimg.
* ``experiments/``: dated one-off experiments, each saying what it answered (``experiments/README.md``).
* ``common``: the one shared helper module. ``results/``: committed results files; ``data/``: the suite's images.

    python -m benchmarks.speed.run_all --quick
    python -m benchmarks.quality.quality --report --only nuclei2d-hela

napari-bioimg must be importable (``pip install -e .``, as ``scripts/bench.sh`` does, or ``PYTHONPATH=src``).
"""
