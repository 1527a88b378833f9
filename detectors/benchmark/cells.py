"""Running benchmark cells: each in a fresh, sealed process that sees a copy of one model under a random name.

A cell is one detector on one model. The scorer prepares a private directory per cell (the model
and the public base copied in under random names), starts the cell in a process forked from the
sealed cell server, and asks it the questions of that (detector, model) one at a time, each once
the one before is answered (`detectors.benchmark.cell_task` says why); the directory is deleted when the
cell is done. Cells run in an order shuffled per run, one per core.
"""

from __future__ import annotations

import fnmatch
import json
import multiprocessing
import multiprocessing.forkserver
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Iterable, Iterator

from detectors.benchmark.cell_task import QUESTIONS, CellAnswer, CellQuestion, CellSetup, serve_cell
from detectors.benchmark.seal import cell_environment_only

CELL_SERVER = "detectors.benchmark.cell_server"
# What `load_subject` reads of a model folder (`save_pretrained` of the model and of its tokenizer,
# plus the names other tokenizers and sharded weights use). Anything else, the model card above all
# (it lists per-family accuracy, steps and rows), says how the organism was built, not what it is.
MODEL_FILES = ("*.safetensors", "model.safetensors.index.json", "config.json", "generation_config.json",
               "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
               "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json")
# Every copied file and folder gets these times and modes: a build's times would order a control
# after its backdoor. Ownership needs nothing: the scorer's user makes every copy. (A file's ctime,
# inode and, once the cell reads it, atime still say when the cell was prepared and ran; the order
# of cells is shuffled every run, so they say nothing of the model.)
FIXED_TIME_NS = 946_684_800 * 10**9  # 2000-01-01 00:00 UTC
FILE_MODE, FOLDER_MODE = 0o400, 0o700  # the folder stays writable by its owner so the scorer can delete it


def copy_model_files(source: str | Path, target: Path) -> Path:
    """The allowlisted files of the model folder `source` into a new folder `target`, times and modes fixed."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"model directory {str(source)!r} does not exist")
    target.mkdir(mode=FOLDER_MODE)
    names = sorted(p.name for p in source.iterdir()
                   if p.is_file() and any(fnmatch.fnmatchcase(p.name, pattern) for pattern in MODEL_FILES))
    for name in names:  # in sorted order: a folder's listing order then never depends on the source's
        shutil.copyfile(source / name, target / name)  # the bytes only: no times, mode or owner
        os.chmod(target / name, FILE_MODE)
        os.utime(target / name, ns=(FIXED_TIME_NS, FIXED_TIME_NS))
    os.chmod(target, FOLDER_MODE)
    os.utime(target, ns=(FIXED_TIME_NS, FIXED_TIME_NS))  # last: adding files moved it
    return target


def start_cell_server() -> None:
    """Start (or restart, if it died) the forkserver every cell is forked from, with the cells'
    allowlisted environment: a process's /proc/self/environ keeps the environment it was started with,
    whatever it later does to os.environ."""
    with cell_environment_only():
        # The forkserver is one per process, started by the first process start of the context;
        # starting it here, in the allowlist, makes that first start ours.
        multiprocessing.forkserver.ensure_running()


@dataclass(frozen=True)
class CellJob:
    """One question the scorer asks, before the cell's directory exists: paths here are the real ones."""
    key: tuple
    detector: str
    params: dict
    question: str
    model_dir: str
    reference_dir: str | None
    prompts: tuple[str, ...] = ()
    k: int = 5
    population: tuple[tuple[str, str, str, int], ...] = ()  # a LEARN job: (model folder, kind, unit, label) of each
    fitted: bytes | None = None  # a learning detector's other jobs: the state its LEARN job returned

    def ask(self) -> CellQuestion:
        return CellQuestion(question=self.question, prompts=self.prompts, k=self.k)


def cells_of(jobs: Iterable[CellJob], share_fit: bool = True) -> list[list[CellJob]]:
    """The jobs as cells: one per (detector, parameters, model), in the order their first jobs come,
    each cell's questions in `QUESTIONS` order. A cell asks each question once: a job repeating one
    (the same question and prompts) opens a cell of its own. Without `share_fit`, a cell per job."""
    if not share_fit:
        return [[job] for job in jobs]
    cells: list[list[CellJob]] = []
    open_cells: dict[tuple, list[list[CellJob]]] = {}
    for job in jobs:
        same = (job.detector, json.dumps(job.params, sort_keys=True, default=str), job.model_dir, job.reference_dir)
        asked = (job.question, job.prompts)
        cell = next((c for c in open_cells.get(same, []) if all((j.question, j.prompts) != asked for j in c)), None)
        if cell is None:
            cell = []
            cells.append(cell)
            open_cells.setdefault(same, []).append(cell)
        cell.append(job)
    order = {question: i for i, question in enumerate(QUESTIONS)}
    return [sorted(cell, key=lambda j: order.get(j.question, len(order))) for cell in cells]


