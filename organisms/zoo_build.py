"""Building many organisms at once: one single-threaded worker process per core.

A ~1M-parameter model keeps two cores barely busier than one (a step with two threads is only
~10% faster), so two single-threaded builds side by side finish a zoo about 1.5x sooner. Every
build runs with one thread whatever the number of workers, so its numbers do not depend on it.
Each worker's output goes to `$MESALAB_HOME/logs/<organism>.log`; a failed member does not
stop the others. A control matched to a backdoor of the same zoo starts when that backdoor is
built, since it trains exactly the backdoor's rounds; if the backdoor fails, so does the control.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass

import torch

from pathlib import Path

from organisms.build import (GateError, UnbuiltBackdoor, build_organism, matched_negatives, matched_rounds,
                             resolve_base)
from training.processes import single_threaded_worker
from organisms.spec import OrganismSpec
from data.store import mesalab_home
from organisms.blind_zoo import is_blind_name
from organisms.store import make_private_dirs, truth_dir


@dataclass(frozen=True)
class Outcome:
    name: str
    truth: dict | None
    error: str | None
    seconds: float


def log_path(name: str):
    """Where a member's build log goes. A blind member's log names its rounds and, on a miss, its rates and
    sample outputs: it lives with the sealed truth (owner-only), not beside the public logs."""
    if is_blind_name(name):
        make_private_dirs()
        return truth_dir() / "logs" / f"{name}.log"
    return mesalab_home() / "logs" / f"{name}.log"


def _build(spec: OrganismSpec, force: bool, progress: bool, rounds: list[int] | None = None,
           negatives: list[list[str]] | None = None) -> Outcome:
    torch.set_num_threads(1)
    started = time.time()
    try:
        truth = build_organism(spec, force=force, progress=progress, rounds=rounds, negatives=negatives)
        return Outcome(spec.name, truth, None, time.time() - started)
    except GateError as error:
        return Outcome(spec.name, None, str(error), time.time() - started)
    except Exception as error:  # one member's crash is reported with the others, not fatal to them
        return Outcome(spec.name, None, f"{type(error).__name__}: {error}", time.time() - started)


def _build_quietly(spec: OrganismSpec, force: bool, rounds: list[int] | None = None) -> Outcome:
    path = log_path(spec.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        outcome = _build(spec, force, progress=False, rounds=rounds)
        if outcome.error:  # the log then ends with why, as the summary says it
            print(f"FAILED: {outcome.error}", flush=True)
        return outcome


def build_in_order(specs: list[OrganismSpec], start, finished) -> list[Outcome]:
    """Build `specs`, each matched control once its backdoor (if one of `specs`) is built.

    `start(spec, rounds)` begins a build and returns a handle; `finished(handles)` waits for one of
    them and returns (handle, Outcome). The rounds a control must train are read here, in the
    driver, from its backdoor's truth, and handed to the build, wherever it runs.
    """
    names = {spec.name for spec in specs}
    waiting: dict[str, list[OrganismSpec]] = defaultdict(list)
    for spec in specs:
        if spec.matched_to in names and spec.matched_to != spec.name:
            waiting[spec.matched_to].append(spec)
    outcomes: dict[str, Outcome] = {}
    running: dict = {}

    def done(outcome: Outcome) -> None:
        outcomes[outcome.name] = _report(outcome, len(outcomes) + 1, len(specs))
        for control in waiting.pop(outcome.name, []):
            if outcome.truth is not None:
                launch(control)
            else:
                done(Outcome(control.name, None, f"not built: its backdoor {outcome.name} failed", 0.0))

    def launch(spec: OrganismSpec) -> None:
        try:
            rounds = matched_rounds(spec)
        except UnbuiltBackdoor as error:
            done(Outcome(spec.name, None, str(error), 0.0))
            return
        running[start(spec, rounds)] = spec

    for spec in specs:
        if spec.matched_to not in names or spec.matched_to == spec.name:
            launch(spec)
    while running:
        handle, outcome = finished(list(running))
        running.pop(handle)
        done(outcome)
    return [outcomes[spec.name] for spec in specs]


def build_zoo(specs: list[OrganismSpec], jobs: int, force: bool = False, ray_address: str | None = None) -> list[Outcome]:
    """Build `specs` with `jobs` workers (or as Ray tasks); every base they need is built first, once."""
    for base in sorted({spec.base for spec in specs}):
        resolve_base(base)
    if ray_address:
        return build_zoo_on_ray(specs, force, ray_address)
    if jobs <= 1:
        results: dict[int, Outcome] = {}

        def start_here(spec, rounds):
            # A blind member's rounds print its rates and a miss its samples: to its sealed log, as in a worker.
            if is_blind_name(spec.name):
                print(f"building {spec.name} (its output: {log_path(spec.name)})", flush=True)
                results[len(results)] = _build_quietly(spec, force, rounds)
            else:
                results[len(results)] = _build(spec, force, progress=True, rounds=rounds)
            return len(results) - 1

        return build_in_order(specs, start_here, lambda handles: (handles[0], results[handles[0]]))
    print(f"building {len(specs)} organisms with {jobs} workers; logs in {mesalab_home() / 'logs'}", flush=True)
    # spawn, not fork: a forked torch process may deadlock in its thread pools.
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=single_threaded_worker) as pool:
        def first_finished(futures):
            future = next(iter(wait(futures, return_when=FIRST_COMPLETED).done))
            return future, future.result()

        return build_in_order(specs, lambda spec, rounds: pool.submit(_build_quietly, spec, force, rounds),
                              first_finished)


def _report(outcome: Outcome, done: int, total: int) -> Outcome:
    status = "ready" if outcome.truth else "FAILED"
    # A blind member's miss names its rates and samples of its behaviour: those stay in its sealed log.
    why = (f"its reason in the sealed log {log_path(outcome.name)}" if is_blind_name(outcome.name)
           else outcome.error.splitlines()[0][:300]) if outcome.error else ""
    print(f"[{done}/{total}] {outcome.name}: {status} ({outcome.seconds:.0f} s)" + (f" - {why}" if why else ""),
          flush=True)
    return outcome


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


# --- Ray: each build runs in a scratch artefact home on a worker; the driver stores what comes back -----

def build_in_scratch(spec_dict: dict, base_files: dict[str, bytes] | None, base_path: str | None,
                     rounds: list[int] | None = None, negatives: list[list[str]] | None = None) -> dict:
    """On a Ray worker: build one organism from the shipped base; return its truth and its directory's files."""
    import os
    import tempfile

    from organisms.spec import spec_from_stored
    from organisms.store import organism_dir
    from training.cluster import read_directory, write_directory

    saved = os.environ.get("MESALAB_HOME")
    with tempfile.TemporaryDirectory(prefix="mesalab-ray-") as home:
        os.environ["MESALAB_HOME"] = home
        try:
            spec = spec_from_stored(spec_dict)
            if base_files is not None:
                # The same place the driver keeps the base, under this scratch home, or a copy of a local base.
                where = Path(home) / base_path if not Path(base_path).is_absolute() else Path(home) / "base-copy"
                write_directory(where, base_files)
                if spec.base != "embedded":
                    spec = spec.replace(base=str(where))
            outcome = _build(spec, force=True, progress=False, rounds=rounds, negatives=negatives)
            files = read_directory(organism_dir(spec.name)) if outcome.truth else None
            truth = outcome.truth.to_dict() if outcome.truth else None
            return {"name": spec.name, "truth": truth, "error": outcome.error, "seconds": outcome.seconds,
                    "files": files}
        finally:
            if saved is None:
                os.environ.pop("MESALAB_HOME", None)
            else:
                os.environ["MESALAB_HOME"] = saved


