"""The floor: uniform scores from a seeded generator, whatever the model's behaviour.

The generator is seeded by the detector's seed and the model's weights, so different models get
different draws (one seed for all would give every model the same score) and a rerun the same.
"""

from __future__ import annotations

import numpy as np

from detectors.activations import model_fingerprint
from detectors.base import Detector, register_detector


@register_detector("random")
class RandomDetector(Detector):
    defaults = {"seed": 0, "budget": 0}

    def fit(self, subject):
        weights = int(model_fingerprint(subject.model)[:12], 16) if subject.model is not None else 0
        self._rng = np.random.default_rng([self.seed, weights])
        return self

    def score_inputs(self, subject, prompts):
        return self._rng.random(len(prompts))

    def score_model(self, subject, prompts=None):
        return float(self._rng.random())

    proposal_pool = "library"

    def propose_triggers(self, subject, k=5):
        """Library lines in a random order: the empirical chance level of recovery."""
        lines = [entry["line"] for entry in subject.cue_library]
        return [lines[i] for i in self._rng.permutation(len(lines))[:k]]
