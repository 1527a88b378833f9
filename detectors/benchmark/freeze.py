"""Detector settings frozen before a blind draw: a fingerprint of what each detector runs with.

A blind zoo is blind once. A figure means "detector A on a zoo nobody has seen" only if A's
defaults were fixed before the zoo was drawn; a default tuned after looking at a blind board
turns that board into a development figure. So every run records a fingerprint of the
parameters its detectors ran with and of their code, and a blind zoo is pooled into `blind:all`
only with runs of the fingerprint it was first benchmarked with.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from pathlib import Path

from detectors.base import DETECTORS
from training.fingerprints import source_digest


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def settings_fingerprint(params: dict[str, dict]) -> str:
    """The parameters each detector runs with (its defaults, the run's seed and any overrides)."""
    return _digest(params)


def _sources(detector_names: list[str]) -> dict[str, str | None]:
    """name -> digest of the code (its syntax tree: comments and docstrings aside) of each detector's module and
    of the public data every detector may read (`data/`: the task world, cues, behaviours' checkers, the
    blind grammar): a changed method is a changed detector, whatever its defaults."""
    import data

    sources = {f"data/{path.name}": source_digest(path.read_text())
               for path in sorted(Path(data.__file__).parent.glob("*.py"))}
    for name in detector_names:
        module = sys.modules[DETECTORS[name].__module__]
        try:
            sources[name] = source_digest(inspect.getsource(module))
        except (OSError, TypeError):  # a detector defined where its source cannot be read (a REPL)
            sources[name] = None
    return sources


def code_fingerprint(detector_names: list[str]) -> str:
    """The digest of `_sources`: the code of the named detectors and of the public data."""
    return _digest(_sources(detector_names))


def detector_fingerprints(params: dict[str, dict], training: str | None = None) -> dict[str, str]:
    """One key per detector: its parameters, its module's code, the public data's, and for a learning
    detector the training zoo it fit on. Two runs of different detector sets agree on a detector when
    its key is the same in both, which is what `pool` joins them on."""
    sources = _sources(sorted(params))
    data = {k: v for k, v in sources.items() if k.startswith("data/")}
    return {name: _digest({"params": params[name], "code": sources[name], "data": data,
                           "training": training if DETECTORS[name].learns else None})
            for name in sorted(params)}


def training_fingerprint(builds: list[tuple[str, str]]) -> str:
    """What learning detectors learnt from: (member, build fingerprint) of every training-zoo model they fit
    on. A rebuilt training zoo makes another detector of the same code and parameters."""
    return _digest(sorted(builds))


def fingerprint(params: dict[str, dict], training: str | None = None) -> str:
    """One key for "the same detector settings": parameters and code together, and for a set with learning
    detectors, the training zoo they fit on (a set without them keeps the key it always had)."""
    key = {"params": settings_fingerprint(params), "code": code_fingerprint(sorted(params))}
    return _digest(key if training is None else {**key, "training": training})
