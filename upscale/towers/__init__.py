"""Tower files: their formats, sites, monthly means, partitioning, the cube pixel under a tower."""
