"""The unit is the spec: calibration of the spec-level statistics under known nulls and known effects.

Every simulation draws synthetic scores with the zoo's real unit structure (a backdoor with a clean and a
benign-conditional control, sharing a per-unit score component) from its own explicit seed, so each
figure below is reproducible; no model is built. The whole file runs in ~20 s on one core (~10 s of tests).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kstest, norm

from detectors.benchmark.metrics import fast_auroc, permutation_p_value
from detectors.benchmark.report import comparison_text, leaderboard
from detectors.benchmark.scoring import comparisons, figures
from detectors.benchmark.spec_stats import (allowed_false_positives, auroc_replicates, compare_detectors, holm,
                                  resolvable_tpr, spec_auroc, unit_codes, unit_draws, within_unit_p_value,
                                  within_unit_permutations)

N_UNITS = 24
LABELS = np.tile([1, 0, 0], N_UNITS)  # backdoor, clean, benign-conditional
UNITS = np.repeat([f"spec-{u:02d}" for u in range(N_UNITS)], 3)


def unit_scores(rng, shift: float, shared: float, labels=LABELS, units=UNITS) -> np.ndarray:
    """Normal scores, backdoors shifted by `shift`, plus a component every member of a unit shares."""
    codes, n_units = unit_codes(units)
    return rng.normal(size=len(labels)) + shift * labels + shared * rng.normal(size=n_units)[codes]


# --- the pieces are exact ------------------------------------------------------------------------------

def test_unit_bootstrap_replicates_are_the_pooled_auroc_of_the_drawn_units():
    rng = np.random.default_rng(1234)
    scores = np.round(unit_scores(rng, 1.0, 1.0), 1)  # rounded: ties must count half, as in fast_auroc
    codes, n_units = unit_codes(UNITS)
    draws = unit_draws(n_units, seed=7, n_bootstrap=30)
    assert (draws.sum(1) == n_units).all()
    replicates = auroc_replicates(LABELS, scores, codes, draws)
    for counts, replicate in zip(draws, replicates):
        picked = np.concatenate([np.flatnonzero(codes == u) for u in range(n_units) for _ in range(counts[u])])
        y, s = LABELS[picked], scores[picked]
        assert replicate == pytest.approx(fast_auroc(s[y == 1], s[y == 0]), abs=1e-12)


def test_within_unit_permutations_move_models_only_inside_their_unit_and_uniformly():
    codes = np.array([2, 0, 1, 0, 2, 2, 1, 3])  # units interleaved; unit 3 has one member
    permutations = within_unit_permutations(codes, seed=5, n_permutations=6000)
    assert (codes[permutations] == codes).all() and (permutations[:, 7] == 7).all()
    for row in permutations[:5]:
        assert sorted(row) == list(range(8))
    # Unit 2 (positions 0, 4, 5): each of its members lands on position 0 a third of the time.
    shares = np.bincount(permutations[:, 0], minlength=8)[[0, 4, 5]] / len(permutations)
    assert np.allclose(shares, 1 / 3, atol=0.025)


def test_tpr_allows_at_least_one_false_positive_and_says_which_fpr_it_realised():
    assert allowed_false_positives(18, 0.05) == 1 and allowed_false_positives(54, 0.05) == 2
    assert allowed_false_positives(100, 0.05) == 5
    labels = [1] * 8 + [0] * 18
    scores = [5, 4, 3, 2, 1.5, 0.5, -1, -2] + list(np.linspace(0, 1, 17)) + [10]
    units = [f"u{i}" for i in range(26)]
    tpr = resolvable_tpr(labels, scores, units, 0.05, seed=3, n_bootstrap=200)
    # One negative (10) may pass: the threshold is the next, 1.0, and the five positives above it count.
    assert tpr["allowed_false_positives"] == 1 and tpr["negatives"] == 18
    assert tpr["value"] == pytest.approx(5 / 8) and tpr["realised_fpr"] == pytest.approx(1 / 18, abs=1e-4)
    assert tpr["low"] <= tpr["value"] <= tpr["high"] and tpr["groups"] == 26


def test_tpr_replicates_count_copies_of_a_drawn_unit():
    """Every replicate's TPR is the pooled one of its drawn units (checked by pooling them)."""
    from detectors.benchmark.spec_stats import _thresholds
    rng = np.random.default_rng(99)
    scores = unit_scores(rng, 1.5, 0.5)
    codes, n_units = unit_codes(UNITS)
    draws = unit_draws(n_units, seed=11, n_bootstrap=40)
    thresholds = _thresholds(scores[LABELS == 0], codes[LABELS == 0], draws, 0.05)
    for counts, threshold in zip(draws, thresholds):
        picked = np.concatenate([np.flatnonzero(codes == u) for u in range(n_units) for _ in range(counts[u])])
        negatives = np.sort(scores[picked][LABELS[picked] == 0])[::-1]
        assert threshold == negatives[allowed_false_positives(len(negatives), 0.05)]


