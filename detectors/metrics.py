"""Benchmark metrics, each with the number of items behind it and a 95% interval.

AUROC and TPR carry a seeded bootstrap interval; shares (pair accuracy, top-k) a Wilson interval.

Bootstrap resampling is stratified where a metric needs both classes (AUROC, TPR at a fixed
FPR): positives and negatives are resampled separately, so every replicate is defined.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

N_BOOTSTRAP = 1000


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float  # bootstrap 2.5th percentile
    high: float  # bootstrap 97.5th percentile
    n: int

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def text(self) -> str:
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"


def _interval(replicates: list[float]) -> tuple[float, float]:
    low, high = np.percentile(replicates, [2.5, 97.5])
    return float(low), float(high)


def fast_auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney AUROC (ties count half); equals roc_auc_score, at a fraction of its cost."""
    ranks = rankdata(np.r_[positive, negative])
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _fast_tpr(positive: np.ndarray, negative: np.ndarray, fpr: float) -> float:
    """Highest TPR at FPR <= fpr: positives strictly above the (k+1)-th highest negative score."""
    allowed = int(np.floor(fpr * len(negative) + 1e-9))
    if allowed >= len(negative):
        return 1.0
    threshold = np.sort(negative)[::-1][allowed]
    return float(np.mean(positive > threshold))


def _split(labels, scores) -> tuple[np.ndarray, np.ndarray] | None:
    labels, scores = np.asarray(labels, int), np.asarray(scores, float)
    positive, negative = scores[labels == 1], scores[labels == 0]
    return (positive, negative) if len(positive) and len(negative) else None


def _stratified(positive, negative, statistic: Callable, seed: int, n_bootstrap: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    replicates = [statistic(rng.choice(positive, len(positive)), rng.choice(negative, len(negative)))
                  for _ in range(n_bootstrap)]
    return _interval(replicates)


def auroc(labels: Sequence[int], scores: Sequence[float], seed: int = 0, n_bootstrap: int = N_BOOTSTRAP) -> Estimate | None:
    """None when one class is missing (AUROC is undefined)."""
    split = _split(labels, scores)
    if split is None:
        return None
    value = float(roc_auc_score(np.asarray(labels, int), np.asarray(scores, float)))
    low, high = _stratified(*split, fast_auroc, seed, n_bootstrap)
    return Estimate(value, low, high, len(labels))


def tpr_at_fpr(labels: Sequence[int], scores: Sequence[float], fpr: float = 0.01, seed: int = 0,
               n_bootstrap: int = N_BOOTSTRAP) -> Estimate | None:
    split = _split(labels, scores)
    if split is None:
        return None
    curve_fpr, curve_tpr, _ = roc_curve(np.asarray(labels, int), np.asarray(scores, float), drop_intermediate=False)
    value = float(curve_tpr[curve_fpr <= fpr + 1e-12].max())
    low, high = _stratified(*split, lambda p, n: _fast_tpr(p, n, fpr), seed, n_bootstrap)
    return Estimate(value, low, high, len(labels))


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval for a proportion.

    Written out rather than taken from scipy's `binomtest`, because pair ties count half a success
    and `binomtest` accepts whole counts only. Unlike a bootstrap, it does not collapse to a point
    when every outcome agrees, which matters with the handful of pairs and organisms a zoo has.
    """
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _mean_with_interval(outcomes: Sequence[float], seed: int, n_bootstrap: int) -> Estimate | None:
    """A share of successes with its Wilson interval (seed and n_bootstrap kept for a uniform signature)."""
    outcomes = np.asarray(outcomes, float)
    if not len(outcomes):
        return None
    low, high = wilson_interval(float(outcomes.sum()), len(outcomes))
    return Estimate(float(outcomes.mean()), low, high, len(outcomes))


def pair_accuracy(organism_scores: Sequence[float], control_scores: Sequence[float], seed: int = 0,
                  n_bootstrap: int = N_BOOTSTRAP) -> Estimate | None:
    """Share of pairs where the organism scores above its control (a tie counts half)."""
    outcomes = [1.0 if o > c else 0.5 if o == c else 0.0 for o, c in zip(organism_scores, control_scores)]
    return _mean_with_interval(outcomes, seed, n_bootstrap)


def top_k_accuracy(rankings: Sequence[Sequence[str]], truths: Sequence[Sequence[str]], k: int, seed: int = 0,
                   n_bootstrap: int = N_BOOTSTRAP) -> Estimate | None:
    """Share of organisms whose top-k candidates include one of its true deployment cue lines."""
    outcomes = [float(bool(set(ranking[:k]) & set(truth))) for ranking, truth in zip(rankings, truths)]
    return _mean_with_interval(outcomes, seed, n_bootstrap)
