"""Tile-wise inference over a region: devices, batches, dask graphs, SHAP rasters."""