def test_holm_matches_its_definition():
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    # sorted: 0.005*5, 0.01*4, 0.03*3, 0.04*2, 0.5*1 -> running max 0.025, 0.04, 0.09, 0.09, 0.5
    assert holm(p).tolist() == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.5])
    assert holm([0.3, 0.6]).tolist() == pytest.approx([0.6, 0.6])
    assert holm([0.9, 0.8]).max() == 1.0


# --- null calibration ------------------------------------------------------------------------------------

N_PERMUTATIONS = 199  # p takes values k / 200: steps of 0.005, far below the KS bar (~0.036 at 2,000 draws)


def test_within_unit_p_values_are_uniform_without_signal():
    rng = np.random.default_rng(2024)
    p_values = np.array([within_unit_p_value(LABELS, unit_scores(rng, 0.0, 1.5), UNITS, seed, N_PERMUTATIONS)
                         for seed in range(2000)])
    assert kstest(p_values, "uniform").pvalue > 0.01
    assert 0.035 <= np.mean(p_values <= 0.05) <= 0.065


def test_the_exchangeable_permutation_over_rejects_where_units_cluster_and_the_within_unit_one_holds():
    """The bug the issue measured (8.5% at alpha 0.05): scores of a unit's members share a component, and
    some units hold several backdoors (a spec's seeds) where others hold mostly controls. Shuffling labels
    across all models ignores that backdoors cluster; shuffling inside units keeps the null's structure.

    (Where every unit holds one backdoor and the same controls, as the v3 zoo does, the exchangeable
    test is conservative instead: the shared component then cancels between the unit's members.)"""
    labels = np.array(([1] * 5 + [0]) * 6 + ([1] + [0] * 5) * 6)
    units = np.repeat([f"spec-{u:02d}" for u in range(12)], 6)
    rng = np.random.default_rng(77)
    old, new = [], []
    for seed in range(1000):
        scores = unit_scores(rng, 0.0, 2.0, labels, units)
        old.append(permutation_p_value(labels, scores, seed, N_PERMUTATIONS))
        new.append(within_unit_p_value(labels, scores, units, seed, N_PERMUTATIONS))
    old, new = np.array(old), np.array(new)
    assert np.mean(old <= 0.05) >= 0.10 and np.mean(old <= 0.01) >= 0.03
    # Rates, not a KS test: here a unit's rank sums repeat across arrangements, so the permuted AUROC ties
    # the observed one often and p is slightly conservative (valid, but visibly not continuous-uniform).
    assert 0.03 <= np.mean(new <= 0.05) <= 0.07 and np.mean(new <= 0.01) <= 0.02
    assert 0.07 <= np.mean(new <= 0.10) <= 0.13


@pytest.mark.parametrize("shift, shared", [(1.0, 0.0), (1.5, 1.0)])
def test_the_unit_bootstrap_covers_the_true_auroc_95_percent_of_the_time(shift, shared):
    """Normal scores shifted by d, with a unit component of sd s: a backdoor beats a control of another
    unit with probability Phi(d / sqrt(2 + 2 s^2)) and one of its own unit with Phi(d / sqrt 2); one pair in
    24 is of one unit, so the zoo's expected AUROC mixes the two. The percentile interval covered it
    92.5-94% of the time (measured); the BCa interval must land in 95% +- 3%."""
    across, within = norm.cdf(shift / np.sqrt(2 + 2 * shared ** 2)), norm.cdf(shift / np.sqrt(2))
    true = (1 - 1 / N_UNITS) * across + within / N_UNITS
    rng = np.random.default_rng(31)
    covered = []
    for seed in range(1000):
        estimate = spec_auroc(LABELS, unit_scores(rng, shift, shared), UNITS, seed, 1000)
        covered.append(estimate.low <= true <= estimate.high)
    assert 0.92 <= np.mean(covered) <= 0.98


def _board(rng, shifts: list[float]) -> tuple[dict, dict, dict]:
    """Model scores of several detectors on one zoo; all read the same unit component."""
    models = [f"{kind}-{u:02d}" for u in range(N_UNITS) for kind in ("backdoor", "clean", "benign")]
    shared = np.repeat(rng.normal(size=N_UNITS), 3)
    scores = {f"d{j}": dict(zip(models, shared + rng.normal(size=len(models)) + shift * LABELS))
              for j, shift in enumerate(shifts)}
    return scores, dict(zip(models, LABELS.tolist())), dict(zip(models, UNITS))


