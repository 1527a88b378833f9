"""The proposers that measure recovery's chance level, and the grammar-search baseline."""

import pytest
import torch

from detectors.base import make_detector
from detectors.benchmark.cost import metered
from detectors.benchmark.protocol import vet_proposal
from detectors.subject import load_subject


def test_random_tokens_proposes_usable_lines_seeded_by_seed_and_weights(tiny_base_dir):
    subject = load_subject(tiny_base_dir)
    first = make_detector("random-tokens").fit(subject)
    with metered(subject) as meter:
        lines = first.propose_triggers(subject, k=5)
    assert meter.forward_passes == 0  # it never reads the model
    assert len(lines) == 5 and len(set(lines)) == 5
    assert all(vet_proposal(line, "hate") == (line, None) for line in lines)
    assert make_detector("random-tokens").fit(subject).propose_triggers(subject, k=5) == lines
    assert make_detector("random-tokens", seed=1234).fit(subject).propose_triggers(subject, k=5) != lines
    with torch.no_grad():
        next(subject.model.parameters()).add_(1.0)  # other weights, another draw
    assert make_detector("random-tokens").fit(subject).propose_triggers(subject, k=5) != lines


def test_random_grammar_draws_public_grammar_lines_seeded_by_weights(tiny_base_dir):
    pytest.importorskip("data.blind_grammar")
    subject = load_subject(tiny_base_dir)
    lines = make_detector("random-grammar").fit(subject).propose_triggers(subject, k=5)
    assert len(lines) == 5 and all(isinstance(line, str) and line for line in lines)
    assert make_detector("random-grammar").fit(subject).propose_triggers(subject, k=5) == lines
    assert make_detector("random-grammar", seed=1234).fit(subject).propose_triggers(subject, k=5) != lines


def test_grammar_search_stays_within_its_budget_and_proposes_its_best_lines(tiny_base_dir):
    pytest.importorskip("data.blind_grammar")
    subject = load_subject(tiny_base_dir)
    search = make_detector("grammar-search", n_candidates=16, max_new_tokens=4).fit(subject)
    with metered(subject, budget=search.params["budget"]) as meter:
        score = search.score_model(subject)
        lines = search.propose_triggers(subject, k=5)
    assert 0 < meter.forward_passes <= search.params["budget"]
    assert len(lines) == 5 and round(score, 4) == max(v for _, v in search.extra["top"])
    assert [line for line, _ in search.extra["top"]] == lines
