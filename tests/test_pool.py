"""Pooling finished runs: one board over several blind zoos, every figure recomputable, nothing mixed."""

import json

import pytest

from detectors.benchmark.cli import main
from detectors.benchmark.pool import PoolError, pool_runs
from detectors.benchmark.run_folder import write_run
from detectors.benchmark.verify import verify_run
from test_report_html import synthetic_run


def _run(zoo_id: str, n_units: int, seed: int, **changes):
    results, items = synthetic_run(n_units, zoo_id=zoo_id, seed=seed)
    results.update(changes)
    return write_run(results, items)


def test_two_runs_pool_into_one_board_over_all_their_units(isolated_home, capsys):
    first, second = _run("aaaaaaaa", 4, 1), _run("bbbbbbbb", 5, 2)
    run_dir, pooled = pool_runs([first, second])
    alpha = pooled["figures"]["alpha"]["zoos"]["blind"]["model"]["all"]
    assert alpha["units"] == 9 and alpha["backdoors"] == 9 and alpha["controls"] == 18
    single = json.loads((first / "results.json").read_text())["figures"]["alpha"]["zoos"]["blind"]["model"]["all"]
    assert single["units"] == 4
    # more units, a narrower interval for the same separation
    assert alpha["auroc"]["high"] - alpha["auroc"]["low"] <= single["auroc"]["high"] - single["auroc"]["low"]
    assert pooled["comparisons"]["blind"]["units"] == 9 and len(pooled["blind_zoos"]) == 2
    assert verify_run(run_dir)[1] == []  # every pooled figure recomputes from the pooled items
    assert (run_dir / "report.html").is_file() and not pooled["seen_seed"]
    assert main(["pool", str(first), str(second)]) == 0 and "alpha beats beta" in capsys.readouterr().out


def test_runs_that_cannot_pool_are_refused_in_one_line(isolated_home, capsys):
    first = _run("aaaaaaaa", 3, 1)
    with pytest.raises(PoolError, match="share no detector run with one fingerprint"):
        pool_runs([first, _run("cccccccc", 3, 2, detector_fingerprint={"per_detector": {"alpha": "x", "beta": "y"}})])
    with pytest.raises(PoolError, match="pool runs of different blind zoos"):
        pool_runs([first, _run("aaaaaaaa", 3, 3)])
    with pytest.raises(PoolError, match="at least two"):
        pool_runs([first])
    assert main(["pool", str(first), str(first.parent / "no-such-run")]) == 2
    assert "not a readable benchmark run" in capsys.readouterr().err


def test_a_pool_holding_a_seen_zoo_is_a_development_figure(isolated_home):
    seen = _run("dddddddd", 3, 4, blind_zoos=[{"zoo_id": "dddddddd", "fresh": False, "seed_hash": "1" * 16,
                                               "seen_seed": True, "size": 9, "runs_before": 0}])
    _, pooled = pool_runs([_run("aaaaaaaa", 3, 1), seen])
    assert pooled["seen_seed"] is True


def test_runs_of_different_detector_sets_pool_on_the_detectors_they_share(isolated_home):
    first = _run("aaaaaaaa", 4, 1)
    changed = _run("bbbbbbbb", 4, 2, detector_fingerprint={"per_detector": {"alpha": "alpha-ffffffff", "beta": "new"}})
    run_dir, pooled = pool_runs([first, changed])
    assert pooled["settings"]["detectors"] == ["alpha"] and pooled["left_out"] == ["beta"]
    assert set(pooled["figures"]) == {"alpha"} and pooled["figures"]["alpha"]["zoos"]["blind"]["model"]["all"]["units"] == 8
    assert "left out, not run with one fingerprint in every run: beta" in (run_dir / "report.md").read_text()
    assert verify_run(run_dir)[1] == []


def test_a_run_from_before_per_detector_keys_gets_them_only_where_its_set_key_proves_the_code_the_same():
    from detectors.base import load_built_in_detectors
    from detectors.benchmark.freeze import code_fingerprint, detector_fingerprints, settings_fingerprint
    from detectors.benchmark.pool import per_detector

    load_built_in_detectors()
    params = {"random": {"seed": 0, "budget": 0}, "weight-spectrum": {"seed": 0, "budget": 0, "top_k": 4}}
    old = {"detectors": {d: {"params": p} for d, p in params.items()},
           "detector_fingerprint": {"settings": settings_fingerprint(params), "code": code_fingerprint(sorted(params))}}
    assert per_detector(old) == detector_fingerprints(params)
    old["detector_fingerprint"]["code"] = "0" * 16  # run under other code: nothing can be said per detector
    assert per_detector(old) == {}
