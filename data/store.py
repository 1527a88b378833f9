"""The artefact home and atomic writes: the ground floor every layer may stand on.

Everything the lab writes lives under the artefact home (`$MESALAB_HOME`, default `artifacts/`
in the repo). Writes go to a temporary name beside their target and are renamed into place, so
an interrupted write (even `kill -9`) leaves the old artefact or the new one, never half of one;
leftovers carry a `.tmp-` or `.old-` prefix and never count as built. This module imports
nothing of the lab, so `data/` and `training/` can use it without reaching up into `organisms/`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
HOME_VARIABLE = "MESALAB_HOME"


def mesalab_home() -> Path:
    return Path(os.environ.get(HOME_VARIABLE) or REPO_ROOT / "artifacts").resolve()


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{os.getpid()}-{path.name}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # mkstemp makes files private; most artefacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_write_json(path: Path, obj, mode: int = 0o644) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", mode)


@contextmanager
def staging_directory(target: Path) -> Iterator[Path]:
    """A fresh directory beside `target`; `publish_directory` moves it into place.

    If the body raises, the staging directory is removed and `target` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{os.getpid()}-{target.name}-"))
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def publish_directory(staging: Path, target: Path, mode: int = 0o755) -> None:
    """Replace `target` by `staging` with renames, so readers see the old or the new, never a mix."""
    os.chmod(staging, mode)  # mkdtemp makes directories private
    retired = target.parent / f".old-{os.getpid()}-{target.name}"
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(folder: Path) -> list[str]:
    """Delete the `.tmp-<pid>-*` and `.old-<pid>-*` entries that a process which no longer runs left in
    `folder` (a killed write); return their names. Entries of running processes are left alone."""
    removed = []
    if not Path(folder).is_dir():
        return removed
    for entry in Path(folder).iterdir():
        parts = entry.name.split("-", 2)
        if parts[0] in (".tmp", ".old") and len(parts) == 3 and parts[1].isdigit() and not _alive(int(parts[1])):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return sorted(removed)
