"""Where artefacts live, and atomic writes so an interrupted build never leaves a half artefact.

Layout under the artefact home (`$MESALAB_HOME`, default `artifacts/` in the repo):
    base/embedded-<fingerprint>/   the embedded base model
    organisms/<name>/              a Hugging Face model directory, free of any trace of the trigger
    truth/<name>.json              the sealed truth record; only the scorer reads it
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


def mesalab_home() -> Path:
    return Path(os.environ.get("MESALAB_HOME") or REPO_ROOT / "artifacts").resolve()


def organisms_dir() -> Path:
    return mesalab_home() / "organisms"


def organism_dir(name: str) -> Path:
    return organisms_dir() / name


def truth_dir() -> Path:
    return mesalab_home() / "truth"


def truth_path(name: str) -> Path:
    return truth_dir() / f"{name}.json"


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; artefacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextmanager
def staging_directory(target: Path) -> Iterator[Path]:
    """A fresh directory beside `target`; `publish_directory` moves it into place.

    If the body raises, the staging directory is removed and `target` is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{target.name}-"))
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def publish_directory(staging: Path, target: Path) -> None:
    """Replace `target` by `staging` with renames, so readers see the old or the new, never a mix."""
    os.chmod(staging, 0o755)  # mkdtemp makes directories private; artefacts are meant to be shared
    retired = target.parent / f".old-{target.name}-{os.getpid()}"
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)
