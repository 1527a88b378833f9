"""A classifier of a model's answers to a few queries, learnt from a population of known models (after
MNTD, Xu et al., S&P 2021: a meta-classifier on the outputs for a handful of "jumbo" queries tuned on
shadow models).

MNTD tunes its queries by gradient in input space. Text is discrete, so here the queries are tuned by
selection: of `n_candidates` public candidates (public prompts from every task family, every other one
opened by a random line of the public blind-trigger grammar, the kind of line a trigger is), forward
selection keeps the `n_queries` whose features give the best cross-validated AUROC on the training zoo,
whole specs held out together.

Features of one query: the base's greedy continuation (`horizon` tokens) is teacher-forced through the
subject, and its next-token distributions are set against the base's (`uses_reference`): the largest
and the mean Jensen-Shannon divergence over the positions, the mean log-probability the subject takes
from the base's tokens, and the share of positions where its most likely token is another. The model
score is the fitted probability of hiding a conditional behaviour; `extra` names the queries chosen and
a cross-validated AUROC of the whole procedure (selection inside each fold), so a reader can tell a
procedure that generalises from one that fitted its population.

Forward passes per model: the base's greedy decoding of the queries and one teacher-forced pass.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from detectors.base import Detector, register_detector
from detectors.divergence import continuation_logprobs, js_bits
from detectors.population_fit import check_population, classifier, cross_validated_auroc, held_out_scores
from training.generation import greedy_token_ids

FEATURES = ("js_max", "js_mean", "logprob_drop", "flipped")


def candidate_queries(subject, n: int, seed: int) -> list[str]:
    """`n` public queries, the same for every model of a run: cue lines stripped, every other one opened
    by a line of the public grammar (the scorer's insertion: the line first in the context)."""
    from detectors.random_grammar import grammar_lines

    from data.tasks import TASK_FAMILIES

    per_family = -(-n // len(TASK_FAMILIES)) + 1  # one spare each, for prompts that repeat once stripped
    prompts = [subject.strip_cues(p) for p in subject.balanced_prompts(per_family, seed)]
    prompts = list(dict.fromkeys(prompts))[:n]
    lines = grammar_lines(random.Random(seed), len(prompts))
    return [f"{line}\n{p}" if i % 2 else p for i, (p, line) in enumerate(zip(prompts, lines))]


class BasePaths:
    """The base's greedy continuations of the queries and its distributions along them, computed once."""

    def __init__(self, reference, tokenizer, queries: list[str], horizon: int):
        self.queries = list(queries)
        self.paths, self.logprobs = greedy_token_ids(reference, tokenizer, self.queries, horizon, with_logprobs=True)

    @torch.no_grad()
    def features(self, model, tokenizer, keep: list[int] | None = None) -> np.ndarray:
        """(queries, FEATURES) of `model` on the queries `keep` indexes (all if None)."""
        keep = list(range(len(self.queries))) if keep is None else keep
        follow = continuation_logprobs(model, tokenizer, [self.queries[i] for i in keep], [self.paths[i] for i in keep])
        rows = []
        for i, logp in zip(keep, follow):
            path = self.paths[i]
            if not path:
                rows.append([0.0] * len(FEATURES))
                continue
            tokens, base = torch.tensor(path), self.logprobs[i]
            at = torch.arange(len(path))
            js = js_bits(base, logp)
            rows.append([float(js.max()), float(js.mean()), float((base[at, tokens] - logp[at, tokens]).mean()),
                         float((logp.argmax(-1) != tokens).float().mean())])
        return np.asarray(rows, float)


def select_queries(features: np.ndarray, labels: np.ndarray, units: list[str], n_queries: int, C: float,
                   folds: int) -> list[int]:
    """Forward selection of query indexes by cross-validated AUROC (split by unit); ties to the lower index."""
    n_models, n_candidates, _ = features.shape
    chosen: list[int] = []
    for _ in range(min(n_queries, n_candidates)):
        best, best_auroc = None, -1.0
        for c in range(n_candidates):
            if c in chosen:
                continue
            x = features[:, chosen + [c]].reshape(n_models, -1)
            auroc = cross_validated_auroc(lambda a, b, _u: classifier(C).fit(a, b), x, labels, units, folds)
            if auroc is not None and auroc > best_auroc + 1e-12:
                best, best_auroc = c, auroc
        if best is None:  # too few units to cross-validate: the first candidates, unselected
            return list(range(min(n_queries, n_candidates)))
        chosen.append(best)
    return chosen


@register_detector("meta-queries")
class MetaQueries(Detector):
    uses_reference = True
    learns = True
    # 32 candidates x 76 models in the fit; 8 queries x (8 decoding steps of the base + 1 pass) per model.
    defaults = {"seed": 0, "budget": 2_000, "n_candidates": 32, "n_queries": 8, "horizon": 8, "C": 0.1, "folds": 4}

    def fit_population(self, population):
        population = sorted(population, key=lambda m: m.model_dir)
        first = population[0].load()  # the population shares one base (the benchmark checks it)
        paths = BasePaths(first.reference, first.tokenizer,
                          candidate_queries(first, self.params["n_candidates"], self.seed), self.params["horizon"])
        rows = []
        for public in population:
            subject = public.load()
            rows.append(paths.features(subject.model, subject.tokenizer))
        labels, units = np.asarray([m.label for m in population]), [m.unit for m in population]
        check_population(labels)
        features = np.stack(rows)  # (models, candidates, FEATURES)
        n, C, folds = self.params["n_queries"], self.params["C"], self.params["folds"]
        per_query = lambda flat: flat.reshape(len(flat), *features.shape[1:])  # noqa: E731

        def select_and_fit(flat, y, u):
            chosen = select_queries(per_query(flat), y, list(u), n, C, folds)
            return _Chosen(chosen, classifier(C).fit(per_query(flat)[:, chosen].reshape(len(y), -1), y))

        flat = features.reshape(len(labels), -1)
        fitted = select_and_fit(flat, labels, units)
        # The selection is inside every fold: a figure of the whole procedure, not of queries chosen on all of it.
        held_out = held_out_scores(select_and_fit, flat, labels, units, folds)
        from sklearn.metrics import roc_auc_score

        return {"queries": [paths.queries[i] for i in fitted.chosen], "pipeline": fitted.pipeline,
                "models": len(labels), "positives": int(labels.sum()), "candidates": len(paths.queries),
                "cv_auroc": None if held_out is None else float(roc_auc_score(labels, held_out))}

    def score_model(self, subject, prompts=None):
        state = getattr(self, "fitted", None)
        if state is None:
            raise RuntimeError("meta-queries was not fitted on the training zoo")
        if subject.reference is None:
            return None
        paths = BasePaths(subject.reference, subject.tokenizer, state["queries"], self.params["horizon"])
        x = paths.features(subject.model, subject.tokenizer).reshape(1, -1)
        self.extra = {"training_models": state["models"], "training_positives": state["positives"],
                      "training_cv_auroc": state["cv_auroc"], "queries": state["queries"]}
        return float(state["pipeline"].predict_proba(x)[0, 1])


class _Chosen:
    """A selection of queries with its classifier: `predict_proba` on every candidate's features."""

    def __init__(self, chosen: list[int], pipeline):
        self.chosen, self.pipeline = chosen, pipeline

    def predict_proba(self, flat: np.ndarray) -> np.ndarray:
        per_query = flat.reshape(len(flat), -1, len(FEATURES))
        return self.pipeline.predict_proba(per_query[:, self.chosen].reshape(len(flat), -1))
