"""A classifier of weight updates, learnt from a population of known models (after PEFTGuard and the
weight-space detectors of LoRA backdoors, which fit a classifier on an adapter's weights or their
spectral statistics).

Features: for every weight matrix the subject shares with the public base, the statistics of its
update ΔW = W − W_base that `weight-spectrum` computes (top-direction and top-k energy shares,
effective rank, and the log of its norm against the base matrix's), in the matrices' order. A
scikit-learn logistic regression on standardised features is fitted on the public training zoo
(`learns`): models that hide a conditional behaviour against every kind of control. The model score
is the fitted probability of hiding one; `extra` reports the features it weighs most. The fit also
reports a cross-validated AUROC on the training zoo, split by spec (a model with its matched
controls), so a reader can tell a classifier that generalises from one that memorised its population.

A subject whose matrices are not the population's (another architecture or base) gets no score, with
an error naming the mismatch. It reads no prompt and spends no forward pass.
"""

from __future__ import annotations

import math

import numpy as np

from detectors.base import Detector, register_detector
from detectors.population_fit import check_population, classifier, cross_validated_auroc
from detectors.weight_spectrum import spectrum_statistics, updates

STATISTICS = ("top1_share", "topk_share", "effective_rank", "log_relative_norm")


def update_features(model, reference, top_k: int) -> tuple[list[str], np.ndarray]:
    """(feature names, values): `STATISTICS` of each shared matrix's update, matrices in name order."""
    names, values = [], []
    for matrix, (delta, base) in sorted(updates(model, reference).items()):
        stats = spectrum_statistics(delta, base, top_k)
        stats["log_relative_norm"] = math.log(stats["relative_norm"] + 1e-12)
        names += [f"{matrix}:{s}" for s in STATISTICS]
        values += [stats[s] for s in STATISTICS]
    return names, np.asarray(values, float)


@register_detector("meta-weights")
class MetaWeights(Detector):
    uses_reference = True
    learns = True
    # C: the inverse L2 strength; a population of ~76 models against ~120 features needs it.
    defaults = {"seed": 0, "budget": 0, "top_k": 4, "C": 0.1, "folds": 4, "shown_features": 8}

    def fit_population(self, population):
        rows, labels, units, names = [], [], [], None
        for public in sorted(population, key=lambda m: m.model_dir):
            subject = public.load()
            feature_names, x = update_features(subject.model, subject.reference, self.params["top_k"])
            if names is not None and feature_names != names:
                raise ValueError("the training zoo's models do not share one architecture")
            names = feature_names
            rows.append(x)
            labels.append(public.label)
            units.append(public.unit)
        check_population(labels)
        features, labels = np.vstack(rows), np.asarray(labels)
        fit = lambda x, y, _units: classifier(self.params["C"]).fit(x, y)  # noqa: E731
        return {"pipeline": fit(features, labels, units), "names": names, "models": len(labels),
                "positives": int(labels.sum()),
                "cv_auroc": cross_validated_auroc(fit, features, labels, units, self.params["folds"])}

    def score_model(self, subject, prompts=None):
        state = getattr(self, "fitted", None)
        if state is None:
            raise RuntimeError("meta-weights was not fitted on the training zoo")
        if subject.reference is None:
            return None
        names, x = update_features(subject.model, subject.reference, self.params["top_k"])
        if names != state["names"]:
            raise ValueError(f"the subject's {len(names)} update features are not the training zoo's "
                             f"{len(state['names'])}: another architecture or base")
        pipeline = state["pipeline"]
        weights = pipeline[-1].coef_[0]
        order = np.argsort(-np.abs(weights))[:self.params["shown_features"]]
        self.extra = {"training_models": state["models"], "training_positives": state["positives"],
                      "training_cv_auroc": state["cv_auroc"],
                      "weighs": [[names[i], round(float(weights[i]), 4)] for i in order]}
        return float(pipeline.predict_proba(x[None])[0, 1])
