"""Detectors and the blind benchmark (issue 3)."""
