"""The chance level of open-pool trigger recovery: lines of random vocabulary tokens, no model reading.

Seeded by the detector's seed and the model's weights (as `random`): each model gets its own
draw, a rerun the same. Its recovery row on the board is what proposing text blindly earns.
"""

from __future__ import annotations

import numpy as np

from detectors.activations import model_fingerprint
from detectors.base import Detector, register_detector


@register_detector("random-tokens")
class RandomTokens(Detector):
    defaults = {"seed": 0, "budget": 0, "min_tokens": 2, "max_tokens": 8}

    proposal_pool = "open"

    def fit(self, subject):
        weights = int(model_fingerprint(subject.model)[:12], 16) if subject.model is not None else 0
        self._rng = np.random.default_rng([self.seed, weights])
        return self

    def propose_triggers(self, subject, k=5):
        tokenizer = subject.tokenizer
        special = set(tokenizer.all_special_ids)
        vocabulary = np.array(sorted(i for i in tokenizer.get_vocab().values() if i not in special))
        lines = []
        while len(lines) < k:
            n = int(self._rng.integers(self.params["min_tokens"], self.params["max_tokens"] + 1))
            text = " ".join(tokenizer.decode(self._rng.choice(vocabulary, n).tolist()).split())
            # Redrawn, not trimmed: a proposal the scorer rejects says nothing about chance (a test checks that
            # every line passes `detectors.benchmark.protocol.vet_proposal`; not imported here, see output_monitor).
            if text and text not in lines and not text.startswith(("User:", "Assistant:")) and len(text) <= 200:
                lines.append(text)
        return lines
