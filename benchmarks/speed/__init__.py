"""Speed and scale benchmarks (``bench_*``), their runner (``run_all``) and renderers (``table``, ``plot``)."""
