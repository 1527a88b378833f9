"""One validation step before any work: the spec, its training records, its base, its name and its outputs.

`validate_spec_for_build` is what the CLI runs first for `build`, `data`, `zoo` and `check`, so bad
input fails in one short line (SpecError or RecordError) before a base is built, data is drawn or
a model is trained:

- the spec's values (`organisms.spec.check_spec`: names, kinds, cue lines, numbers in range, ...);
- every record of `data.train_file` (`data.records.load_records`);
- the base: "embedded"; a local directory (a path, or any string naming something that exists)
  with config.json and at least one *.safetensors; or else a Hugging Face hub id `org/name`;
- the name: a user's spec named like a built-in organism, or `blind-<digits>` (reserved for the
  blind zoo), would take over that organism's model directory and truth record, so it is refused
  unless forced, and then a note names what it replaces;
- the outputs: the artefact home's organisms and truth folders can be made and written, and an
  output file (`data --out`) is not a directory and its folder can be made and written.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from data.records import load_records, show, show_path
from organisms.blind_zoo import is_blind_name
from organisms.spec import EMBEDDED_BASE, MAX_PATH_CHARS, OrganismSpec, SpecError, check_spec
from organisms.store import organism_dir, organisms_dir, truth_dir, truth_path
from organisms.zoo import ORGANISMS

# A hub id: `org/name`, or a bare legacy name such as `gpt2`; letters, digits, '.', '_' or '-' (no '--' or '..').
HUB_ID = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def _looks_like_path(base: str) -> bool:
    return base.startswith((".", "/", "~")) or os.path.lexists(os.path.expanduser(base))


def check_base(base: str) -> None:
    """'embedded', a local model directory with config.json and safetensors, or a hub id `org/name`."""
    if base == EMBEDDED_BASE:
        return
    if _looks_like_path(base):
        path = Path(os.path.expanduser(base))
        shown = show_path(base)
        try:
            if not path.is_dir():
                raise SpecError(f"base {shown} must be a model directory, but it "
                                f"{'is a file' if path.exists() else 'does not exist'}", "base")
            if not (path / "config.json").is_file():
                raise SpecError(f"base {shown} has no config.json (a Hugging Face model directory has one)", "base")
            if not any(path.glob("*.safetensors")):
                raise SpecError(f"base {shown} has no *.safetensors weights (only safetensors are loaded)", "base")
        except OSError as error:
            raise SpecError(f"base {shown} cannot be read ({error.strerror or type(error).__name__})", "base") from None
        return
    if not HUB_ID.fullmatch(base) or "--" in base or ".." in base:
        raise SpecError(f"base {show(base)} must be 'embedded', a local model directory or a Hugging Face hub id "
                        "('org/name' or a bare name such as 'gpt2')", "base")


def check_name(spec: OrganismSpec, force: bool = False, lab_spec: bool = False) -> list[str]:
    """Refuse a user's spec that would take over a built-in organism or a blind zoo member, unless forced.

    A built-in itself (with any base) is not a takeover, nor are the lab's own blind members
    (`lab_spec`). Returns notes naming what a forced spec replaces.
    """
    notes = []
    builtin = ORGANISMS.get(spec.name)
    if builtin is not None and builtin.replace(base=spec.base) != spec:
        where = f"model directory {show_path(organism_dir(spec.name), 60)} and truth record"
        if not force:
            raise SpecError(f"name {spec.name!r} is a built-in organism's; building this spec would replace its {where} "
                            "(rename the spec, or pass --force to replace it)", "name")
        notes.append(f"{spec.name!r} replaces the built-in organism {spec.name!r}: its {where}")
    if not lab_spec and is_blind_name(spec.name):
        if not force:
            raise SpecError(f"name {spec.name!r} is reserved for the blind zoo (blind-<zoo id>-<digits>, or blind-<digits>); rename the spec, or "
                            "pass --force to replace that member", "name")
        notes.append(f"{spec.name!r} replaces blind zoo member {spec.name!r}: its model directory and sealed truth record")
    return notes


def _folder_problem(folder: Path) -> str | None:
    """Why `folder` could not be made (or written) as a directory, or None: its nearest existing ancestor decides."""
    probe = folder
    while True:
        try:
            status = os.stat(probe)
        except (FileNotFoundError, NotADirectoryError):
            if probe.parent == probe:
                return "has no existing parent"
            probe = probe.parent
            continue
        except OSError as error:
            return f"cannot be reached ({error.strerror or type(error).__name__})"
        except ValueError:
            return "is not a valid path"
        if not stat.S_ISDIR(status.st_mode):
            return f"cannot be made: {show_path(probe, 60)} is not a directory"
        if not os.access(probe, os.W_OK | os.X_OK):
            return f"cannot be written: {show_path(probe, 60)} is not writable"
        return None


def check_output_file(out, option: str = "--out") -> Path:
    """A file to write: not a directory or a special file, in a folder that exists or can be made, writable."""
    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out):
        raise SpecError(f"{option} must be a file path, got {show(out)}", option)
    text = os.fspath(out)
    shown = show_path(text)
    if "\x00" in text or len(text) > MAX_PATH_CHARS:
        raise SpecError(f"{option} {shown} is not a usable path "
                        f"({'it holds a NUL character' if chr(0) in text else f'over {MAX_PATH_CHARS} characters'})",
                        option)
    if text.endswith(("/", os.sep)):
        raise SpecError(f"{option} {shown} names a directory; give a file path such as DIR/NAME.jsonl", option)
    path = Path(os.path.abspath(os.path.expanduser(text)))
    try:
        status = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        status = None
    except OSError as error:
        raise SpecError(f"{option} {shown} cannot be used ({error.strerror or type(error).__name__})", option) from None
    if status is not None and stat.S_ISDIR(status.st_mode):
        raise SpecError(f"{option} {shown} is a directory; give a file path such as {shown}/NAME.jsonl", option)
    if status is not None and not stat.S_ISREG(status.st_mode):
        raise SpecError(f"{option} {shown} exists and is not a regular file", option)
    problem = _folder_problem(path.parent)
    if problem:
        raise SpecError(f"{option} {shown}: its folder {problem}", option)
    return path


def check_store(spec: OrganismSpec) -> None:
    """The artefact home can take this organism: its folders can be made and written, nothing odd in the way."""
    for folder in (organisms_dir(), truth_dir()):
        problem = _folder_problem(folder)
        if problem:
            raise SpecError(f"artefact folder {show_path(folder)} {problem} (set MESALAB_HOME to move it)")
    model, truth = organism_dir(spec.name), truth_path(spec.name)
    if os.path.lexists(model) and not model.is_dir():
        raise SpecError(f"{show_path(model)} is in the way: it should be {spec.name}'s model directory, but is not a directory")
    if truth.is_dir():
        raise SpecError(f"{show_path(truth)} is in the way: it should be {spec.name}'s truth record, but is a directory")


def check_launch() -> None:
    """A build runs in one process: under `accelerate launch --num_processes N` (N > 1) every process would
    measure the gates and write the same organism, so such a launch is refused before any work."""
    world = os.environ.get("WORLD_SIZE", "1")
    if world.strip() not in ("", "1"):
        raise SpecError(f"this build was launched as {show(world)} processes (WORLD_SIZE); organism builds run in "
                        "one process: use 'accelerate launch --num_processes 1'")


def validate_spec_for_build(spec: OrganismSpec, force: bool = False, *, lab_spec: bool = False,
                            out: str | os.PathLike | None = None, builds: bool = True) -> list[str]:
    """Check everything `spec` needs before any work starts; SpecError/RecordError (one line) at the first miss.

    `force` allows a name that replaces a built-in organism or blind zoo member; `lab_spec` marks
    the lab's own spec (a blind zoo member), whose name is its own. `out` is a file to be written
    (checked as one); `builds=False` checks only what writing the spec's data needs (no base, name
    or artefact folders). Returns notes for the user: what a forced name replaces.
    """
    check_spec(spec)
    if spec.data.train_file:
        load_records(spec.data.train_file)
    notes = []
    if builds:
        check_launch()
        check_base(spec.base)
        notes = check_name(spec, force, lab_spec)
        check_store(spec)
    if out is not None:
        check_output_file(out)
    return notes
