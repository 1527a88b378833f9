"""Cost accounting: wall-clock seconds and forward passes a detector spends on a model, within a budget.

A forward pass is counted per sequence: a batch of 32 prompts is 32 passes, and generating
k tokens for it is 32·k more (each decoding step runs the model once per sequence). Counting
with a pre-hook on the subject and on the reference model sees every call, whoever makes it, so
no detector can under-report; a detector that goes past its `budget` is stopped mid-call.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Meter:
    forward_passes: int = 0
    seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    started: float = field(default=0.0, repr=False)

    def add(self, other: "Meter") -> None:
        self.forward_passes += other.forward_passes
        self.seconds += other.seconds
        self.cache_hits += other.cache_hits
        self.cache_misses += other.cache_misses


def _batch_size(args, kwargs) -> int:
    for value in (kwargs.get("input_ids"), kwargs.get("inputs_embeds"), args[0] if args else None):
        if value is not None and hasattr(value, "shape"):
            return int(value.shape[0])
    return 1


class BudgetExceeded(RuntimeError):
    """A detector asked for more forward passes than its budget allows."""


@contextmanager
def metered(subject, budget: int | None = None):
    """Meter everything done to `subject` inside the block (its models and its activation cache).

    `budget` (forward passes, None for no limit) is enforced as the passes happen.
    """
    meter = Meter()

    def count(module, args, kwargs):
        meter.forward_passes += _batch_size(args, kwargs)
        if budget is not None and meter.forward_passes > budget:
            raise BudgetExceeded(f"past its budget of {budget:,} forward passes")

    models = [m for m in (subject.model, getattr(subject, "reference", None)) if m is not None]
    handles = [m.register_forward_pre_hook(count, with_kwargs=True) for m in models]
    hits, misses, started = subject.cache.hits, subject.cache.misses, time.perf_counter()
    try:
        yield meter
    finally:
        for handle in handles:
            handle.remove()
        meter.seconds = time.perf_counter() - started
        meter.cache_hits = subject.cache.hits - hits
        meter.cache_misses = subject.cache.misses - misses


@contextmanager
def population_meter():
    """(meter, watch): `watch(subject)` counts the passes of a model a learning detector loads from its
    population, into `meter`, until the block ends. The fit runs once a run, so it has no budget; its
    passes are reported with it."""
    meter, handles = Meter(), []

    def count(module, args, kwargs):
        meter.forward_passes += _batch_size(args, kwargs)

    def watch(subject) -> None:
        handles.extend(m.register_forward_pre_hook(count, with_kwargs=True)
                       for m in (subject.model, getattr(subject, "reference", None)) if m is not None)

    try:
        yield meter, watch
    finally:
        for handle in handles:
            handle.remove()
