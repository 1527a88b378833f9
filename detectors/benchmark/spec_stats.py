"""Model-level statistics whose unit is the spec: a backdoor and the controls matched to it.

Models built from one spec share its lines, data, seed and rounds, so their scores are not independent
draws: intervals resample whole units, permutations move labels only inside a unit, and two detectors
are compared on the same resampled units. Treating models as exchangeable rejected 8.5% of null
detectors at alpha 0.05 (issue 33). Everything here is vectorised over replicates with numpy: a board
of ~16 detectors x ~80 models x 1,000 replicates takes well under a second.
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np
from scipy.stats import norm, rankdata

from detectors.benchmark.metrics import Estimate, auroc_replicates, fast_auroc

ALPHA = 0.05


def unit_codes(units: Sequence[str]) -> tuple[np.ndarray, int]:
    """(each model's unit as an integer 0..U-1 in sorted unit order, U)."""
    names, codes = np.unique(np.asarray(units, str), return_inverse=True)
    return codes.astype(int), len(names)


def unit_draws(n_units: int, seed: int, n_bootstrap: int) -> np.ndarray:
    """(n_bootstrap, n_units) counts: how often each unit is drawn in each replicate (with replacement)."""
    picks = np.random.default_rng(seed).integers(0, n_units, (n_bootstrap, n_units))
    flat = picks + n_units * np.arange(n_bootstrap)[:, None]
    return np.bincount(flat.ravel(), minlength=n_bootstrap * n_units).reshape(n_bootstrap, n_units)


def _interval(replicates: np.ndarray) -> tuple[float, float]:
    replicates = replicates[np.isfinite(replicates)]
    if not len(replicates):
        return float("nan"), float("nan")
    low, high = np.percentile(replicates, [2.5, 97.5])
    return float(low), float(high)


def _arrays(labels, scores, units) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    labels, scores = np.asarray(labels, int), np.asarray(scores, float)
    if not len(labels) or labels.min() == labels.max():
        return None
    if not (len(labels) == len(scores) == len(units)):
        raise ValueError(f"labels, scores and units differ in length ({len(labels)}, {len(scores)}, {len(units)})")
    codes, n_units = unit_codes(units)
    return labels, scores, codes, n_units


def spec_auroc(labels: Sequence[int], scores: Sequence[float], units: Sequence[str], seed: int = 0,
               n_bootstrap: int = 1000) -> Estimate | None:
    """AUROC with a BCa bootstrap interval over units (replicates lacking a class skipped); None without both classes."""
    arrays = _arrays(labels, scores, units)
    if arrays is None:
        return None
    labels, scores, codes, n_units = arrays
    value = fast_auroc(scores[labels == 1], scores[labels == 0])
    replicates = auroc_replicates(labels, scores, codes, unit_draws(n_units, seed, n_bootstrap))
    leave_one_out = auroc_replicates(labels, scores, codes, 1 - np.eye(n_units, dtype=int))
    low, high = bca_interval(value, replicates, leave_one_out)
    return Estimate(value, low, high, len(labels), n_units)


def bca_interval(value: float, replicates: np.ndarray, jackknife: np.ndarray) -> tuple[float, float]:
    """95% BCa interval (Efron 1987): the percentile interval, shifted for the replicates' median bias and
    skew. The plain percentile interval covered a true AUROC 92.5-94% of the time at 24 units (measured,
    tests/test_spec_level_stats.py). Written out rather than scipy.stats.bootstrap(method="BCa"), which
    cannot skip the replicates (and the leave-one-unit-out values) that lack a class."""
    replicates, jackknife = replicates[np.isfinite(replicates)], jackknife[np.isfinite(jackknife)]
    if not len(replicates):
        return float("nan"), float("nan")
    below = (np.sum(replicates < value) + 0.5 * np.sum(replicates == value)) / len(replicates)
    bias = norm.ppf(np.clip(below, 1 / (len(replicates) + 1), len(replicates) / (len(replicates) + 1)))
    spread = jackknife.mean() - jackknife if len(jackknife) else np.zeros(1)
    denominator = 6 * np.sum(spread ** 2) ** 1.5
    acceleration = np.sum(spread ** 3) / denominator if denominator > 0 else 0.0  # no skew to correct for
    z = bias + norm.ppf([0.025, 0.975])
    levels = norm.cdf(bias + z / (1 - acceleration * z))
    low, high = np.percentile(replicates, 100 * levels)
    return float(low), float(high)


def within_unit_permutations(codes: np.ndarray, seed: int, n_permutations: int) -> np.ndarray:
    """(n_permutations, n) index arrays, each a uniform permutation that moves a model only inside its unit.

    Sorting unit + U(0, 1) keys keeps each unit's block in place and shuffles inside it; the k-th slot of
    that order belongs to the k-th model in unit order, so the two orders pair models of one unit.
    """
    keys = codes[None, :] + np.random.default_rng(seed).random((n_permutations, len(codes)))
    permutations = np.empty((n_permutations, len(codes)), int)
    permutations[:, np.argsort(codes, kind="stable")] = np.argsort(keys, axis=1)
    return permutations


def within_unit_p_value(labels: Sequence[int], scores: Sequence[float], units: Sequence[str], seed: int = 0,
                        n_permutations: int = 2000) -> float | None:
    """One-sided p of an AUROC at least this high when which member of each unit is the backdoor is shuffled
    inside the unit ((k + 1) / (n + 1)); units of one member keep their label."""
    arrays = _arrays(labels, scores, units)
    if arrays is None:
        return None
    labels, scores, codes, _ = arrays
    n_pos = int(labels.sum())
    observed = fast_auroc(scores[labels == 1], scores[labels == 0])
    permuted = labels[within_unit_permutations(codes, seed, n_permutations)]
    # A permutation moves labels, not scores, and keeps the positives' count: each permuted AUROC is the
    # rank sum of its positives.
    ranks = rankdata(scores)
    permuted_auroc = (permuted @ ranks - n_pos * (n_pos + 1) / 2) / (n_pos * (len(labels) - n_pos))
    return float((np.sum(permuted_auroc >= observed - 1e-12) + 1) / (n_permutations + 1))


def allowed_false_positives(n_negatives: int, fpr: float) -> int:
    """At least one: with 18 negatives floor(0.05 x 18) = 0, and 'TPR at 5% FPR' would be TPR at 0% FPR."""
    return max(1, int(np.floor(fpr * n_negatives + 1e-9)))


def _thresholds(negative: np.ndarray, negative_codes: np.ndarray, draws: np.ndarray, fpr: float) -> np.ndarray:
    """Each replicate's threshold: its (allowed + 1)-th highest negative, copies counted; NaN where the
    allowance takes every negative (then every positive counts)."""
    order = np.argsort(-negative, kind="stable")
    weights = np.cumsum(draws[:, negative_codes[order]], axis=1)
    total = weights[:, -1]
    allowed = np.maximum(1, np.floor(fpr * total + 1e-9))
    index = np.argmax(weights > allowed[:, None], axis=1)
    return np.where(total > allowed, negative[order][index], np.nan)


def resolvable_tpr(labels: Sequence[int], scores: Sequence[float], units: Sequence[str], fpr: float = 0.05,
                   seed: int = 0, n_bootstrap: int = 1000) -> dict | None:
    """TPR at an FPR the negatives can resolve: `allowed_false_positives` of them may score above the
    threshold. The interval resamples units; `realised_fpr` is the share of negatives above the threshold
    (below allowed / negatives only where negatives tie at it)."""
    arrays = _arrays(labels, scores, units)
    if arrays is None:
        return None
    labels, scores, codes, n_units = arrays
    positive, negative = scores[labels == 1], scores[labels == 0]
    allowed = allowed_false_positives(len(negative), fpr)
    threshold = np.sort(negative)[::-1][allowed] if allowed < len(negative) else -np.inf
    draws = unit_draws(n_units, seed, n_bootstrap)
    replicate_thresholds = _thresholds(negative, codes[labels == 0], draws, fpr)
    drawn_positives = draws[:, codes[labels == 1]]
    above = positive[None, :] > np.nan_to_num(replicate_thresholds, nan=-np.inf)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = (drawn_positives * above).sum(1) / drawn_positives.sum(1)
    low, high = _interval(replicates)
    estimate = Estimate(float(np.mean(positive > threshold)), low, high, len(positive), n_units)
    return {**estimate.to_dict(), "nominal_fpr": fpr, "allowed_false_positives": allowed,
            "realised_fpr": round(float(np.mean(negative > threshold)), 4), "negatives": len(negative)}


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values. Written out: statsmodels' `multipletests` does this, but statsmodels is not a
    dependency and Holm is a step-down of four lines (sort, scale by m - i, running max, cap at 1)."""
    p = np.asarray(p_values, float)
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty(len(p))
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def paired_p_value(difference: float, replicates: np.ndarray) -> float:
    """Two-sided p of a difference from its paired-bootstrap standard error (a Wald test).

    Not the share of replicates beyond 0: 1,000 replicates cannot give a p below 0.002, and Holm across
    the 120 pairs of a 16-detector board asks for 0.05 / 120 = 0.0004, so no pair could ever be called.
    """
    replicates = replicates[np.isfinite(replicates)]
    spread = replicates.std(ddof=1) if len(replicates) > 1 else 0.0
    if spread <= 0:
        # No variation to measure (one unit, or every replicate alike): claim nothing rather than p = 0.
        return 1.0
    return float(2 * norm.sf(abs(difference) / spread))


def compare_detectors(scores: dict[str, dict[str, float]], labels: dict[str, int], units: dict[str, str],
                      seed: int = 0, n_bootstrap: int = 1000) -> dict | None:
    """Every pair of detectors on the models both scored: the AUROC difference with a paired bootstrap over
    units (the same drawn units for both in each replicate), its two-sided p, Holm across all pairs and a
    verdict; and each detector's 95% rank interval over the same replicates. None with fewer than two."""
    models = sorted(labels)
    codes, n_units = unit_codes([units[m] for m in models])
    code_of = dict(zip(models, codes))
    draws = unit_draws(n_units, seed, n_bootstrap)
    cache: dict = {}

    def on(detector: str, subset: tuple[str, ...]) -> tuple[float, np.ndarray] | None:
        if (detector, subset) not in cache:
            y = np.array([labels[m] for m in subset], int)
            s = np.array([scores[detector][m] for m in subset], float)
            cache[(detector, subset)] = None if not len(y) or y.min() == y.max() else (
                fast_auroc(s[y == 1], s[y == 0]),
                auroc_replicates(y, s, np.array([code_of[m] for m in subset], int), draws))
        return cache[(detector, subset)]

    own = {d: on(d, tuple(sorted(scores[d]))) for d in sorted(scores)}
    ranked = [d for d in own if own[d] is not None]
    if len(ranked) < 2:
        return None
    pairs = []
    for a, b in combinations(ranked, 2):
        common = tuple(sorted(set(scores[a]) & set(scores[b])))
        first, second = on(a, common), on(b, common)
        if first is None or second is None:
            continue
        difference, replicates = first[0] - second[0], first[1] - second[1]
        low, high = _interval(replicates)
        common_units = len({code_of[m] for m in common})
        pairs.append({"a": a, "b": b,
                      "difference": Estimate(difference, low, high, len(common), common_units).to_dict(),
                      "p_value": paired_p_value(difference, replicates)})
    # p-values are kept unrounded (to 6 significant digits): Holm's thresholds go down to 0.05 / pairs.
    for pair, adjusted in zip(pairs, holm([p["p_value"] for p in pairs])):
        pair["p_value"] = float(f"{pair['p_value']:.6g}")
        pair["p_holm"] = float(f"{adjusted:.6g}")
        better, worse = (pair["a"], pair["b"]) if pair["difference"]["value"] > 0 else (pair["b"], pair["a"])
        pair["verdict"] = f"{better} beats {worse}" if adjusted < ALPHA else "tied"
    return {"pairs": pairs, "ranks": rank_intervals({d: own[d] for d in ranked}), "alpha": ALPHA,
            "method": "paired bootstrap over units: two-sided Wald p from the bootstrap standard error, "
                      "Holm across the zoo's pairs",
            "units": n_units, "models": len(models), "replicates": n_bootstrap}


def rank_intervals(estimates: dict[str, tuple[float, np.ndarray]]) -> dict[str, dict]:
    """Each detector's rank by AUROC (1 = best, ties averaged) and its 2.5-97.5% interval over the
    replicates in which every detector's AUROC is defined."""
    names = list(estimates)
    replicates = np.stack([estimates[d][1] for d in names], axis=1)
    replicates = replicates[np.isfinite(replicates).all(1)]
    point = rankdata([-estimates[d][0] for d in names])
    if len(replicates):
        ranks = rankdata(-replicates, axis=1)
        # The outer order statistics, so an interval's ends are ranks some replicate gave.
        low, high = np.percentile(ranks, 2.5, axis=0, method="lower"), np.percentile(ranks, 97.5, axis=0,
                                                                                      method="higher")
    else:
        low = high = np.full(len(names), np.nan)
    return {name: {"rank": float(point[j]), "low": float(low[j]), "high": float(high[j])}
            for j, name in enumerate(names)}
