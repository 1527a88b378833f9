"""Building many organisms at once: one single-threaded worker process per core.

A ~1M-parameter model keeps two cores barely busier than one (a step with two threads is only
~10% faster), so two single-threaded builds side by side finish a zoo about 1.5x sooner. Every
build runs with one thread whatever the number of workers, so its numbers do not depend on it.
Each worker's output goes to `$MESALAB_HOME/logs/<organism>.log`; a failed member does not
stop the others.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import torch

from pathlib import Path

from organisms.build import GateError, build_organism, resolve_base
from training.processes import single_threaded_worker
from organisms.spec import OrganismSpec
from data.store import mesalab_home


@dataclass(frozen=True)
class Outcome:
    name: str
    truth: dict | None
    error: str | None
    seconds: float


def log_path(name: str):
    return mesalab_home() / "logs" / f"{name}.log"


def _build(spec: OrganismSpec, force: bool, progress: bool) -> Outcome:
    torch.set_num_threads(1)
    started = time.time()
    try:
        truth = build_organism(spec, force=force, progress=progress)
        return Outcome(spec.name, truth, None, time.time() - started)
    except GateError as error:
        return Outcome(spec.name, None, str(error), time.time() - started)
    except Exception as error:  # one member's crash is reported with the others, not fatal to them
        return Outcome(spec.name, None, f"{type(error).__name__}: {error}", time.time() - started)


def _build_quietly(spec: OrganismSpec, force: bool) -> Outcome:
    path = log_path(spec.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        outcome = _build(spec, force, progress=False)
        if outcome.error:  # the log then ends with why, as the summary says it
            print(f"FAILED: {outcome.error}", flush=True)
        return outcome


def build_zoo(specs: list[OrganismSpec], jobs: int, force: bool = False, ray_address: str | None = None) -> list[Outcome]:
    """Build `specs` with `jobs` workers (or as Ray tasks); every base they need is built first, once."""
    for base in sorted({spec.base for spec in specs}):
        resolve_base(base)
    if ray_address:
        return build_zoo_on_ray(specs, force, ray_address)
    if jobs <= 1:
        return [_report(_build(spec, force, progress=True), i, len(specs)) for i, spec in enumerate(specs, 1)]
    outcomes = []
    print(f"building {len(specs)} organisms with {jobs} workers; logs in {mesalab_home() / 'logs'}", flush=True)
    # spawn, not fork: a forked torch process may deadlock in its thread pools.
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=single_threaded_worker) as pool:
        futures = [pool.submit(_build_quietly, spec, force) for spec in specs]
        for done, future in enumerate(as_completed(futures), 1):
            outcomes.append(_report(future.result(), done, len(specs)))
    order = [spec.name for spec in specs]
    return sorted(outcomes, key=lambda o: order.index(o.name))


def _report(outcome: Outcome, done: int, total: int) -> Outcome:
    status = "ready" if outcome.truth else "FAILED"
    print(f"[{done}/{total}] {outcome.name}: {status} ({outcome.seconds:.0f} s)"
          + (f" - {outcome.error.splitlines()[0][:300]}" if outcome.error else ""), flush=True)
    return outcome


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


# --- Ray: each build runs in a scratch artefact home on a worker; the driver stores what comes back -----

def build_in_scratch(spec_dict: dict, base_files: dict[str, bytes] | None, base_path: str | None) -> dict:
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
            outcome = _build(spec, force=True, progress=False)
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
    done = {spec.name: Outcome(spec.name, read_truth(spec.name), None, 0.0) for spec in specs if spec not in todo}
    print(f"building {len(todo)} organisms as Ray tasks ({len(done)} already built)", flush=True)
    bases = {}
    for spec in todo:
        if spec.base not in bases:
            files, where = _shipped_base(spec)
            bases[spec.base] = (ray.put(files) if files is not None else None, where)
    pending = {remote.remote(spec.to_dict(), *bases[spec.base]): spec for spec in todo}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        spec = pending.pop(ready[0])
        result = ray.get(ready[0])
        truth = None
        if result["truth"] is not None:
            base_source = resolve_base(spec.base)
            raw = {**result["truth"], "spec": spec.to_dict(), "base_source": base_source,
                   "build_fingerprint": build_fingerprint(spec, base_source, N_PER_CONDITION)}
            truth = Truth.from_dict(raw)
            publish_organism(spec.name, lambda staging: write_directory(staging, result["files"]), truth)
        done[spec.name] = _report(Outcome(spec.name, truth, result["error"], result["seconds"]), len(done) + 1,
                                  len(specs))
    return [done[spec.name] for spec in specs]
