"""Driver cubes from local files and Earth Engine, and their gap filling."""
