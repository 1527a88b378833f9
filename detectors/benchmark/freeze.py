"""Detector settings frozen before a blind draw: a fingerprint of what each detector runs with.

A blind zoo is blind once. A figure means "detector A on a zoo nobody has seen" only if A's
defaults were fixed before the zoo was drawn; a default tuned after looking at a blind board
turns that board into a development figure. So every run records a fingerprint of the
parameters its detectors ran with and of their code, and a blind zoo is pooled into `blind:all`
only with runs of the fingerprint it was first benchmarked with.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.util
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


# Where a detector's method lives besides its own module: the helpers it imports (divergences, activation
# capture, generation). The benchmark's harness is not part of any detector's method.
METHOD_PACKAGES = ("detectors", "training", "data")
HARNESS = "detectors.benchmark"


def read_module(name: str) -> tuple[str, list[str]]:
    """(the digest of module `name`'s code, the project modules it imports anywhere in its code: a method's
    imports inside functions too)."""
    source = inspect.getsource(importlib.import_module(name))
    imported = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            named = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            named = [alias.name for alias in node.names]
        else:
            continue
        imported += [n for n in named if n.split(".")[0] in METHOD_PACKAGES and not n.startswith(HARNESS)
                     and n not in METHOD_PACKAGES and _is_module(n)]
    return source_digest(source), imported


def method_modules(module_name: str, read=read_module) -> list[str]:
    """`module_name` and every project module it imports, directly or through another (`read_module`): what
    decides how the detector computes its scores."""
    seen: set[str] = set()
    todo = [module_name]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += read(name)[1]
    return sorted(seen)


def _is_module(name: str) -> bool:
    """Is `name` a module (`from training.generation import greedy_token_ids` names one and a function)?"""
    try:
        return importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):  # a name inside a module, not a module
        return False


def _sources(detector_names: list[str]) -> dict[str, str | None]:
    """name -> digest of the code (its syntax tree: comments and docstrings aside) of each detector's module and
    of the project modules it imports (`method_modules`), and of the public data every detector may read
    (`data/`: the task world, cues, behaviours' checkers, the blind grammar): a changed method is a changed
    detector, whatever its defaults. Its own module alone missed a changed helper: a divergence computed
    another way kept every detector's key (2026-12-05)."""
    import data

    sources = {f"data/{path.name}": source_digest(path.read_text())
               for path in sorted(Path(data.__file__).parent.glob("*.py"))}
    # Detectors share most of their helpers: each module is read once a call (1.2 s -> 0.1 for 20 detectors).
    read = functools.cache(read_module)
    for name in detector_names:
        module = sys.modules[DETECTORS[name].__module__]
        try:
            sources[name] = _digest({part: read(part)[0] for part in method_modules(module.__name__, read)})
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
