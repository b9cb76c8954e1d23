"""Stores on the canonical grid, durable outputs, vectors, GeoTIFF and NetCDF."""
