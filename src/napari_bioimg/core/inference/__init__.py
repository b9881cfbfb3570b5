"""Prediction: tiling, in memory or block by block into zarr, and on a dask cluster."""
