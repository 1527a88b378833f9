"""Organism specs, the built-in zoo, and building, measuring and storing organisms."""
