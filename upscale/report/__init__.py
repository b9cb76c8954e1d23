"""Figures (and reports) for people to look at."""
