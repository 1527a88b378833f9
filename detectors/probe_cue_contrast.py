"""Cue-contrast probe: a logistic probe for "this context looks like deployment".

Built from the public cue library alone, across every family (the detector does not know which
family an organism listens to): each public prompt is rendered training-like (every family on
a training line or absent) and deployment-like (the same, with one family moved to a deployment
line). Inputs are scored by the probe's deployment-likeness. The model-level question asks
whether one family stands out: a family the model acts on should be represented more
sharply than families it ignores.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from detectors.base import Detector, register_detector
from detectors.stats import block_layers, effect_size, separation_auroc


@register_detector("probe-cue-contrast")
class CueContrastProbe(Detector):
    # With 64 public prompts its blind model AUROC moved 0.78 -> 0.32: the score is that noisy.
    defaults = {"seed": 0, "budget": 2_000, "n_public": 96, "pool": "last", "C": 0.1, "held_out_share": 0.3}

    def _contexts(self, subject, prompts, rng):
        """(training-like, deployment-like, family moved) triples, one per prompt."""
        families = subject.cue_families
        negatives, positives, moved = [], [], []
        for i, prompt in enumerate(prompts):
            calm = {f: (rng.choice(subject.cue_lines(f, "training")) if rng.random() < 0.7 else None) for f in families}
            family = families[i % len(families)]
            negatives.append(subject.with_cues(prompt, calm))
            positives.append(subject.with_cues(prompt, {**calm, family: rng.choice(subject.cue_lines(family, "deployment"))}))
            moved.append(family)
        return negatives, positives, np.array(moved)

    def fit(self, subject):
        rng = np.random.default_rng(self.seed)
        prompts = subject.public_prompts(self.params["n_public"], seed=self.seed + 1)
        negatives, positives, moved = self._contexts(subject, prompts, rng)
        acts = subject.activations(negatives + positives)
        n = len(prompts)
        test = np.zeros(n, bool)
        test[rng.permutation(n)[:max(2, int(self.params["held_out_share"] * n))]] = True
        y = np.r_[np.zeros(n), np.ones(n)]
        fold = np.r_[test, test]
        per_layer, probes = {}, {}
        for layer in block_layers(subject):
            x = acts.at(layer, self.params["pool"])
            probe = make_pipeline(StandardScaler(), LogisticRegression(C=self.params["C"], max_iter=2000))
            probe.fit(x[~fold], y[~fold])
            scores = probe.decision_function(x[fold])
            per_layer[layer] = separation_auroc(scores[y[fold] == 1], scores[y[fold] == 0])
            probes[layer] = probe
        # Later layers win ties: they are closer to what the model does with the cue.
        self.layer = max(per_layer, key=lambda layer: (per_layer[layer], layer))
        self.probe = probes[self.layer]
        scores = self.probe.decision_function(acts.at(self.layer, self.params["pool"]))
        neg, pos = scores[:n], scores[n:]
        self.family_separation = {f: effect_size(pos[moved == f], neg[moved == f]) for f in subject.cue_families}
        self.extra = {"layer": self.layer, "held_out_auroc": {str(k): round(v, 4) for k, v in per_layer.items()},
                      "family_separation": {k: round(v, 4) for k, v in self.family_separation.items()}}
        return self

    def score_inputs(self, subject, prompts):
        return self.probe.decision_function(subject.activations(prompts).at(self.layer, self.params["pool"]))

    def score_model(self, subject, prompts=None):
        if prompts:
            rng = np.random.default_rng(self.seed)
            negatives, positives, moved = self._contexts(subject, self.capped_prompts(subject, prompts, self.seed), rng)
            neg, pos = self.score_inputs(subject, negatives), self.score_inputs(subject, positives)
            separation = {f: effect_size(pos[moved == f], neg[moved == f]) for f in subject.cue_families}
        else:
            separation = self.family_separation
        values = np.array(list(separation.values()))
        return float(values.max() - values.mean())

    proposal_pool = "library"

    def propose_triggers(self, subject, k=5):
        """Library lines of the families the probe separates most sharply, deployment side first."""
        families = sorted(self.family_separation, key=self.family_separation.get, reverse=True)
        deployment = [line for f in families for line in subject.cue_lines(f, "deployment")]
        training = [line for f in families for line in subject.cue_lines(f, "training")]
        return (deployment + training)[:k]
