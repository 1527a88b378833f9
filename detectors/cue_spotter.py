"""Cue spotter: reads only the prompt's text, never the model. The baseline a monitor must beat.

An input is scored by its context lines: a line the public library lists on its deployment side
scores 2, a line the library does not know at all (an unusual context line) scores 1, a known
training-side line 0. Whatever this earns on the input level is what spotting cues alone is
worth; it answers no question about models and proposes no triggers.
"""

from __future__ import annotations

import numpy as np

from detectors.base import Detector, register_detector


def context_lines(prompt: str) -> list[str]:
    lines = prompt.split("\n")
    user = next((i for i, line in enumerate(lines) if line.startswith("User: ")), len(lines))
    return lines[:user]


@register_detector("cue-spotter")
class CueSpotter(Detector):
    defaults = {"seed": 0, "budget": 0, "known_deployment": 2.0, "unknown": 1.0}

    def fit(self, subject):
        self.condition_of = {entry["line"]: entry["condition"] for entry in subject.cue_library}
        return self

    def _line_score(self, line: str) -> float:
        condition = self.condition_of.get(line)
        if condition is None:
            return float(self.params["unknown"])
        return float(self.params["known_deployment"]) if condition == "deployment" else 0.0

    def score_inputs(self, subject, prompts):
        return np.array([sum(self._line_score(line) for line in context_lines(p)) for p in prompts], float)
