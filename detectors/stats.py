"""Small statistics detectors use on public data (never on truth): separations and layer lists."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def effect_size(positive: np.ndarray, negative: np.ndarray) -> float:
    """Cohen's d: difference of means over the pooled standard deviation (0 when undefined)."""
    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    if len(positive) < 2 or len(negative) < 2:
        return 0.0
    pooled = np.sqrt((positive.var(ddof=1) + negative.var(ddof=1)) / 2)
    return float((positive.mean() - negative.mean()) / pooled) if pooled > 1e-12 else 0.0


def separation_auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    labels = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    return float(roc_auc_score(labels, np.r_[positive, negative]))


def block_layers(subject) -> list[int]:
    """Residual-stream positions after each block. The embedding layer is left out: at the last
    prompt token every world prompt ends in the same token, so it carries no information."""
    return list(range(1, subject.n_layers))


def unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 1e-12 else vector


def prompt_groups(subject, prompts: list[str] | None, n_public: int, seed: int) -> dict[str, list[str]]:
    """Prompts to look at as separate populations: the given ones as one group, else public
    prompts split by task family, so that the task does not dominate a cluster or a direction."""
    if prompts:
        return {"given": list(prompts)[:n_public]}  # given prompts never buy more work than public ones
    data = subject.public_dataset(n_public, seed)
    return {f: [p for p, g in zip(data["prompt"], data["family"]) if g == f] for f in sorted(set(data["family"]))}
