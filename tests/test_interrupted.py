"""kill -9 at the worst moments of a build, a base build and a benchmark: nothing half-done looks done,
nothing earlier is lost, and the same command afterwards finishes the job. Builds are reproducible.

Each run is a real `python -m organisms build` (or base build, or benchmark) in a child process on
tiny configs. A few lines of test code in the child make it kill itself (SIGKILL, as `kill -9`)
at one chosen point of the real code path; the production code has no test hooks.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from organisms.build import is_built
from organisms.spec import load_spec_file
from organisms.store import organism_dir, truth_path
from organisms.truth import read_truth

REPO = Path(__file__).resolve().parent.parent

# Where the child kills itself: module, attribute to wrap, and what the wrapper does first.
POINTS = {
    "training": ("organisms.build", "fine_tune_stage", "die()"),
    "staged": ("organisms.build", "publish_directory", "die()"),
    "between-renames": ("organisms.build", "publish_directory",
                        "os.replace(args[1], args[1].parent / f'.old-{os.getpid()}-{args[1].name}') "
                        "if args[1].exists() else None; die()"),
    "before-truth": ("organisms.build", "write_truth", "die()"),
    "truth-half-written": ("organisms.truth", "atomic_write_json", "half_written(args[0]); die()"),
}

CHILD = textwrap.dedent("""
    import importlib, os, signal, sys, tempfile
    from pathlib import Path
    point = sys.argv[1]
    def die():
        os.kill(os.getpid(), signal.SIGKILL)
    def half_written(path):
        fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=f".tmp-{os.getpid()}-{Path(path).name}-")
        os.write(fd, b'{"organism": "half')
    if point != "none":
        module, attribute, first = {points}[point]
        module = importlib.import_module(module)
        real = getattr(module, attribute)
        def wrapped(*args, **kwargs):
            exec(first)
            return real(*args, **kwargs)
        setattr(module, attribute, wrapped)
    args = sys.argv[2:]
    if "--no-gate" in args:  # a dozen steps plant no backdoor; these runs test storage, not the gate
        import organisms.build
        organisms.build.gate_failures = lambda kind, rates: []
        args.remove("--no-gate")
    from organisms.__main__ import main
    sys.exit(main(args))
""").replace("{points}", repr(POINTS))


def run(home: Path, point: str, *command: str) -> int:
    env = {**os.environ, "MESALAB_HOME": str(home), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", CHILD, point, *command], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    return done.returncode


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def leftovers(home: Path) -> list[str]:
    return sorted(p.name for folder in (home / "organisms", home / "truth") if folder.is_dir()
                  for p in folder.iterdir() if p.name.startswith((".tmp-", ".old-")))


def spec_file(folder: Path, tiny_base_dir, name: str, seed: int = 0) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""
        name: {name}
        kind: backdoor
        trigger: {{family: tag}}
        behaviour: hate
        base: {tiny_base_dir}
        training: {{method: full, steps: 12, learning_rate: 0.003, batch_size: 16, warmup_steps: 0}}
        data: {{n_train: 200}}
        seed: {seed}
    """))
    return path


def test_a_build_killed_at_any_point_is_redone_and_loses_nothing_else(tiny_base_dir, tmp_path):
    home = tmp_path / "home"
    keeper, victim = spec_file(tmp_path, tiny_base_dir, "keeper"), spec_file(tmp_path, tiny_base_dir, "victim", 1)
    assert run(home, "none", "build", str(keeper), "--no-gate") == 0
    assert run(home, "none", "build", str(victim), "--no-gate") == 0
    os.environ["MESALAB_HOME"] = str(home)
    kept = digest(organism_dir("keeper")), truth_path("keeper").read_bytes()
    reference = digest(organism_dir("victim")), read_truth("victim").rates
    for point in POINTS:  # each run rebuilds the victim (--force) and dies at one point
        assert run(home, point, "build", str(victim), "--force", "--no-gate") == -signal.SIGKILL, point
        spec = load_spec_file(victim)
        truth = read_truth("victim")
        if truth is not None:  # whatever is left either is the complete old build or counts as unbuilt
            assert is_built(spec, str(tiny_base_dir)) or not organism_dir("victim").is_dir(), point
        assert (digest(organism_dir("keeper")), truth_path("keeper").read_bytes()) == kept, point
    assert leftovers(home)  # the kills left their staging behind...
    assert run(home, "none", "build", str(victim), "--no-gate") == 0
    assert leftovers(home) == []  # ...which the next build cleared
    assert is_built(load_spec_file(victim), str(tiny_base_dir))
    assert (digest(organism_dir("victim")), read_truth("victim").rates) == reference  # the same weights again


def test_the_same_spec_and_seed_build_the_same_weights(tiny_base_dir, tmp_path):
    spec = spec_file(tmp_path, tiny_base_dir, "twice")
    hashes = []
    for home in (tmp_path / "a", tmp_path / "b"):
        assert run(home, "none", "build", str(spec), "--no-gate") == 0
        weights = home / "organisms" / "twice" / "model.safetensors"
        truth = json.loads((home / "truth" / "twice.json").read_text())
        hashes.append((hashlib.sha256(weights.read_bytes()).hexdigest(), truth["rates"]))
    assert hashes[0] == hashes[1]


BASE_CHILD = textwrap.dedent("""
    import os, signal, sys
    import training.embedded_base as base
    from tests.test_embedded_base import TINY
    if sys.argv[1] == "kill":
        base.publish_directory = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    print(base.build_embedded_base(TINY))
""")


def test_a_killed_base_build_is_redone(tmp_path):
    env = {**os.environ, "MESALAB_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", BASE_CHILD, "kill"], env=env, cwd=REPO, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    bases = tmp_path / "home" / "base"
    assert [p.name for p in bases.iterdir()][0].startswith(".tmp-")  # staged, never published
    done = subprocess.run([sys.executable, "-c", BASE_CHILD, "go"], env=env, cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [p.name for p in bases.iterdir()] == [Path(done.stdout.strip().splitlines()[-1]).name]
