"""Networks and their registry, samples and windows, training, sweeps, attribution, artifacts."""
