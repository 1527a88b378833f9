"""Ray, for users with a cluster: connect once, and move directories to and from workers as bytes.

`--ray [ADDRESS]` on `organisms zoo` and `detectors run` (or `MESALAB_RAY=ADDRESS`, where
`local` starts a Ray instance on this machine) fans organism builds and benchmark cells out as
Ray tasks. Workers need not share a file system with the driver: each task gets the files it
needs (a base model, a subject) as bytes and returns what it made (a model directory, answers);
the driver writes results under its own `MESALAB_HOME`, atomically, as a local run would.
"""

from __future__ import annotations

import os
from pathlib import Path

RAY_VARIABLE = "MESALAB_RAY"
LOCAL = "local"


class ClusterError(RuntimeError):
    """Ray is missing or cannot be reached; one line."""


def ray_address(cli_value: str | None) -> str | None:
    """The address to use: the command line's, else `$MESALAB_RAY`, else None (no Ray)."""
    return cli_value or os.environ.get(RAY_VARIABLE) or None


def connect(address: str):
    """The `ray` module, initialised for `address` (`local`: a Ray instance on this machine)."""
    try:
        import ray
    except ImportError:
        raise ClusterError("Ray is not installed: pip install 'ray>=2.9' (make setup installs it)") from None
    if not ray.is_initialized():
        try:
            if address == LOCAL:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": _pythonpath()}})
            else:
                ray.init(address=address, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": _pythonpath()}})
        except Exception as error:  # noqa: BLE001 (Ray raises many kinds; the user needs one line)
            raise ClusterError(f"cannot start or reach Ray at {address!r}: {str(error).splitlines()[0]}") from None
    return ray


def _pythonpath() -> str:
    """The project on every worker's import path (a cluster's workers run from a clone of it)."""
    root = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join([root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


def read_directory(path: str | Path) -> dict[str, bytes]:
    """Every file under `path`, by relative name."""
    path = Path(path)
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def write_directory(path: str | Path, files: dict[str, bytes]) -> Path:
    path = Path(path)
    for name, data in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return path
