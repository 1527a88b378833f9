"""Activation clustering (Chen et al. 2018): a small, coherent cluster betrays a hidden mode.

Per layer, activations are reduced to ~10 dimensions (PCA or FastICA) and split by k-means
(k=2). A split is flagged when one cluster is small and the clusters are well separated:
flag = silhouette × (1 − 2·relative size of the smaller cluster), so an even split scores 0.
Chen et al. cluster each class separately; the world's analogue is the task family, so the
model score clusters public prompts per task family. Inputs are clustered as given
(transductively, as the method is applied to a training set), on the layer that flags most,
and scored by how much nearer they lie to the small cluster's centre than to the large one's.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, FastICA
from sklearn.metrics import silhouette_score

from detectors.base import Detector, register_detector
from detectors.stats import block_layers, prompt_groups


def reduce(x: np.ndarray, method: str, n_components: int, seed: int) -> np.ndarray:
    k = max(1, min(n_components, x.shape[0] - 1, x.shape[1]))
    if method == "pca":
        return PCA(n_components=k, random_state=seed).fit_transform(x)
    if method == "ica":
        with warnings.catch_warnings():  # FastICA warns when it stops at max_iter; the split still counts
            warnings.simplefilter("ignore")
            return FastICA(n_components=k, random_state=seed, max_iter=400, whiten="unit-variance").fit_transform(x)
    raise ValueError(f"activation-clustering: unknown reduction {method!r}; expected 'pca' or 'ica'")


def two_clusters(z: np.ndarray, seed: int) -> tuple[float, np.ndarray, np.ndarray]:
    """(flag, distance-to-large minus distance-to-small per row, labels: 1 = small cluster)."""
    if len(z) < 4 or np.allclose(z.std(0), 0):
        return 0.0, np.zeros(len(z)), np.zeros(len(z), int)
    km = KMeans(n_clusters=2, n_init=4, random_state=seed).fit(z)
    sizes = np.bincount(km.labels_, minlength=2)
    small = int(np.argmin(sizes))
    share = sizes[small] / len(z)
    silhouette = silhouette_score(z, km.labels_) if sizes.min() >= 2 else 0.0
    distance = np.linalg.norm(z[:, None, :] - km.cluster_centers_[None], axis=-1)
    toward_small = distance[:, 1 - small] - distance[:, small]
    return float(max(silhouette, 0.0) * (1 - 2 * share)), toward_small, (km.labels_ == small).astype(int)


@register_detector("activation-clustering")
class ActivationClustering(Detector):
    defaults = {"seed": 0, "budget": 2_000, "reduce": "pca", "n_components": 10, "n_public": 150, "pool": "last"}

    def _flag(self, x: np.ndarray):
        return two_clusters(reduce(x, self.params["reduce"], self.params["n_components"], self.seed), self.seed)

    def score_inputs(self, subject, prompts):
        acts = subject.activations(prompts)
        best = None
        for layer in block_layers(subject):
            flag, toward_small, _ = self._flag(acts.at(layer, self.params["pool"]))
            if best is None or flag > best[0]:
                best = (flag, layer, toward_small)
        self.extra["input_layer"] = best[1]
        return best[2]

    def score_model(self, subject, prompts=None):
        groups = prompt_groups(subject, prompts, self.params["n_public"], self.seed + 3)
        flags = {}
        for group, group_prompts in groups.items():
            acts = subject.activations(group_prompts)
            for layer in block_layers(subject):
                flags[(group, layer)] = self._flag(acts.at(layer, self.params["pool"]))[0]
        best = max(flags, key=flags.get)
        self.extra["model_flag"] = {"group": best[0], "layer": best[1], "flag": round(flags[best], 4)}
        return flags[best]
