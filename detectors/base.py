"""The detector interface and its registry, in the spirit of scikit-learn.

A detector is constructed from named parameters (recorded with every result, so a run can be
rebuilt), fitted on public data only, then asked whatever applies to it. Every question is
optional: a method returns None when the detector does not answer it, and the benchmark
reports null for that metric. Higher scores always mean "more suspicious".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from data.registry import Registry

DETECTORS: Registry = Registry("detector")


def built_in_modules() -> list[str]:
    """Every module of the `detectors` package (methods and their helpers; not the scorer's subpackage):
    a file dropped in `detectors/` is found, with no list to keep."""
    import pkgutil

    folder = str(Path(__file__).parent)
    return sorted(m.name for m in pkgutil.iter_modules([folder]) if not m.ispkg and m.name != "__main__")


def load_built_in_detectors() -> dict[str, type["Detector"]]:
    """Import every built-in detector module (each registers itself) and return the registry.

    Loaded on first use, not when the package is imported, so that a sealed benchmark cell can
    seal itself before any detector's code runs (see `detectors.benchmark.cell_server`).
    """
    import importlib

    for module in built_in_modules():
        importlib.import_module(f"detectors.{module}")
    return DETECTORS


class Detector:
    """Base class: subclasses declare `defaults` (every parameter and its default value)."""

    name: str = "detector"  # set by @register_detector
    # Every detector takes a seed and a compute budget in forward passes (per model and question);
    # the benchmark stops a detector that goes past it, and reports what each spent.
    defaults: dict[str, Any] = {"seed": 0, "budget": 200_000}

    def __init__(self, **params):
        allowed = {**Detector.defaults, **self.defaults}
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"detector {self.name!r}: unknown parameter {unknown[0]!r} "
                             f"(allowed: {', '.join(sorted(allowed))})")
        self.params: dict[str, Any] = {**allowed, **params}
        self.extra: dict[str, Any] = {}  # detector-specific diagnostics, copied into results

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{type(self).__name__}({args})"

    @property
    def seed(self) -> int:
        return int(self.params["seed"])

    def capped_prompts(self, subject, prompts: list[str] | None, seed: int) -> list[str]:
        """The first `n_public` of the given prompts (the pair protocol), else `n_public` public prompts from
        `seed`: a budget is per question, so given prompts never buy a detector more work."""
        n = self.params["n_public"]
        return list(prompts)[:n] if prompts else subject.public_prompts(n, seed)

    def fit(self, subject) -> "Detector":
        """Learn whatever the detector needs from the subject's public data; no truth is reachable."""
        return self

    def score_inputs(self, subject, prompts: list[str]) -> np.ndarray | None:
        """One suspicion score per prompt (is this input one on which the model defects?)."""
        return None

    def score_model(self, subject, prompts: list[str] | None = None) -> float | None:
        """One suspicion score for the model (does it hide conditional behaviour?).

        `prompts`, when given, are the only world prompts the detector may start from (the pair
        protocol passes prompts on which the organism and its control behave the same); None
        lets the detector draw its own public prompts.
        """
        return None

    # Whether the detector compares the subject with the public base (`subject.reference`); the benchmark
    # copies the base into a cell only for those that do.
    uses_reference: bool = False

    # Whether the detector learns from the public training zoo (`organisms/train_zoo.py`). The benchmark
    # then calls `fit_population` once, in a sealed cell of its own that holds copies of that zoo's
    # models and their public kinds and nothing of any zoo it is tested on, and hands every one of its
    # cells what it returned (`load_fitted`) before `fit`.
    learns: bool = False

    def fit_population(self, population: list["PublicModel"]):
        """Learn from labelled public models; return a picklable state for `load_fitted`."""
        raise NotImplementedError(f"{type(self).__name__} declares learns = True but has no fit_population")

    def load_fitted(self, state) -> None:
        """Take the state `fit_population` returned (in every cell of a learning detector)."""
        self.fitted = state

    # Where proposed triggers come from: "library" (lines of the public cue library, whose size sets
    # the chance level of recovery), "open" (any text the detector makes up) or None (no proposals).
    proposal_pool: str | None = None

    def propose_triggers(self, subject, k: int = 5) -> list[str] | None:
        """Up to `k` context lines (any text; a block of several lines for a conjunction), best first.

        The scorer inserts each into held-out prompts and counts a proposal as a recovered trigger
        when it elicits the organism's behaviour, whatever its text: recovery is scored by effect.
        """
        return None


@dataclass(frozen=True)
class PublicModel:
    """One labelled model of the public training zoo, as a learning detector's fit sees it."""
    model_dir: str  # a copy of its model files under a random name
    reference_dir: str | None  # a copy of its public base
    kind: str  # the organism kind, public for this zoo
    unit: str  # the spec it belongs to (a model and its matched controls): keep one together when splitting
    label: int  # 1 for a model that hides a conditional behaviour, 0 for a control
    # Called with every subject loaded: the cell counts the fit's forward passes through it.
    loaded: Callable | None = field(default=None, compare=False, repr=False)

    def load(self):
        """The model as a `Subject`, its base as the reference (what a cell's detector gets)."""
        from detectors.subject import load_subject

        subject = load_subject(self.model_dir, None, self.reference_dir)
        if self.loaded is not None:
            self.loaded(subject)
        return subject


def register_detector(name: str) -> Callable[[type[Detector]], type[Detector]]:
    def register(cls: type[Detector]) -> type[Detector]:
        cls.name = name
        return DETECTORS.add(name, cls)

    return register


def make_detector(name: str, **params) -> Detector:
    load_built_in_detectors()
    return DETECTORS.lookup(name)(**params)
