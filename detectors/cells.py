"""Running benchmark cells: each in a fresh, sealed process that sees a copy of one model under a random name.

The scorer prepares a private directory per cell (the model and the public base copied in under
random names), submits the cell to a
pool whose workers are forked, one per cell, from the sealed cell server, and deletes the
directory when the answer is back. Cells run in an order shuffled per run, one per core.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import shutil
import tempfile
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from detectors.cell_task import CellAnswer, CellRequest, run_cell

CELL_SERVER = "detectors.cell_server"


@dataclass(frozen=True)
class CellJob:
    """What the scorer asks, before the cell's directory exists: paths here are the real ones."""
    key: tuple
    detector: str
    params: dict
    question: str
    model_dir: str
    reference_dir: str | None
    prompts: tuple[str, ...] = ()
    k: int = 5


class CellPool:
    """Fresh sealed processes for cells; use as a context manager."""

    def __init__(self, jobs: int, guarded: Iterable[str | Path], plugins: tuple[str, ...] = ()):
        self.jobs = max(1, jobs)
        self.plugins = plugins
        self.root = Path(tempfile.mkdtemp(prefix="mesalab-cells-"))
        os.chmod(self.root, 0o711)  # other cells can pass through, never list it
        self.guarded = tuple(str(Path(p).resolve()) for p in guarded) + (str(self.root.resolve()),)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([CELL_SERVER])
        self.pool = ProcessPoolExecutor(self.jobs, mp_context=context, max_tasks_per_child=1)

    def __enter__(self) -> "CellPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def _prepare(self, job: CellJob) -> tuple[CellRequest, Path]:
        scratch = self.root / secrets.token_hex(8)
        scratch.mkdir(mode=0o700)
        model = scratch / secrets.token_hex(6)
        shutil.copytree(job.model_dir, model)
        reference = None
        if job.reference_dir:
            reference = scratch / secrets.token_hex(6)
            shutil.copytree(job.reference_dir, reference)
        request = CellRequest(detector=job.detector, params=job.params, question=job.question, scratch=str(scratch),
                              model_dir=str(model), reference_dir=str(reference) if reference else None,
                              guarded=self.guarded, prompts=job.prompts, k=job.k, plugins=self.plugins)
        return request, scratch

    def run(self, jobs: Iterable[CellJob]) -> Iterator[tuple[CellJob, CellAnswer]]:
        """Answers as they come, with at most two prepared cells per worker at a time (copies take disk)."""
        pending: dict[Future, tuple[CellJob, Path]] = {}
        queue = iter(jobs)
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < 2 * self.jobs:
                job = next(queue, None)
                if job is None:
                    exhausted = True
                    break
                request, scratch = self._prepare(job)
                pending[self.pool.submit(run_cell, request)] = (job, scratch)
            if not pending:
                break
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                job, scratch = pending.pop(future)
                shutil.rmtree(scratch, ignore_errors=True)
                try:
                    answer = future.result()
                except Exception as error:  # noqa: BLE001 (a cell process that died is reported, not fatal)
                    answer = CellAnswer(error=f"cell process failed: {type(error).__name__}: {error}")
                yield job, answer
