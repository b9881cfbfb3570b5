"""Data in and out of the engine: axes, normalisation, files, lazy arrays, annotations, objects, patches."""
