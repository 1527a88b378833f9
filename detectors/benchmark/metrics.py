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
    groups: int | None = None  # models behind the items, where the interval resamples models

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


def auroc_rows(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """`fast_auroc` of each row of (replicates, n) arrays, by counting pairs (ties count half): the same
    Mann-Whitney statistic, exactly, for the few dozen models a model-level figure compares."""
    greater = (positive[:, :, None] > negative[:, None, :]).sum((1, 2))
    ties = (positive[:, :, None] == negative[:, None, :]).sum((1, 2))
    return (greater + 0.5 * ties) / (positive.shape[1] * negative.shape[1])


def tpr_rows(positive: np.ndarray, negative: np.ndarray, fpr: float) -> np.ndarray:
    """`_fast_tpr` of each row of (replicates, n) arrays."""
    allowed = int(np.floor(fpr * negative.shape[1] + 1e-9))
    if allowed >= negative.shape[1]:
        return np.ones(len(positive))
    threshold = -np.sort(-negative, axis=1)[:, allowed]
    return (positive > threshold[:, None]).mean(1)


def _stratified(positive, negative, statistic_rows: Callable, seed: int, n_bootstrap: int) -> tuple[float, float]:
    # The draws are made one replicate at a time, as they always were (the figures of earlier runs
    # still verify); the statistic is then taken over all replicates at once.
    # a[rng.integers(0, n, n)] is the draw rng.choice(a, n) makes, from the same stream, at half its cost.
    rng = np.random.default_rng(seed)
    n_pos, n_neg = len(positive), len(negative)
    draws = [(positive[rng.integers(0, n_pos, n_pos)], negative[rng.integers(0, n_neg, n_neg)])
             for _ in range(n_bootstrap)]
    replicates = statistic_rows(np.array([d[0] for d in draws]), np.array([d[1] for d in draws]))
    return _interval(list(replicates))


def auroc(labels: Sequence[int], scores: Sequence[float], seed: int = 0, n_bootstrap: int = N_BOOTSTRAP) -> Estimate | None:
    """None when one class is missing (AUROC is undefined)."""
    split = _split(labels, scores)
    if split is None:
        return None
    value = float(roc_auc_score(np.asarray(labels, int), np.asarray(scores, float)))
    low, high = _stratified(*split, auroc_rows, seed, n_bootstrap)
    return Estimate(value, low, high, len(labels))


def tpr_at_fpr(labels: Sequence[int], scores: Sequence[float], fpr: float = 0.01, seed: int = 0,
               n_bootstrap: int = N_BOOTSTRAP) -> Estimate | None:
    split = _split(labels, scores)
    if split is None:
        return None
    curve_fpr, curve_tpr, _ = roc_curve(np.asarray(labels, int), np.asarray(scores, float), drop_intermediate=False)
    value = float(curve_tpr[curve_fpr <= fpr + 1e-12].max())
    low, high = _stratified(*split, lambda p, n: tpr_rows(p, n, fpr), seed, n_bootstrap)
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


# --- figures over several models: the interval resamples models, not items ----------------------

Group = tuple[np.ndarray, np.ndarray]  # (labels, scores) of one model's items


def _pooled(groups: Sequence[Group]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([g[0] for g in groups]).astype(int), np.concatenate([g[1] for g in groups]).astype(float)


def _cluster_interval(groups: Sequence[Group], statistic: Callable, seed: int, n_bootstrap: int) -> tuple[float, float]:
    """Resample whole models with replacement; replicates lacking a class are skipped."""
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_bootstrap):
        picked = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
        labels, scores = _pooled(picked)
        if labels.min() != labels.max():
            replicates.append(statistic(scores[labels == 1], scores[labels == 0]))
    return _interval(replicates) if replicates else (float("nan"), float("nan"))


def _cluster_auroc_interval(groups: Sequence[Group], seed: int, n_bootstrap: int) -> tuple[float, float]:
    """`_cluster_interval` of `fast_auroc`, the same replicates exactly, without pooling each one.

    A replicate's AUROC counts (positive, negative) pairs, and a pair's outcome depends only on the
    two models it comes from: with `wins[g, h]` the pairs a positive of model g wins against a
    negative of model h (ties half) and m the times each model was drawn, a replicate is
    m·wins·m / ((m·positives)(m·negatives)). The counts are exact in floating point (integers and
    halves), so every replicate equals the ranked one bit for bit; 1,000 replicates of 80 models
    cost milliseconds instead of seconds.
    """
    labels, scores = _pooled(groups)
    if not np.isfinite(scores).all():
        return _cluster_interval(groups, fast_auroc, seed, n_bootstrap)
    model = np.repeat(np.arange(len(groups)), [len(g[0]) for g in groups])
    # Drawn one replicate at a time, as they always were: the same stream, so earlier runs still verify.
    rng = np.random.default_rng(seed)
    drawn = np.array([np.bincount(rng.integers(0, len(groups), len(groups)), minlength=len(groups))
                      for _ in range(n_bootstrap)], float)
    replicates = auroc_replicates(labels, scores, model, drawn)
    replicates = replicates[np.isfinite(replicates)]  # replicates lacking a class are skipped
    return _interval(list(replicates)) if len(replicates) else (float("nan"), float("nan"))


def auroc_replicates(labels: np.ndarray, scores: np.ndarray, codes: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The pooled AUROC of every replicate of `draws` (NaN where a replicate lacks a class).

    A (positive, negative) pair's outcome depends only on the two models, so with wins[u, v] the pairs a
    positive of unit u wins against a negative of unit v (ties half) and m the units' draw counts, a
    replicate is m·wins·m / ((m·positives)(m·negatives)): exactly the Mann-Whitney AUROC of the pooled
    replicate, copies of one unit against each other included, without ranking each replicate.
    """
    n_units = draws.shape[1]
    positive, negative = labels == 1, labels == 0
    outcome = ((scores[positive][:, None] > scores[negative][None, :])
               + 0.5 * (scores[positive][:, None] == scores[negative][None, :]))
    wins = np.zeros((n_units, n_units))
    np.add.at(wins, (codes[positive][:, None], codes[negative][None, :]), outcome)
    n_pos = np.bincount(codes[positive], minlength=n_units).astype(float)
    n_neg = np.bincount(codes[negative], minlength=n_units).astype(float)
    m = draws.astype(float)
    pos, neg = m @ n_pos, m @ n_neg
    won = np.einsum("bu,uv,bv->b", m, wins, m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((pos > 0) & (neg > 0), won / (pos * neg), np.nan)


def _cluster_tpr_interval(groups: Sequence[Group], fpr: float, seed: int, n_bootstrap: int) -> tuple[float, float]:
    """`_cluster_interval` of `_fast_tpr`, the same replicates exactly, all at once: each replicate's
    threshold is its (allowed + 1)-th highest negative with drawn copies counted, found on one sorted
    list of negatives by a running count of copies, instead of pooling and sorting every replicate."""
    labels, scores = _pooled(groups)
    if not np.isfinite(scores).all():
        return _cluster_interval(groups, lambda p, n: _fast_tpr(p, n, fpr), seed, n_bootstrap)
    model = np.repeat(np.arange(len(groups)), [len(g[0]) for g in groups])
    rng = np.random.default_rng(seed)  # the draws `_cluster_interval` makes, in its order
    drawn = np.array([np.bincount(rng.integers(0, len(groups), len(groups)), minlength=len(groups))
                      for _ in range(n_bootstrap)], float)
    order = np.argsort(-scores[labels == 0], kind="stable")
    negatives, negative_models = scores[labels == 0][order], model[labels == 0][order]
    copies = np.cumsum(drawn[:, negative_models], axis=1) if len(negatives) else np.zeros((n_bootstrap, 1))
    positives = drawn[:, model[labels == 1]]
    keep = (positives.sum(1) > 0) & (copies[:, -1] > 0)
    copies, positives = copies[keep], positives[keep]
    allowed = np.floor(fpr * copies[:, -1] + 1e-9)
    threshold = negatives[np.argmax(copies > allowed[:, None], axis=1)]
    above = scores[labels == 1][None, :] > threshold[:, None]
    replicates = np.where(allowed >= copies[:, -1], 1.0, (positives * above).sum(1) / positives.sum(1))
    return _interval(list(replicates)) if len(replicates) else (float("nan"), float("nan"))


def pooled_auroc(groups: Sequence[Group], seed: int = 0, n_bootstrap: int = N_BOOTSTRAP) -> Estimate | None:
    """AUROC over every item of every model pooled (a monitor calibrated across models), model-level interval."""
    if not groups:
        return None
    labels, scores = _pooled(groups)
    if labels.min() == labels.max():
        return None
    value = fast_auroc(scores[labels == 1], scores[labels == 0])
    low, high = _cluster_auroc_interval(groups, seed, n_bootstrap)
    return Estimate(value, low, high, len(labels), len(groups))


def pooled_tpr_at_fpr(groups: Sequence[Group], fpr: float, seed: int = 0,
                      n_bootstrap: int = N_BOOTSTRAP) -> Estimate | None:
    if not groups:
        return None
    labels, scores = _pooled(groups)
    if labels.min() == labels.max():
        return None
    value = _fast_tpr(scores[labels == 1], scores[labels == 0], fpr)
    low, high = _cluster_tpr_interval(groups, fpr, seed, n_bootstrap)
    return Estimate(value, low, high, len(labels), len(groups))


def mean_group_auroc(groups: Sequence[Group], seed: int = 0, n_bootstrap: int = N_BOOTSTRAP) -> Estimate | None:
    """The mean of per-model AUROCs (models with both classes), with a bootstrap over those models."""
    values = [fast_auroc(s[l == 1], s[l == 0]) for l, s in ((np.asarray(l, int), np.asarray(s, float))
                                                             for l, s in groups) if 0 < l.sum() < len(l)]
    if not values:
        return None
    values = np.asarray(values)
    rng = np.random.default_rng(seed)
    replicates = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(n_bootstrap)]
    low, high = _interval(replicates)
    return Estimate(float(values.mean()), low, high, len(values), len(values))


def permutation_p_value(labels: Sequence[int], scores: Sequence[float], seed: int = 0,
                        n_permutations: int = 2000) -> float | None:
    """One-sided p of an AUROC at least this high when labels are shuffled among the models ((k + 1) / (n + 1))."""
    labels, scores = np.asarray(labels, int), np.asarray(scores, float)
    if labels.min() == labels.max():
        return None
    observed = fast_auroc(scores[labels == 1], scores[labels == 0])
    rng = np.random.default_rng(seed)
    permuted = np.array([rng.permutation(labels) for _ in range(n_permutations)]) == 1
    # A permutation moves labels, not scores: every score keeps its rank, so each permuted AUROC is the
    # rank sum of its positives, as `fast_auroc` computes it.
    ranks, n_pos = rankdata(scores), int(labels.sum())
    permuted_auroc = (permuted @ ranks - n_pos * (n_pos + 1) / 2) / (n_pos * (len(labels) - n_pos))
    hits = int((permuted_auroc >= observed - 1e-12).sum())
    return (hits + 1) / (n_permutations + 1)


def share(outcomes: Sequence[float]) -> Estimate | None:
    """A share of successes with its Wilson interval."""
    return _mean_with_interval(outcomes, 0, 0)


def mean_with_bootstrap(values: Sequence[float], seed: int = 0, n_bootstrap: int = N_BOOTSTRAP) -> Estimate | None:
    values = np.asarray(values, float)
    if not len(values):
        return None
    rng = np.random.default_rng(seed)
    low, high = _interval([values[rng.integers(0, len(values), len(values))].mean() for _ in range(n_bootstrap)])
    return Estimate(float(values.mean()), low, high, len(values))


N_RANDOM_DIRECTIONS = 1000


def best_random_direction_auroc(features: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """The best input AUROC over many random directions: an oracle maximum, as the probes paper
    reports it, so a probe is compared with random directions and not only with random scores."""
    features, labels = np.asarray(features, float), np.asarray(labels, int)
    directions = np.random.default_rng(seed).standard_normal((features.shape[1], N_RANDOM_DIRECTIONS))
    projections = features @ directions
    positive, negative = projections[labels == 1], projections[labels == 0]
    return max(fast_auroc(positive[:, j], negative[:, j]) for j in range(N_RANDOM_DIRECTIONS))
