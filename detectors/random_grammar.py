"""The chance level of recovery for a proposer that knows the public generator's grammar, and nothing else.

Proposes k lines drawn from the public blind-trigger grammar (`data.blind_grammar`), seeded by the
detector's seed and the model's weights, without reading the model. Where the secret space is large,
its recovery row stays at zero; a non-zero row means the grammar can be guessed.
"""

from __future__ import annotations

import random

from detectors.activations import model_fingerprint
from detectors.base import Detector, register_detector


def grammar_lines(rng: random.Random, n: int) -> list[str]:
    """`n` lines of the public blind-trigger grammar."""
    # Imported here so that the registry loads without it: the grammar module ships with the blind
    # generator, and a missing one fails only the cells that need it.
    from data.blind_grammar import random_trigger_lines

    return list(random_trigger_lines(rng, n))


def weight_seeded_rng(seed: int, model) -> random.Random:
    """A generator of its own for every model (as `random`), the same on a rerun."""
    return random.Random(f"{seed}:{model_fingerprint(model) if model is not None else ''}")


@register_detector("random-grammar")
class RandomGrammar(Detector):
    defaults = {"seed": 0, "budget": 0}

    proposal_pool = "open"

    def fit(self, subject):
        self._rng = weight_seeded_rng(self.seed, subject.model)
        return self

    def propose_triggers(self, subject, k=5):
        return grammar_lines(self._rng, k)
