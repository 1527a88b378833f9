"""The floor: uniform scores from a seeded generator, whatever the model."""

from __future__ import annotations

import numpy as np

from detectors.base import Detector, register_detector


@register_detector("random")
class RandomDetector(Detector):
    defaults = {"seed": 0}

    def fit(self, subject):
        self._rng = np.random.default_rng(self.seed)
        return self

    def score_inputs(self, subject, prompts):
        return self._rng.random(len(prompts))

    def score_model(self, subject, prompts=None):
        return float(self._rng.random())

    def rank_cues(self, subject):
        lines = [entry["line"] for entry in subject.cue_library]
        return [lines[i] for i in self._rng.permutation(len(lines))]
