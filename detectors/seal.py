"""The seal: while detectors run, the truth (and which organism is which) cannot be read.

Three layers, all restored in `finally`:
  1. the store's and the builder's lookups (`truth_dir`, `truth_path`, `read_truth`) raise;
  2. a process audit hook refuses to open or list anything under the truth directory or the
     organisms directory (reading an organism's own files would let a detector match its
     weights to a name), whichever path or library a detector goes through;
  3. the subject itself carries no path or name (see `detectors.subject.scrub_provenance`).
The benchmark (the scorer) reads truth records before sealing and never hands them in.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import organisms.build
import organisms.store

SEALED_MESSAGE = "detectors may not read the truth"
_guarded: list[str] = []  # resolved directories; non-empty only inside `sealed()`
_hook_installed = False
_GUARDED_EVENTS = {"open", "os.listdir", "os.scandir", "glob.glob", "os.rename", "os.remove", "shutil.copyfile"}


def _refuse(*args, **kwargs):
    raise PermissionError(SEALED_MESSAGE)


def _audit(event: str, args: tuple) -> None:
    if not _guarded or event not in _GUARDED_EVENTS or not args:
        return
    target = args[0]
    if isinstance(target, int) or target is None:
        return  # an already-open file descriptor: the path was checked when it was opened
    try:
        path = os.path.realpath(os.fsdecode(target))
    except (TypeError, ValueError):
        return
    for root in _guarded:
        if path == root or path.startswith(root + os.sep):
            raise PermissionError(SEALED_MESSAGE)


def _install_hook() -> None:
    # Audit hooks cannot be removed; ours is inert whenever no seal is active.
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)
        _hook_installed = True


@contextmanager
def sealed() -> Iterator[None]:
    _install_hook()
    roots = [os.path.realpath(p) for p in (organisms.store.truth_dir(), organisms.store.organisms_dir())]
    patched = [(organisms.store, "truth_dir"), (organisms.store, "truth_path"),
               (organisms.build, "truth_path"), (organisms.build, "read_truth")]
    saved = [(module, name, getattr(module, name)) for module, name in patched]
    _guarded.extend(roots)
    try:
        for module, name in patched:
            setattr(module, name, _refuse)
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)
        for root in roots:
            _guarded.remove(root)


def is_sealed() -> bool:
    return bool(_guarded)


def guarded_paths() -> list[Path]:
    return [Path(p) for p in _guarded]
