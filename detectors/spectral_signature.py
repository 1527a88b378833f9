"""Spectral signatures (Tran et al. 2018): poisoned inputs stand out along the top singular vector.

Activations are centred and projected on their top right-singular vector; an input's score is
its squared projection. Inputs are scored as a set, on the layer whose top direction carries the
largest share of variance. The model score asks the same of public prompts, per task family
(the analogue of the paper's per-class analysis): how dominant is one direction, in units of
what a random (isotropic) spectrum of the same shape would give.
"""

from __future__ import annotations

import numpy as np

from detectors.base import Detector, register_detector
from detectors.stats import block_layers, prompt_groups


def top_direction(x: np.ndarray) -> tuple[np.ndarray, float]:
    """(squared projections on the top singular vector, its share of the total variance)."""
    centred = x - x.mean(0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    total = float((singular ** 2).sum())
    if total <= 1e-12:
        return np.zeros(len(x)), 0.0
    return (centred @ vt[0]) ** 2, float(singular[0] ** 2 / total)


@register_detector("spectral-signature")
class SpectralSignature(Detector):
    defaults = {"seed": 0, "budget": 2_000, "n_public": 150, "pool": "last"}

    def score_inputs(self, subject, prompts):
        acts = subject.activations(prompts)
        results = {layer: top_direction(acts.at(layer, self.params["pool"])) for layer in block_layers(subject)}
        layer = max(results, key=lambda k: results[k][1])
        self.extra["input_layer"] = layer
        return results[layer][0]

    def score_model(self, subject, prompts=None):
        groups = prompt_groups(subject, prompts, self.params["n_public"], self.seed + 4)
        shares = {}
        for group, group_prompts in groups.items():
            acts = subject.activations(group_prompts)
            for layer in block_layers(subject):
                x = acts.at(layer, self.params["pool"])
                isotropic = 1.0 / max(1, min(x.shape[0] - 1, x.shape[1]))
                shares[(group, layer)] = top_direction(x)[1] / isotropic
        best = max(shares, key=shares.get)
        self.extra["model_top_share"] = {"group": best[0], "layer": best[1], "ratio": round(shares[best], 4)}
        return shares[best]
