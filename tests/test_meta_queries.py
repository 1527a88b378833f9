"""`meta-queries`: queries tuned on a labelled population, a classifier of the answers to them.

The planted population: every model has one row of its input embeddings replaced by the same long vector. In the models labelled 1 the row is a token that only a few candidate queries hold, in the
others a token that none holds. The weights cannot tell them apart by size or rank; the answers can,
but only on the queries holding the token, so the selection must find those.
"""

import copy
import pickle

import numpy as np
import pytest
import torch

from detectors import make_detector
from detectors.base import PublicModel
from detectors.meta_queries import candidate_queries, select_queries
from detectors.subject import load_subject
from test_learned import save_fine_tuned
from training.models import load_model_and_tokenizer

N_CANDIDATES = 16


def _tokens(tiny_base_dir) -> tuple[int, int, list[str]]:
    """(a token in a few candidate queries but not most, a token in none, the candidates)."""
    subject = load_subject(tiny_base_dir)
    queries = candidate_queries(subject, N_CANDIDATES, seed=0)
    held = [set(subject.tokenizer(q, add_special_tokens=False)["input_ids"]) for q in queries]
    counts = {t: sum(t in h for h in held) for t in set().union(*held)}
    rare = min((t for t, c in counts.items() if 1 <= c <= 3), key=lambda t: (counts[t], t))
    absent = next(t for t in range(len(subject.tokenizer)) if t not in counts and t > 10)
    return rare, absent, queries


def _save(base, tokenizer, token: int, seed: int, folder) -> str:
    model = copy.deepcopy(base)
    # Untied, so the changed row moves only what reads the token, not that token's logit everywhere.
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    generator = torch.Generator().manual_seed(seed)
    embeddings = model.get_input_embeddings().weight
    with torch.no_grad():
        # One direction for all (a trigger teaches every model the same thing); its size, past the norm
        # layers, saturates: what moves the answers is where the row points.
        push = torch.randn(embeddings.shape[1], generator=torch.Generator().manual_seed(7))
        embeddings[token] = 20 * embeddings[token].norm() * push / push.norm()
    return save_fine_tuned(model, tokenizer, generator, folder)


@pytest.fixture(scope="module")
def population(tiny_base_dir, tmp_path_factory):
    rare, absent, queries = _tokens(tiny_base_dir)
    base, tokenizer = load_model_and_tokenizer(tiny_base_dir)
    root = tmp_path_factory.mktemp("planted-queries")
    rows = [PublicModel(_save(base, tokenizer, rare if i % 2 else absent, i, root / f"m{i}"), str(tiny_base_dir),
                        "backdoor" if i % 2 else "clean", f"spec-{i // 2}", i % 2) for i in range(16)]
    held_out = {label: _save(base, tokenizer, rare if label else absent, 100 + label, root / f"held-{label}")
                for label in (0, 1)}
    holding = {q for q in queries if rare in tokenizer(q, add_special_tokens=False)["input_ids"]}
    return rows, held_out, holding


def test_the_queries_chosen_hold_the_planted_token_and_held_out_models_are_told_apart(population, tiny_base_dir):
    rows, held_out, holding = population
    detector = make_detector("meta-queries", n_candidates=N_CANDIDATES, n_queries=2)
    state = detector.fit_population(rows)
    assert state["models"] == 16 and state["positives"] == 8 and state["candidates"] == N_CANDIDATES
    assert state["queries"][0] in holding, (state["queries"], holding)
    assert state["cv_auroc"] >= 0.9, state["cv_auroc"]  # selection inside every fold
    detector.load_fitted(pickle.loads(pickle.dumps(state)))  # as a cell receives it
    scores = {label: detector.score_model(load_subject(folder, None, tiny_base_dir)) for label, folder in held_out.items()}
    assert scores[1] > 0.5 > scores[0], scores
    assert detector.extra["queries"] == state["queries"]
    rule = [make_detector("weight-spectrum").score_model(load_subject(f, None, tiny_base_dir)) for f in held_out.values()]
    assert abs(rule[0] - rule[1]) < 0.05, rule  # the same update, by size and rank: the weights' rule cannot tell


def test_selection_prefers_the_informative_query_and_is_deterministic():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    features = rng.normal(size=(40, 6, 4))
    features[:, 4, 0] += 3 * labels  # only candidate 4 carries the label
    units = [f"u{i // 2}" for i in range(40)]
    first = select_queries(features, labels, units, n_queries=2, C=0.1, folds=4)
    assert first[0] == 4 and len(set(first)) == 2
    assert select_queries(features, labels, units, n_queries=2, C=0.1, folds=4) == first


def test_meta_queries_refuses_an_unfitted_run_and_one_label(population, tiny_base_dir):
    rows, held_out, _ = population
    with pytest.raises(RuntimeError, match="not fitted"):
        make_detector("meta-queries").score_model(load_subject(held_out[1], None, tiny_base_dir))
    with pytest.raises(ValueError, match="only one label"):
        make_detector("meta-queries", n_candidates=4).fit_population([r for r in rows if r.label == 1])
