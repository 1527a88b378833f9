"""What the learning detectors share: their classifier, and its cross-validated AUROC split by spec.

A population of ~76 models is small beside its features, so the classifier is a regularised logistic
regression on standardised features. Every figure about a fit is cross-validated with whole specs held
out together (a model with its matched controls, `PublicModel.unit`): a split that trained on a model
and tested on its own clean control would reward memorising the spec, not detecting.
"""

from __future__ import annotations

import numpy as np


def classifier(C: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))


def held_out_scores(make, features: np.ndarray, labels: np.ndarray, units: list[str], folds: int) -> np.ndarray | None:
    """Out-of-fold scores, whole units held out together, from `make(train features, train labels, train
    units)` -> a fitted model; None when the units are too few to split, or a fold's training part has one label."""
    from sklearn.model_selection import GroupKFold

    folds = min(folds, len(set(units)))
    if folds < 2:
        return None
    units = np.asarray(units)
    scores = np.zeros(len(labels))
    for train, test in GroupKFold(folds).split(features, labels, units):
        if len(set(labels[train])) < 2:
            return None
        fitted = make(features[train], labels[train], units[train])
        scores[test] = fitted.predict_proba(features[test])[:, 1]
    return scores


def cross_validated_auroc(make, features: np.ndarray, labels: np.ndarray, units: list[str], folds: int) -> float | None:
    """The AUROC of `held_out_scores` pooled over folds; None where it cannot be measured."""
    from sklearn.metrics import roc_auc_score

    scores = held_out_scores(make, features, labels, units, folds)
    if scores is None or len(set(labels)) < 2:
        return None
    return float(roc_auc_score(labels, scores))


def check_population(labels) -> None:
    if len(set(labels)) < 2:
        raise ValueError("the training zoo holds only one label to learn from")
