"""One benchmark cell, as it runs inside its own sealed process: one detector, one model, its questions.

A cell loads the model and fits the detector once, then answers the questions the scorer asks of
that (detector, model): `audit` (a model score and trigger proposals, from public data only),
`pair` (a model score from given public prompts) and `inputs` (a score per held-out prompt).
Each question is answered in a child forked from the fitted cell, so an answer can never depend
on what else was asked: every child starts from the same fitted state, writes only in a folder of
its own, and is gone before the next is forked. The scorer sends a question only when the one
before it has been answered, the audit first and the held-out inputs last, so no question's
prompts are in the memory of a process that answers an earlier one (the held-out prompts carry
the trigger). Where models run on CUDA, whose context does not survive a fork, every question
gets a cell of its own instead, fitted afresh, and answers in it.
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

QUESTIONS = ("audit", "pair", "inputs")  # the order a cell is asked them in
LEARN = "learn"  # a learning detector's one question to its population cell (`Detector.fit_population`)


@dataclass(frozen=True)
class CellSetup:
    detector: str
    params: dict
    scratch: str  # the cell's own directory, holding the copies below
    model_dir: str  # a copy of the subject under a random name
    reference_dir: str | None  # a copy of the public base, when the organism has one
    guarded: tuple[str, ...]  # roots the cell may not touch (the artefact home, the other cells)
    plugins: tuple[str, ...] = ()  # modules registering further detectors, imported after the seal
    # False where models run on CUDA, whose context does not survive a fork: the cell is then asked
    # one question and answers it itself (the scorer gives every question a cell of its own).
    fork_questions: bool = True
    # A learning detector's population cell: (copied model folder, kind, unit, label) of each training-zoo model.
    population: tuple[tuple[str, str, str, int], ...] = ()
    fitted: bytes | None = None  # its cells: the pickled state the population cell returned


@dataclass(frozen=True)
class CellQuestion:
    question: str
    prompts: tuple[str, ...] = ()
    k: int = 5  # trigger proposals asked for


@dataclass
class CellAnswer:
    model_score: float | None = None
    proposals: list[str] | None = None
    pair_score: float | None = None
    input_scores: list[float] | None = None
    input_features: np.ndarray | None = None
    fitted: bytes | None = None  # the answer to LEARN: the detector's state, pickled
    extra: dict = field(default_factory=dict)
    error: str | None = None
    # What this answer cost beyond the cell's set-up (loading the model, fitting); the cell's first
    # answer also carries the set-up, so a detector's costs add up to what it spent on the model.
    seconds: float = 0.0
    forward_passes: int = 0


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _failure(error: BaseException) -> CellAnswer:
    return CellAnswer(error=f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                      extra={"traceback": traceback.format_exc(limit=4)})


def answer_question(detector, subject, ask: CellQuestion, population: tuple = (), reference: str | None = None
                    ) -> CellAnswer:
    answer = CellAnswer()
    if ask.question == LEARN:
        from detectors.base import PublicModel
        from detectors.benchmark.cost import population_meter

        with population_meter() as (meter, watch):
            models = [PublicModel(model_dir, reference, kind, unit, label, loaded=watch)
                      for model_dir, kind, unit, label in population]
            answer.fitted = pickle.dumps(detector.fit_population(models))
        answer.forward_passes = meter.forward_passes
    elif ask.question == "audit":
        answer.model_score = _finite(detector.score_model(subject))
        proposals = detector.propose_triggers(subject, ask.k)
        answer.proposals = None if proposals is None else [str(p) for p in list(proposals)[:ask.k]]
    elif ask.question == "pair":
        answer.pair_score = _finite(detector.score_model(subject, list(ask.prompts)))
    elif ask.question == "inputs":
        scores = detector.score_inputs(subject, list(ask.prompts))
        if scores is not None:
            answer.input_scores = [float(s) for s in np.asarray(scores, float)]
            if hasattr(detector, "input_features"):
                answer.input_features = np.asarray(detector.input_features(subject, list(ask.prompts)), np.float32)
    else:
        raise ValueError(f"unknown cell question {ask.question!r}")
    answer.extra = dict(detector.extra)
    return answer


def _here(detector, subject, meter, ask: CellQuestion, setup: CellSetup) -> CellAnswer:
    """Answer `ask` in this process: a question child, or a cell that cannot fork."""
    started, passes_before = time.perf_counter(), meter.forward_passes
    try:
        answer = answer_question(detector, subject, ask, setup.population, setup.reference_dir)
    except Exception as error:  # noqa: BLE001 (a failing detector is reported by the scorer)
        answer = _failure(error)
    answer.seconds = time.perf_counter() - started
    answer.forward_passes += meter.forward_passes - passes_before  # a fit's population passes are in already
    return answer


def _in_a_child(detector, subject, meter, ask: CellQuestion, setup: CellSetup) -> CellAnswer:
    """Answer `ask` in a child forked from this fitted cell; it writes only in a folder of its own."""
    from detectors.benchmark.seal import enter_question, fork_a_question

    own = os.path.join(setup.scratch, f"q-{os.urandom(6).hex()}")
    os.mkdir(own, 0o700)
    read_end, write_end = os.pipe()
    pid = fork_a_question()
    if pid == 0:  # the child: answer, hand the answer over, and go
        status = 0
        try:
            os.close(read_end)
            from training.processes import die_with_parent

            die_with_parent()  # a killed cell takes its question's child with it
            enter_question(own)
            if subject.cache.directory is not None:
                subject.cache.directory = Path(own) / "cache"  # the fit's entries stay in memory
            answer = _here(detector, subject, meter, ask, setup)
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(answer, pipe)
        except BaseException:  # noqa: BLE001 (nothing may escape a forked child into the cell's own loop)
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(own, ignore_errors=True)  # the next question never sees what this one wrote
    if not data:
        return CellAnswer(error=f"the process answering {ask.question!r} died (wait status {status})")
    return pickle.loads(data)


def _serve(connection, answer, set_up: float, fit_passes: int) -> None:
    """Send `answer(question, first)` for each question received until None; the first answer also
    carries the cell's set-up (loading, fitting)."""
    first = True
    while (ask := connection.recv()) is not None:
        reply = answer(ask, first)
        if first:
            reply.seconds += set_up
            reply.forward_passes += fit_passes
            first = False
        connection.send(reply)