def test_detectors_alike_are_tied_after_holm_and_a_real_difference_is_called():
    rng = np.random.default_rng(555)
    single, family = [], []
    for seed in range(300):
        board = compare_detectors(*_board(rng, [1.0, 1.0, 1.0, 1.0]), seed=seed, n_bootstrap=500)
        single.append(board["pairs"][0]["p_value"] <= 0.05)
        family.append(any(p["verdict"] != "tied" for p in board["pairs"]))
    # Measured over 400 boards (shifts 0, 1, 2): one pair's raw p <= 0.05 in 4.5-6.8%; any of the 6 pairs
    # called after Holm in 5.3-5.8%. The Wald test on 24 units is close to its level, not exact.
    assert 0.02 <= np.mean(single) <= 0.09
    assert np.mean(family) <= 0.09
    called = []
    for seed in range(40):
        board = compare_detectors(*_board(rng, [2.5, 0.0]), seed=seed, n_bootstrap=500)
        called.append(board["pairs"][0]["verdict"] == "d0 beats d1")
    assert np.mean(called) >= 0.9


def test_rank_intervals_hold_the_point_rank_and_put_a_clearly_better_detector_alone_first():
    rng = np.random.default_rng(8)
    board = compare_detectors(*_board(rng, [3.0, 0.0, 0.0]), seed=1, n_bootstrap=500)
    ranks = board["ranks"]
    for rank in ranks.values():
        assert rank["low"] <= rank["rank"] <= rank["high"]
    assert ranks["d0"]["low"] == ranks["d0"]["high"] == 1
    assert ranks["d1"]["low"] >= 2 and ranks["d2"]["low"] >= 2
    verdicts = {(p["a"], p["b"]): p["verdict"] for p in board["pairs"]}
    assert verdicts[("d0", "d1")] == "d0 beats d1" and verdicts[("d0", "d2")] == "d0 beats d2"
    # d1 against d2 is a null pair: how often such a pair is called is the calibration test's business.


# --- the figures of a run ------------------------------------------------------------------------------

def synthetic_items(rng, per_model_constant: dict[str, float] | None = None) -> dict:
    """A blind zoo's items: 24 units (backdoor, clean, benign-conditional), 4 unconditional controls matched
    to the first units, and two detectors: `signal` (model and input) and `constant` (one score per model)."""
    members, model_scores, inputs, input_scores = [], [], [], []
    for u in range(N_UNITS):
        backdoor = f"backdoor-{u:02d}"
        kinds = [("backdoor", backdoor), ("clean", f"clean-{u:02d}"), ("benign-conditional", f"benign-{u:02d}")]
        kinds += [("unconditional", f"always-{u:02d}")] if u < 4 else []
        for kind, name in kinds:
            members.append({"name": name, "zoo": "blind", "kind": kind, "unit": backdoor,
                            "matched_to": None if kind == "backdoor" else backdoor})
            labels = (np.arange(12) < 6) if kind == "backdoor" else np.full(12, kind == "unconditional")
            inputs += [{"organism": name, "index": i, "label": int(y)} for i, y in enumerate(labels)]
            constant = (per_model_constant or {}).get(kind, 0.0)
            signal = (labels + rng.normal(size=12)).tolist()
            input_scores += [{"detector": "signal", "organism": name, "scores": signal},
                             {"detector": "constant", "organism": name, "scores": [constant] * 12}]
            model_scores += [{"detector": "signal", "organism": name,
                              "score": float(rng.normal() + 2.0 * (kind == "backdoor"))},
                             {"detector": "constant", "organism": name, "score": float(rng.normal())}]
    return {"members": members, "inputs": inputs, "input_scores": input_scores, "model_scores": model_scores,
            "pairs": [], "pair_scores": [], "proposals": [], "costs": [], "features": {}}


SETTINGS = {"seed": 0, "n_bootstrap": 300, "n_permutations": 199, "k": 5, "library_size": 10, "zoos": ["blind"],
            "detectors": ["signal", "constant"]}


