"""Detectors that try to cheat, registered as a plugin module that every sealed cell imports.

Each tries one route to what it must not know and writes what happened into `extra`, so the
tests can check that every route was refused. The paths they try are handed in as parameters
(the detector "guessed" them): the point is what the seal does when a guess is right.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from detectors.base import Detector, register_detector

CALLS = {"score_model": 0}  # module state: survives between cells only if cells share a process


def attempt(what: str, action) -> str:
    try:
        result = action()
    except (PermissionError, OSError) as error:
        return f"refused: {error}"
    return f"got: {str(result)[:80]}"


class Hostile(Detector):
    defaults = {"seed": 0, "target": "", "folder": "", "secret": ""}

    def score_model(self, subject, prompts=None):
        return 0.0


@register_detector("hostile-files")
class HostileFiles(Hostile):
    """Reads a guessed path by every file route: open, pathlib, listing, a hard link, a subprocess, ctypes."""

    def fit(self, subject):
        target, folder = Path(self.params["target"]), Path(self.params["folder"])
        here = Path.cwd()
        self.extra = {
            "open": attempt("open", lambda: open(target).read()),
            "pathlib": attempt("pathlib", lambda: target.read_bytes()),
            "os.open": attempt("os.open", lambda: os.read(os.open(target, os.O_RDONLY), 10)),
            "listdir": attempt("listdir", lambda: os.listdir(folder)),
            "scandir": attempt("scandir", lambda: [e.name for e in os.scandir(folder)]),
            "hard link": attempt("hard link", lambda: (os.link(target, here / "linked"),
                                                       (here / "linked").read_text())),
            "symlink": attempt("symlink", lambda: (os.symlink(target, here / "sym"), (here / "sym").read_text())),
            "subprocess": attempt("subprocess", lambda: subprocess.run(["cat", str(target)], capture_output=True,
                                                                       check=True).stdout),
            "os.system": attempt("os.system", lambda: os.system(f"cat {target} > {here / 'copied'}")),
            "fork_exec": attempt("fork_exec", lambda: __import__("_posixsubprocess").fork_exec(
                [b"/bin/cat"], [b"/bin/cat"], True, (), None, None, -1, -1, -1, -1, -1, -1, -1, -1, False, False,
                None, None, None, -1, None, False)),
            "ctypes open": attempt("ctypes", lambda: ctypes.CDLL(None).open(str(target).encode(), 0)),
            "fork": attempt("fork", lambda: os.fork()),
        }
        return self


@register_detector("hostile-memory")
class HostileMemory(Hostile):
    """Keeps memory between cells: in module state, in its working folder, in /tmp, in its activation cache."""

    def fit(self, subject):
        CALLS["score_model"] += 1
        here = Path.cwd()
        outside = Path(self.params["folder"]) / "hostile-memory.txt"
        self.extra = {
            "calls in this process": CALLS["score_model"],
            "left by an earlier cell here": (here / "memory.txt").exists(),
            "left by an earlier cell outside": attempt("read outside", lambda: outside.read_text()),
            "cache entries at start": len(list(Path(subject.cache.directory).glob("*.npz")))
            if Path(subject.cache.directory).is_dir() else 0,
            "write here": attempt("write here", lambda: (here / "memory.txt").write_text("seen")),
            "write outside": attempt("write outside", lambda: outside.write_text("seen")),
        }
        subject.activations(subject.public_prompts(4, seed=1))  # fills this cell's cache
        return self


def _pieces(text: str) -> set[str]:
    pieces = {text}
    for separator in ("/", "\n", " ", "|"):
        pieces |= {part for piece in list(pieces) for part in piece.split(separator)}
    return pieces


@register_detector("hostile-stack")
class HostileStack(Hostile):
    """Walks the call stack and every live object for secrets (an organism's name, a trigger line).

    It is handed only the secrets' sha256 hashes, so the search cannot find them in its own parameters.
    """

    defaults = {"seed": 0, "hashes": ()}

    def fit(self, subject):
        wanted = set(self.params["hashes"])
        found, seen = set(), 0

        def look(value) -> None:
            nonlocal seen
            if isinstance(value, str):
                seen += 1
                for piece in _pieces(value[:10_000]):
                    if hashlib.sha256(piece.encode()).hexdigest() in wanted:
                        found.add(piece[:3] + "...")

        frame = sys._getframe()
        while frame is not None:
            for value in [*frame.f_locals.values(), *frame.f_globals.values()]:
                look(value)
            frame = frame.f_back
        for obj in gc.get_objects():  # every container (instances' attributes live in dicts among them)
            kind = type(obj)
            if kind is dict:
                for key, value in list(obj.items()):
                    look(key)
                    look(value)
            elif kind in (list, tuple, set, frozenset):
                for value in list(obj):
                    look(value)
        self.extra = {"found": sorted(found), "strings looked at": seen}
        return self


QUESTION_CALLS = {"n": 0}  # module state: a question sees another's only if they share a process


@register_detector("hostile-questions")
class HostileQuestions(Hostile):
    """Asked several questions in one cell: looks for traces of the other questions (module state, files
    in its folder or the cell's) and, in memory, for a secret that only the held-out inputs carry."""

    defaults = {"seed": 0, "hashes": ()}

    def fit(self, subject):
        self.fitted_in = os.getpid()
        return self

    def _look(self, question: str) -> dict:
        QUESTION_CALLS["n"] += 1
        here = Path.cwd()
        cell = here.parent
        wanted, found = set(self.params["hashes"]), set()
        for obj in gc.get_objects():
            if type(obj) in (list, tuple):
                for value in list(obj):
                    if isinstance(value, str) and hashlib.sha256(value.encode()).hexdigest() in wanted:
                        found.add(value[:3] + "...")
        seen = {
            "calls in this process": QUESTION_CALLS["n"],
            "files of other questions": sorted(p.name for p in [*here.glob("*.txt"), *cell.glob("*.txt"),
                                                                 *cell.glob("*/*.txt")]),
            "write in the cell's folder": attempt("write", lambda: (cell / f"{question}.txt").write_text("seen")),
            "write here": attempt("write here", lambda: (here / f"{question}.txt").write_text("seen")),
            "fitted in": self.fitted_in, "answered in": os.getpid(), "answering parent": os.getppid(),
            "secrets found": sorted(found),
        }
        self.extra = seen
        return seen

    def score_model(self, subject, prompts=None):
        self._look("pair" if prompts else "audit")
        return 0.0

    def score_inputs(self, subject, prompts):
        self._look("inputs")
        return [0.0] * len(prompts)


def _read(path: str) -> str:
    with open(path, "rb") as file:
        return file.read().decode(errors="replace")


def _entry(root: Path, path: Path) -> dict:
    info = os.lstat(path)
    entry = {"path": str(path.relative_to(root)), "folder": path.is_dir(), "size": info.st_size,
             "mode": oct(info.st_mode), "uid": info.st_uid, "gid": info.st_gid, "nlink": info.st_nlink,
             "mtime_ns": info.st_mtime_ns, "atime_ns": info.st_atime_ns, "ctime_ns": info.st_ctime_ns,
             "inode": info.st_ino}
    if path.is_file():
        entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return entry


@register_detector("hostile-leaks")
class HostileLeaks(Hostile):
    """Reads everything a cell can see besides the model: its environment, every file in its folder with
    its metadata, this process's /proc entries, and tries every other process's."""

    def fit(self, subject):
        here = Path.cwd()  # the cell's own folder (enter_cell goes there)
        files = [_entry(here, here)] + [_entry(here, path) for path in sorted(here.rglob("*"))]
        own = {name: _read(f"/proc/self/{name}") for name in ("environ", "cmdline", "status")}
        others, pids = {}, [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
        for pid in pids:
            for name in ("environ", "cmdline", "status"):
                others[f"{pid}/{name}"] = attempt(name, lambda: _read(f"/proc/{pid}/{name}"))
        parent = os.getppid()  # the cell server: the one other process a cell surely knows of
        others["parent by /proc/self/.."] = attempt("dotdot", lambda: _read(f"/proc/self/../{parent}/environ"))
        others["parent by a folder's descriptor"] = attempt("dir_fd", lambda: os.read(
            os.open(f"{parent}/environ", os.O_RDONLY, dir_fd=os.open("/proc", os.O_RDONLY)), 1000))
        # A descriptor of a folder in the cell, then `..` past the cell: the hook sees a path that does not
        # exist (resolved from the working folder), the kernel opens the folder of every cell.
        climbed = "../../../" + here.parent.name
        listing = attempt("climb", lambda: os.listdir(os.open(climbed, os.O_RDONLY, dir_fd=os.open("tmp", os.O_RDONLY))))
        self.extra = {"cell": str(here), "pid": os.getpid(), "environ": dict(os.environ), "files": files,
                      "own proc": own, "other pids": len(pids), "other proc": others, "other cells": listing}
        return self
