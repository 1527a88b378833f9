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

from organisms.build import GateError, build_organism, resolve_base
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
        return _build(spec, force, progress=False)


def build_zoo(specs: list[OrganismSpec], jobs: int, force: bool = False) -> list[Outcome]:
    """Build `specs` with `jobs` workers; every base they need is built first, once."""
    for base in sorted({spec.base for spec in specs}):
        resolve_base(base)
    if jobs <= 1:
        return [_report(_build(spec, force, progress=True), i, len(specs)) for i, spec in enumerate(specs, 1)]
    outcomes = []
    print(f"building {len(specs)} organisms with {jobs} workers; logs in {mesalab_home() / 'logs'}", flush=True)
    # spawn, not fork: a forked torch process may deadlock in its thread pools.
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
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