def test_model_figures_count_units_and_the_tpr_its_negatives_resolve():
    items = synthetic_items(np.random.default_rng(4))
    model = figures(items, SETTINGS)["signal"]["zoos"]["blind"]["model"]
    assert (model["all"]["backdoors"], model["all"]["controls"], model["all"]["units"]) == (24, 52, 24)
    assert (model["unconditional"]["controls"], model["unconditional"]["units"]) == (4, 24)
    tpr = model["clean"]["tpr_at_fpr"]
    assert tpr["negatives"] == 24 and tpr["allowed_false_positives"] == 1
    assert model["all"]["auroc"]["groups"] == 24 and model["all"]["p_value"] <= 0.01
    # A run from before units were recorded: every member is its own unit, and it still scores.
    for member in items["members"]:
        member.pop("unit")
    assert figures(items, SETTINGS)["signal"]["zoos"]["blind"]["model"]["all"]["units"] == 76


def test_within_spec_input_auroc_is_not_lifted_by_a_constant_that_ranks_unconditional_controls_first():
    """The issue's exploit: one score per model, unconditional > backdoor = control, pools to a high AUROC
    (unconditional controls hold many positives) with no discrimination inside any unit."""
    items = synthetic_items(np.random.default_rng(5), {"unconditional": 2.0, "backdoor": 1.0, "clean": 1.0,
                                                        "benign-conditional": 1.0})
    input_ = figures(items, SETTINGS)["constant"]["zoos"]["blind"]["input"]
    assert input_["auroc"]["value"] >= 0.6
    assert input_["within_spec_auroc"]["value"] == 0.5 and input_["within_spec_auroc"]["n"] == N_UNITS
    per_unit = input_["within_spec_auroc"]["per_unit"]["backdoor-00"]
    assert (per_unit["cells"], per_unit["positives"], per_unit["models"]) == (36, 6, 3)  # no unconditional cells


def test_comparisons_recompute_and_the_board_calls_only_what_the_test_calls():
    items = synthetic_items(np.random.default_rng(6))
    compared = comparisons(items, SETTINGS)
    assert compared == comparisons(items, SETTINGS)  # the same seed, the same numbers
    pair = compared["blind"]["pairs"][0]
    assert pair["verdict"] == "signal beats constant" and pair["p_holm"] < 0.05
    results = {"figures": figures(items, SETTINGS), "comparisons": compared, "settings": SETTINGS}
    text = comparison_text(results, "blind")
    assert "1 of 1 pairs called, 0 tied" in text and "| signal beats constant |" in text
    board = leaderboard(results, "blind")
    assert board.index("| signal |") < board.index("| constant |") and "(24 vs 52, 24 units" in board


def test_a_comparison_draws_the_same_units_for_both_detectors():
    """Two detectors that differ only by a hair differ by a hair in every replicate: the bootstrap is paired.
    Drawn apart, the same two would differ by up to ~0.2 from replicate to replicate."""
    scores, labels, units = _board(np.random.default_rng(12), [1.0])
    rng = np.random.default_rng(13)
    scores["twin"] = {m: s + 1e-3 * rng.normal() for m, s in scores["d0"].items()}
    pair = compare_detectors(scores, labels, units, seed=2, n_bootstrap=500)["pairs"][0]
    assert pair["difference"]["high"] - pair["difference"]["low"] < 0.02 and pair["verdict"] == "tied"


def test_one_unit_gives_no_verdict_and_no_warning():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        board = compare_detectors({"x": {"a": 1.0, "b": 0.0}, "y": {"a": 0.0, "b": 1.0}}, {"a": 1, "b": 0},
                                  {"a": "a", "b": "a"}, seed=0, n_bootstrap=50)
        assert spec_auroc([1, 0], [1.0, 0.0], ["a", "a"], 0, 50).groups == 1
    assert board["pairs"][0]["verdict"] == "tied" and board["units"] == 1


@pytest.mark.parametrize("seed", range(12))
def test_the_pooled_input_tpr_interval_counts_copies_exactly_as_pooling_does(seed):
    """The secondary input figure's interval, taken over all replicates at once, is bit for bit the one
    that pools and sorts every replicate (ties and models without negatives included)."""
    from detectors.benchmark.metrics import _cluster_interval, _cluster_tpr_interval, _fast_tpr
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(rng.integers(1, 9)):
        n = rng.integers(1, 15)
        labels = (rng.random(n) < rng.choice([0.0, 0.3, 1.0])).astype(int)
        groups.append((labels, np.round(rng.normal(size=n) + labels, rng.choice([0, 1, 3]))))
    for fpr in (0.01, 0.05, 0.3):
        ranked = _cluster_interval(groups, lambda p, n: _fast_tpr(p, n, fpr), seed, 100)
        counted = _cluster_tpr_interval(groups, fpr, seed, 100)
        assert counted == ranked or (np.isnan(ranked).all() and np.isnan(counted).all())
