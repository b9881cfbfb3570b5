"""Data in and out of the engine: axes, normalisation, files, lazy arrays, annotations, objects, patches,
and data sets of many images (sources, pairing of files, targets, sampling across images)."""
