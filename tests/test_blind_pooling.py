"""`blind:all` pools only blind zoos nobody has seen, and every run says which zoos it used and how."""

from __future__ import annotations

import pytest

from detectors.base import load_built_in_detectors
from detectors.benchmark.run import _blind_zoo_ids, count_blind_use
from detectors.benchmark.freeze import fingerprint
from detectors.benchmark.protocol import Member
from organisms.blind_zoo import (blind_zoo_record, count_benchmark_use, current_zoo_id, fresh_seed,
                                 write_manifest)


def _draw(seen: bool) -> str:
    write_manifest(1234 if seen else fresh_seed(), 7, seen_seed=seen)
    return current_zoo_id()


def test_blind_all_pools_fresh_zoos_of_these_settings_only():
    fresh_a = _draw(seen=False)
    seen = _draw(seen=True)
    other_settings = _draw(seen=False)
    count_benchmark_use("settings-of-another-run", other_settings)
    fresh_b = _draw(seen=False)  # the current zoo

    pooled = _blind_zoo_ids(("blind:all",), "these-settings")
    assert sorted(pooled) == sorted([fresh_a, fresh_b])
    assert _blind_zoo_ids(("blind",), "these-settings") == [fresh_b]
    # The current zoo is benchmarked when asked for by name, seen or not: its figures are then marked.
    write_manifest(99, 7, seen_seed=True)
    assert _blind_zoo_ids(("blind",), "these-settings") == [current_zoo_id()]
    assert seen not in pooled and other_settings not in pooled


def test_a_zoo_first_benchmarked_with_these_settings_stays_in_the_pool_for_them():
    zoo = _draw(seen=False)
    count_benchmark_use("these-settings", zoo)
    assert _blind_zoo_ids(("blind:all",), "these-settings") == [zoo]
    assert _blind_zoo_ids(("blind:all",), "changed-defaults") == []


def test_runs_record_the_seed_hash_and_the_use_count_never_the_seed(tmp_path):
    zoo = _draw(seen=False)
    member = Member(name=f"blind-{zoo}-01", zoo="blind", truth=None, blind_zoo=zoo)
    first = count_blind_use({member.name: member}, "these-settings")
    second = count_blind_use({member.name: member}, "these-settings")
    record = blind_zoo_record(zoo)
    assert [r["runs_before"] for r in first + second] == [0, 1]
    assert first[0]["fresh"] and second[0]["fresh"]
    assert first[0]["seed_hash"] == record["seed_hash"]
    assert "seed" not in first[0] and all(len(str(v)) < 40 for v in first[0].values())

    seen_zoo = _draw(seen=True)
    seen_member = Member(name=f"blind-{seen_zoo}-01", zoo="blind", truth=None, blind_zoo=seen_zoo)
    (row,) = count_blind_use({seen_member.name: seen_member}, "these-settings")
    assert row["seen_seed"] and not row["fresh"]


def test_the_fingerprint_moves_with_a_detector_default():
    load_built_in_detectors()
    params = {"random": {"seed": 0, "budget": 0}}
    assert fingerprint(params) == fingerprint({"random": {"budget": 0, "seed": 0}})
    assert fingerprint(params) != fingerprint({"random": {"seed": 1, "budget": 0}})


def test_a_detector_s_key_moves_with_the_helpers_its_method_imports(monkeypatch):
    """grammar-search computes its divergences in detectors.divergence: a changed divergence is a changed
    grammar-search, and leaves `random`, which never imports it, as it was."""
    import inspect

    from detectors.benchmark.freeze import detector_fingerprints

    load_built_in_detectors()
    params = {"grammar-search": {"seed": 0}, "random": {"seed": 0}}
    before = detector_fingerprints(params)
    real = inspect.getsource
    monkeypatch.setattr(inspect, "getsource", lambda obj: real(obj) + (
        "\nJS_IN_NATS = True\n" if getattr(obj, "__name__", "") == "detectors.divergence" else ""))
    after = detector_fingerprints(params)
    assert after["grammar-search"] != before["grammar-search"] and after["random"] == before["random"]


def test_the_fingerprint_of_learners_moves_with_the_training_zoo_they_fit_on():
    from detectors.benchmark.freeze import training_fingerprint

    load_built_in_detectors()
    params = {"meta-weights": {"seed": 0}}
    built = training_fingerprint([("train-01", "key-a"), ("train-02", "key-b")])
    assert built == training_fingerprint([("train-02", "key-b"), ("train-01", "key-a")])  # not by order
    rebuilt = training_fingerprint([("train-01", "key-a"), ("train-02", "key-c")])
    assert fingerprint(params, built) != fingerprint(params, rebuilt) != fingerprint(params)
    assert fingerprint(params, None) == fingerprint(params)  # a set without learners keeps its key


def test_a_new_draw_keeps_the_zoos_before_it():
    from organisms.blind_zoo import BlindZooError, blind_members, blind_zoos

    first = {m.spec.name for m in blind_members(size=7)}
    assert {m.spec.name for m in blind_members(size=7)} == first  # the current zoo, not a new one
    second = {m.spec.name for m in blind_members(size=7, new_draw=True)}
    assert not first & second
    records = blind_zoos()
    assert len(records) == 2 and not any(r["seen_seed"] for r in records)
    with pytest.raises(BlindZooError, match="fresh seed"):
        blind_members(seed=5, new_draw=True)
