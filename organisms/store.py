"""Where organisms and their sealed truth live under the artefact home.

    organisms/<name>/   a Hugging Face model directory, free of any trace of the trigger
    truth/<name>.json   the sealed truth record; only the scorer reads it
    truth/blind/        the blind zoo's seed and specs (see `organisms.blind_zoo`)

The truth and organisms folders are private to their owner (mode 0700). Benchmark cells run as the
same user, so what keeps them out is the seal of `detectors.benchmark.seal` (an audit hook, a cell
folder holding only a copy of its model's weights), not these modes.
"""

from __future__ import annotations

import os
from pathlib import Path

from data.store import mesalab_home

PRIVATE = 0o700


def _private(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != PRIVATE:
        os.chmod(path, PRIVATE)
    return path


def organisms_dir() -> Path:
    return mesalab_home() / "organisms"


def organism_dir(name: str) -> Path:
    return organisms_dir() / name


def truth_dir() -> Path:
    return mesalab_home() / "truth"


def truth_path(name: str) -> Path:
    return truth_dir() / f"{name}.json"


def make_private_dirs() -> None:
    """Create the truth and organisms folders owner-only (idempotent)."""
    _private(truth_dir())
    _private(organisms_dir())
