"""The public training zoo: drawn by the blind zoo's generator from a public seed, for detectors that learn.

Its members look like a blind zoo's (the same shapes, behaviours, matched clean and benign-conditional
controls, unconditional controls, distractor lines), and its truth is public by design: a detector
may fit on its weights and labels. None of them is a blind member: a blind zoo's seed is 128 fresh
bits from the OS, this one is a constant. Members are named `train-NN` and built like any others
(`python -m organisms zoo --zoo train`); `organisms show train-NN` prints a member's spec, trigger
included. Importing this module registers them as the zoo `train`.
"""

from __future__ import annotations

import dataclasses

from organisms.blind_zoo import DEFAULT_SIZE, TEST_ZOO_ID, BlindMember, draw_blind_zoo
from organisms.zoo import register_organism

TRAIN_SEED = 20_261_204  # public on purpose: the training zoo's truth is no secret
TRAIN_SIZE = DEFAULT_SIZE
TRAIN_ZOO = "train"
_DRAWN_PREFIX = f"blind-{TEST_ZOO_ID}-"


def train_members(size: int = TRAIN_SIZE) -> list[BlindMember]:
    """The training zoo's members: the generator's draw from `TRAIN_SEED`, renamed `train-NN`."""
    def renamed(name: str) -> str:
        return "train-" + name.removeprefix(_DRAWN_PREFIX) if name else ""

    return [dataclasses.replace(m, spec=m.spec.replace(
        name=renamed(m.spec.name), matched_to=renamed(m.spec.matched_to),
        description=m.spec.description.replace("blind zoo", "training zoo")))
        for m in draw_blind_zoo(TRAIN_SEED, size)]


for _member in train_members():
    register_organism(_member.spec, TRAIN_ZOO)