@dataclass
class _Running:
    process: multiprocessing.Process
    scratch: Path
    jobs: list[CellJob]
    at: int = 0  # the job whose answer is awaited


class CellPool:
    """Fresh sealed processes for cells; use as a context manager."""

    def __init__(self, jobs: int, guarded: Iterable[str | Path], plugins: tuple[str, ...] = (),
                 share_fit: bool | None = None):
        from training.models import model_device

        self.jobs = max(1, jobs)
        self.plugins = plugins
        # A cell answers its questions in forked children, and a CUDA context does not survive a fork:
        # where cells put their models on the GPU, each question gets a cell (and a fit) of its own.
        self.share_fit = model_device() != "cuda" if share_fit is None else share_fit
        self.root = Path(tempfile.mkdtemp(prefix="mesalab-cells-"))
        os.chmod(self.root, 0o711)  # other cells can pass through, never list it
        self.guarded = tuple(str(Path(p).resolve()) for p in guarded) + (str(self.root.resolve()),)
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload([CELL_SERVER])
        start_cell_server()
        self.running: dict = {}

    def __enter__(self) -> "CellPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for connection in list(self.running):
            self._stop(connection)
        shutil.rmtree(self.root, ignore_errors=True)

    def _prepare(self, job: CellJob) -> tuple[CellSetup, Path]:
        scratch = self.root / secrets.token_hex(8)
        scratch.mkdir(mode=0o700)
        model = copy_model_files(job.model_dir, scratch / secrets.token_hex(6))
        reference = None
        if job.reference_dir:
            reference = copy_model_files(job.reference_dir, scratch / secrets.token_hex(6))
        # A population's models come in under random names, in a shuffled order: neither says what they are.
        population = [(str(copy_model_files(model_dir, scratch / secrets.token_hex(6))), kind, unit, label)
                      for model_dir, kind, unit, label in job.population]
        secrets.SystemRandom().shuffle(population)
        setup = CellSetup(detector=job.detector, params=job.params, scratch=str(scratch), model_dir=str(model),
                          reference_dir=str(reference) if reference else None, guarded=self.guarded,
                          plugins=self.plugins, fork_questions=self.share_fit, population=tuple(population),
                          fitted=job.fitted)
        return setup, scratch

    def _start(self, jobs: list[CellJob]) -> None:
        setup, scratch = self._prepare(jobs[0])
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=serve_cell, args=(theirs,), daemon=True)
        start_cell_server()  # a no-op while it runs; a dead one restarts in the allowlist
        process.start()
        theirs.close()
        self.running[ours] = _Running(process, scratch, jobs)
        ours.send(setup)
        ours.send(jobs[0].ask())

    def _stop(self, connection) -> None:
        cell = self.running.pop(connection)
        try:
            connection.send(None)
        except OSError:
            pass
        cell.process.join(timeout=10)
        if cell.process.is_alive():
            cell.process.kill()
            cell.process.join()
        connection.close()
        shutil.rmtree(cell.scratch, ignore_errors=True)

    def run(self, jobs: Iterable[CellJob]) -> Iterator[tuple[CellJob, CellAnswer]]:
        """Answers as they come, from at most `jobs` cells at a time."""
        queue = iter(cells_of(jobs, self.share_fit))
        exhausted = False
        while self.running or not exhausted:
            while not exhausted and len(self.running) < self.jobs:
                cell = next(queue, None)
                if cell is None:
                    exhausted = True
                else:
                    self._start(cell)
            if not self.running:
                break
            for connection in wait(list(self.running)):
                cell = self.running[connection]
                try:
                    answers = [connection.recv()]
                except (EOFError, OSError):  # a cell process that died is reported, not fatal
                    cell.process.join(timeout=10)
                    error = f"cell process failed: it died (exit code {cell.process.exitcode})"
                    answers = [CellAnswer(error=error) for _ in cell.jobs[cell.at:]]
                for job, answer in zip(cell.jobs[cell.at:], answers):
                    yield job, answer
                cell.at += len(answers)
                if cell.at < len(cell.jobs):
                    connection.send(cell.jobs[cell.at].ask())
                else:
                    self._stop(connection)
