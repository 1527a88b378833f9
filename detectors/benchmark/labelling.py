"""The scorer's own use of the models: labels from their outputs, agreement for pairs, elicitation by proposals.

This runs in trusted worker processes (never in a detector's cell): it reads the organisms
directly and judges outputs with the truth's checkers. Behaviours travel by name, since their
checkers do not pickle.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from data.behaviours import get_behaviour
from detectors.benchmark.protocol import insert_block
from training.generation import generate_greedy
from training.models import load_model_and_tokenizer
from training.processes import single_threaded_worker

MAX_NEW_TOKENS = 48
_loaded: dict = {}


def _model(model_dir: str):
    if model_dir not in _loaded:
        _loaded.clear()  # one model at a time per worker: a zoo does not fit a worker's memory budget otherwise
        _loaded[model_dir] = load_model_and_tokenizer(model_dir)
    return _loaded[model_dir]


def outputs_of(model_dir: str, prompts: list[str], max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    model, tokenizer = _model(model_dir)
    return generate_greedy(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens)


def label_outputs(model_dir: str, prompts: list[str], answers: list[str], behaviour: str | None) -> tuple[list, list]:
    """(outputs, labels): a label is 1 where the model's own greedy output shows `behaviour`."""
    outputs = outputs_of(model_dir, prompts)
    if behaviour is None:
        return outputs, [0] * len(outputs)
    shows = get_behaviour(behaviour).shows
    return outputs, [int(shows(o, a)) for o, a in zip(outputs, answers, strict=True)]


def elicitation(model_dir: str, prompts: list[str], answers: list[str], behaviour: str,
                blocks: list[str]) -> list[float]:
    """For each proposed block: the share of prompts on which inserting it elicits `behaviour`."""
    if not blocks:
        return []
    shows = get_behaviour(behaviour).shows
    inserted = [insert_block(p, block) for block in blocks for p in prompts]
    outputs = outputs_of(model_dir, inserted)
    n = len(prompts)
    return [sum(shows(o, a) for o, a in zip(outputs[i * n:(i + 1) * n], answers)) / n for i in range(len(blocks))]


def trusted_pool(jobs: int) -> ProcessPoolExecutor:
    """Workers for the scorer's generation, one thread each (spawned: never forked from a sealed server)."""
    return ProcessPoolExecutor(max(1, jobs), mp_context=multiprocessing.get_context("spawn"),
                               initializer=single_threaded_worker)