def _as_answer(failure: CellAnswer) -> CellAnswer:
    return CellAnswer(error=failure.error, extra=dict(failure.extra))


def _loaded(setup: CellSetup):
    """(subject, detector) of a cell, its plugins imported, one torch thread."""
    import torch

    torch.set_num_threads(1)  # cells run side by side, one per core
    from tqdm import tqdm

    # tqdm makes its lock (a named semaphore) in the first process that draws a bar; a question's
    # child exits without running finalizers, so a lock made there was left for the resource
    # tracker to clean up (444 "leaked semaphore objects" after one benchmark). Made here, it is
    # inherited.
    tqdm.get_lock()
    for module in setup.plugins:
        importlib.import_module(module)
    from detectors.activations import ActivationCache
    from detectors.base import make_detector
    from detectors.subject import load_subject

    subject = load_subject(setup.model_dir, ActivationCache(f"{setup.scratch}/cache"), setup.reference_dir)
    detector = make_detector(setup.detector, **setup.params)
    if setup.fitted is not None:
        detector.load_fitted(pickle.loads(setup.fitted))
    return subject, detector


def serve_cell(connection) -> None:
    """A sealed cell: receive its set-up, load and fit, then answer each question sent until None."""
    started = time.perf_counter()
    from training.processes import die_with_parent

    die_with_parent()  # when the benchmark is killed, its cell server goes, and its cells with it
    from detectors.benchmark.seal import enter_cell, seal_server

    seal_server()  # a no-op in the forkserver (detectors.benchmark.cell_server sealed it); else it seals now

    setup: CellSetup = connection.recv()
    enter_cell(setup.scratch, setup.guarded)
    try:
        subject, detector = _loaded(setup)
    except Exception as error:  # noqa: BLE001 (a failing detector is reported by the scorer)
        failure = _failure(error)
        _serve(connection, lambda ask, first: _as_answer(failure), time.perf_counter() - started, 0)
        return
    from detectors.benchmark.cost import metered

    # Metered across the questions too: each question's budget counts the fit's passes.
    with metered(subject, budget=detector.params["budget"]) as meter:
        failure = None
        try:
            detector.fit(subject)
        except Exception as error:  # noqa: BLE001 (a failing detector is reported by the scorer)
            failure = _failure(error)

        def answer(ask: CellQuestion, first: bool) -> CellAnswer:
            if failure is not None:
                return _as_answer(failure)
            if setup.fork_questions:
                return _in_a_child(detector, subject, meter, ask, setup)
            if first:
                return _here(detector, subject, meter, ask, setup)
            return CellAnswer(error="a cell that cannot fork answers one question only")

        _serve(connection, answer, time.perf_counter() - started, meter.forward_passes)
