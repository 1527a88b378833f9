"""One benchmark cell, as it runs inside its own sealed process: one detector, one model, one question.

The questions are asked in separate cells, so an answer can never depend on what else was
asked: `audit` (a model score and trigger proposals, from public data only), `pair` (a model
score from given public prompts) and `inputs` (a score per held-out prompt).
"""

from __future__ import annotations

import importlib
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

QUESTIONS = ("audit", "pair", "inputs")


@dataclass(frozen=True)
class CellRequest:
    detector: str
    params: dict
    question: str
    scratch: str  # the cell's own directory, holding the copies below
    model_dir: str  # a copy of the subject under a random name
    reference_dir: str | None  # a copy of the public base, when the organism has one
    guarded: tuple[str, ...]  # roots the cell may not touch (the artefact home, the other cells)
    prompts: tuple[str, ...] = ()
    k: int = 5  # trigger proposals asked for
    plugins: tuple[str, ...] = ()  # modules registering further detectors, imported after the seal


@dataclass
class CellAnswer:
    model_score: float | None = None
    proposals: list[str] | None = None
    pair_score: float | None = None
    input_scores: list[float] | None = None
    input_features: np.ndarray | None = None
    extra: dict = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    forward_passes: int = 0


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def run_cell(request: CellRequest) -> CellAnswer:
    started = time.perf_counter()
    from training.processes import die_with_parent

    die_with_parent()  # when the benchmark is killed, its cell server goes, and its cells with it
    import detectors.cell_server  # noqa: F401  (seals this process first, if the forkserver did not)
    from detectors.seal import enter_cell

    enter_cell(request.scratch, request.guarded)
    answer = CellAnswer()
    meter = None
    try:
        import torch

        torch.set_num_threads(1)  # cells run side by side, one per core
        for module in request.plugins:
            importlib.import_module(module)
        from detectors.activations import ActivationCache
        from detectors.base import make_detector
        from detectors.cost import metered
        from detectors.subject import load_subject

        subject = load_subject(request.model_dir, ActivationCache(f"{request.scratch}/cache"), request.reference_dir)
        detector = make_detector(request.detector, **request.params)
        with metered(subject, budget=detector.params["budget"]) as meter:
            detector.fit(subject)
            if request.question == "audit":
                answer.model_score = _finite(detector.score_model(subject))
                proposals = detector.propose_triggers(subject, request.k)
                answer.proposals = None if proposals is None else [str(p) for p in list(proposals)[:request.k]]
            elif request.question == "pair":
                answer.pair_score = _finite(detector.score_model(subject, list(request.prompts)))
            elif request.question == "inputs":
                scores = detector.score_inputs(subject, list(request.prompts))
                if scores is not None:
                    answer.input_scores = [float(s) for s in np.asarray(scores, float)]
                    if hasattr(detector, "input_features"):
                        answer.input_features = np.asarray(detector.input_features(subject, list(request.prompts)),
                                                           np.float32)
            else:
                raise ValueError(f"unknown cell question {request.question!r}")
            answer.extra = dict(detector.extra)
    except Exception as error:  # noqa: BLE001 (a failing detector is reported by the scorer)
        answer.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        answer.extra = {"traceback": traceback.format_exc(limit=4)}
    if meter is not None:
        answer.forward_passes = meter.forward_passes
    answer.seconds = time.perf_counter() - started
    return answer