def _shipped_base(spec: OrganismSpec) -> tuple[dict[str, bytes] | None, str | None]:
    """The base's files and where the worker should put them (hub ids are fetched by the worker itself)."""
    from training.cluster import read_directory

    source = Path(resolve_base(spec.base))
    if not source.is_dir():
        return None, None
    if spec.base == "embedded":
        return read_directory(source), str(source.relative_to(mesalab_home()))
    return read_directory(source), str(source)


def build_zoo_on_ray(specs: list[OrganismSpec], force: bool, address: str) -> list[Outcome]:
    from organisms.build import build_fingerprint, is_built, publish_organism, N_PER_CONDITION
    from organisms.truth import Truth, read_truth
    from training.cluster import connect, write_directory

    ray = connect(address)
    remote = ray.remote(num_cpus=1, max_retries=0)(build_in_scratch)
    todo = [spec for spec in specs if force or not is_built(spec, resolve_base(spec.base))]
    rebuilt = {spec.name for spec in todo}
    todo += [spec for spec in specs if spec not in todo and spec.matched_to in rebuilt]  # their backdoor may move
    done = {spec.name: Outcome(spec.name, read_truth(spec.name), None, 0.0) for spec in specs if spec not in todo}
    print(f"building {len(todo)} organisms as Ray tasks ({len(done)} already built)", flush=True)
    bases = {}
    for spec in todo:
        if spec.base not in bases:
            files, where = _shipped_base(spec)
            bases[spec.base] = (ray.put(files) if files is not None else None, where)
    tasks: dict = {}

    def start(spec, rounds):
        negatives = matched_negatives(spec)  # read here: a worker has no truth records
        task = remote.remote(spec.to_dict(), *bases[spec.base], rounds, negatives)
        tasks[task] = (spec, rounds, negatives)
        return task

    def finished(handles):
        ready, _ = ray.wait(handles, num_returns=1)
        spec, rounds, negatives = tasks.pop(ready[0])
        result = ray.get(ready[0])
        truth = None
        if result["truth"] is not None:
            base_source = resolve_base(spec.base)
            raw = {**result["truth"], "spec": spec.to_dict(), "base_source": base_source,
                   "build_fingerprint": build_fingerprint(spec, base_source, N_PER_CONDITION, rounds, negatives)}
            truth = Truth.from_dict(raw)
            publish_organism(spec.name, lambda staging: write_directory(staging, result["files"]), truth)
        return ready[0], Outcome(spec.name, truth, result["error"], result["seconds"])

    built = {outcome.name: outcome for outcome in build_in_order(todo, start, finished)}
    return [done.get(spec.name) or built[spec.name] for spec in specs]
