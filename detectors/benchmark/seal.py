"""The seal: detectors run in processes that cannot reach the truth, the organisms or earlier results.

Every benchmark cell (one detector, one organism) runs in a fresh process forked from a server
that sealed itself before importing any detector (`detectors.benchmark.cell_server`), and answers each of
its questions in a child of its own (`detectors.benchmark.cell_task`):

1. **Nothing to find.** The cell receives a copy of the model under a random name, public
   prompts and the detector's parameters: no organism name, kind or label exists in its memory,
   its activation cache lives and dies with it, and it cannot see which cells ran before it.
2. **An audit hook** refuses to open, list, link, rename or delete anything under the artefact
   home or another cell's directory, refuses writes outside the cell's own directory, refuses to
   start a subprocess or fork, to look up C functions that open files or start processes, and to
   read another process's `/proc` entries, whichever Python library a detector goes through.

Python code can edit Python state, so the hook holds against a detector that goes *around* it
(another path, another library, a subprocess, a hard link), not against one written to disable
it. An operating-system barrier (running cells as another user) is not possible here: the
interpreter itself lives in a folder only its owner may read.

3. **An allowlisted environment.** The cell server (a forkserver) is started with only the
   variables below, so neither its `os.environ` nor its exec-time `/proc/self/environ` carries what
   the scorer was given (`BLIND_SEED` would let a detector redraw the blind zoo); `enter_cell`
   clears `os.environ` to the same list again before setting the cell's own home:

   - `PATH`, `PYTHONPATH`, `PYTHONDONTWRITEBYTECODE`: find and import the same code;
   - `LANG`, `LANGUAGE`, `LC_*`, `TZ`: the same text and time handling;
   - `OMP_NUM_THREADS`, `MKL_NUM_THREADS`, `OPENBLAS_NUM_THREADS`, `NUMEXPR_NUM_THREADS`: the same threads;
   - `MESALAB_DEVICE`, `CUDA_VISIBLE_DEVICES`: the same device;
   - fixed: `PYTHONHASHSEED=0` and `HF_HUB_OFFLINE=1`; the cell sets `HOME`, `TMPDIR` and the caches to its
     own folder and `MESALAB_HOME` to a home inside it.

   Files a cell gets are the model's weights, config and tokenizer only, with fixed times and modes
   (`detectors.benchmark.cells`).
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

SEALED_MESSAGE = "sealed: a detector may not reach the truth, other organisms or earlier results"
_state: dict = {"server": False, "guarded": (), "scratch": None, "readable": None, "forking": False}

# Audit events that start programs or duplicate the process: a subprocess would run outside the hook.
_NEVER = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.forkpty", "pty.spawn",
          "os.link", "os.symlink", "os.startfile"}
_NEVER_IN_A_CELL = {"os.fork"}  # the server itself forks the cells
# C functions a cell may not look up through ctypes: they would open files or start programs unaudited.
_C_FUNCTIONS = {"open", "open64", "openat", "openat64", "fopen", "fopen64", "creat", "link", "linkat", "symlink",
                "symlinkat", "rename", "renameat", "unlink", "execve", "execv", "execvp", "execl", "execlp",
                "system", "popen", "fork", "vfork", "clone", "posix_spawn", "posix_spawnp", "syscall", "opendir",
                "chdir", "mount"}
_PATH_EVENTS = {"sqlite3.connect", "open", "os.listdir", "os.scandir", "glob.glob", "os.rename", "os.remove", "os.rmdir", "os.mkdir",
                "shutil.copyfile", "shutil.copytree", "shutil.rmtree", "shutil.move", "os.chmod", "os.chown",
                "os.truncate", "os.utime", "os.chdir", "os.chflags", "os.setxattr", "os.getxattr",
                "os.listxattr", "os.removexattr"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_OTHER_PROCESS = re.compile(r"^/proc/(\d+)(/|$)")
_ALWAYS_WRITABLE = ("/dev/null",)

CELL_VARIABLES = ("PATH", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "LANG", "LANGUAGE", "TZ", "OMP_NUM_THREADS",
                  "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "MESALAB_DEVICE",
                  "CUDA_VISIBLE_DEVICES")
CELL_VARIABLE_PREFIXES = ("LC_",)
CELL_FIXED_VARIABLES = {"PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1"}


def _refuse():
    raise PermissionError(SEALED_MESSAGE)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _resolve(target) -> str | None:
    if isinstance(target, int) or target is None:
        return None  # an open file descriptor: its path was checked when it was opened
    try:
        return os.path.realpath(os.fsdecode(target))
    except (TypeError, ValueError):
        return None


def _is_write(event: str, args: tuple) -> bool:
    if event != "open":
        return event not in ("os.listdir", "os.scandir", "glob.glob", "os.chdir", "os.getxattr", "os.listxattr")
    mode, flags = (args[1] if len(args) > 1 else None), (args[2] if len(args) > 2 else 0)
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return bool((flags or 0) & _WRITE_FLAGS)


def cell_environment(environ=None) -> dict[str, str]:
    """The allowlisted part of `environ` (default: this process's), with the fixed variables set."""
    environ = os.environ if environ is None else environ
    kept = {k: v for k, v in environ.items() if k in CELL_VARIABLES or k.startswith(CELL_VARIABLE_PREFIXES)}
    return {**kept, **CELL_FIXED_VARIABLES}


def _c_environment() -> dict[bytes, bytes]:
    """The C library's environment, which a started program inherits. A library may set a variable there
    (setenv from C) without os.environ knowing, and clearing os.environ leaves it."""
    import ctypes  # the scorer's side only: cells may not look C functions up

    found, entries = {}, ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")
    for i in itertools.count():
        if entries[i] is None:
            return found
        key, _, value = entries[i].partition(b"=")
        found[key] = value


@contextmanager
def cell_environment_only():
    """Within: this process's environment is the cell's allowlist, so a program started now inherits
    only that (os.environ's changes reach the C environment a new program is given); restored after.
    Keep it short: another thread starting a program meanwhile would get the allowlist too."""
    saved = dict(os.environ)
    known = {os.fsencode(k) for k in saved}
    c_only = {key: value for key, value in _c_environment().items() if key not in known}
    for key in c_only:
        os.unsetenv(key)
    os.environ.clear()
    os.environ.update(cell_environment(saved))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for key, value in c_only.items():
            os.putenv(key, value)


def _climbs_by_descriptor(event: str, args: tuple, path: str, inside: bool) -> bool:
    """`os.open` is how a detector gets a folder's descriptor and opens paths relative to one (`dir_fd=`).
    Its audit event does not carry `dir_fd`, so the hook resolves a relative path against the working
    folder instead: refuse a folder outside the cell's (its descriptor would open anything in it), and a
    relative path that climbs (`..` from a folder deep in the cell reaches other cells' folders)."""
    if event != "open" or len(args) < 2 or args[1] is not None:  # builtin open passes a mode; os.open None
        return False
    raw = os.fsdecode(args[0])
    return (not inside and os.path.isdir(path)) or (not os.path.isabs(raw) and os.pardir in Path(raw).parts)


def _audit(event: str, args: tuple) -> None:
    if not _state["server"]:
        return
    if event in _NEVER or (event in _NEVER_IN_A_CELL and _state["scratch"] is not None and not _state["forking"]):
        _refuse()
    if event == "ctypes.dlsym" and len(args) > 1 and isinstance(args[1], str) and args[1] in _C_FUNCTIONS:
        _refuse()
    if event not in _PATH_EVENTS or not args:
        return
    path = _resolve(args[0])
    if path is None:
        return
    scratch = _state["scratch"]
    own = scratch is not None and _inside(path, scratch)
    readable = _state["readable"] is not None and _inside(path, _state["readable"])
    if not own and not readable and any(_inside(path, root) for root in _state["guarded"]):
        _refuse()
    if scratch is not None and _climbs_by_descriptor(event, args, path, own or readable):
        _refuse()
    match = _OTHER_PROCESS.match(path)
    if match and int(match.group(1)) != os.getpid():
        _refuse()
    if scratch is not None and not own and path not in _ALWAYS_WRITABLE and _is_write(event, args):
        _refuse()


def _no_fork_exec(*args, **kwargs):
    _refuse()


def _close_back_doors() -> None:
    """`subprocess` audits its Popen, but the C helper it calls does not: take the helper away."""
    import subprocess

    try:
        import _posixsubprocess
    except ImportError:
        return
    _posixsubprocess.fork_exec = _no_fork_exec
    if hasattr(subprocess, "_fork_exec"):
        subprocess._fork_exec = _no_fork_exec


def seal_server() -> None:
    """Seal this process and every process forked from it: called once, before any detector is imported."""
    if _state["server"]:
        return
    _close_back_doors()
    sys.addaudithook(_audit)  # audit hooks cannot be removed
    _state["server"] = True


def enter_cell(scratch: str, guarded: tuple[str, ...]) -> None:
    """In a fresh cell process: guard the given roots and make the cell's own directory its whole world."""
    if not _state["server"]:
        raise RuntimeError("a cell must run in a process forked from the sealed cell server")
    _state["guarded"] = tuple(os.path.realpath(p) for p in guarded)
    allowed = cell_environment()
    os.environ.clear()  # the forkserver's environment is allowlisted already: this holds if it was not
    os.environ.update(allowed)
    _make_home(scratch)


def fork_a_question() -> int:
    """os.fork for the cell's own code (`detectors.benchmark.cell_task`), which forks a child per question; a
    detector's fork is refused as before."""
    _state["forking"] = True
    try:
        return os.fork()
    finally:
        _state["forking"] = False


def enter_question(own: str) -> None:
    """In a child forked to answer one question: it writes only in `own` (inside the cell's directory)
    and may read the rest of the cell's directory (the model's copy, the fit's cache), nothing else."""
    _state["readable"] = _state["scratch"]
    _make_home(own)


def _make_home(scratch: str) -> None:
    scratch = os.path.realpath(scratch)
    _state["scratch"] = scratch
    tmp = Path(scratch) / "tmp"
    tmp.mkdir(exist_ok=True)
    for variable in ("HOME", "TMPDIR", "HF_HOME", "MPLCONFIGDIR", "XDG_CACHE_HOME", "TRANSFORMERS_CACHE"):
        os.environ[variable] = str(tmp)
    os.environ.pop("MESALAB_HOME", None)
    os.environ["MESALAB_HOME"] = str(Path(scratch) / "home")  # anything a detector stores stays in its cell
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["LOKY_MAX_CPU_COUNT"] = "1"  # else joblib asks `lscpu` (a subprocess, refused) for the core count
    tempfile.tempdir = str(tmp)
    os.chdir(scratch)


def seal_report() -> dict:
    """How the cells are sealed, for the results record."""
    return {"process_per_cell": True, "process_per_question": True, "audit_hook": True, "other_user": False}
