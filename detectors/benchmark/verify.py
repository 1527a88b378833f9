"""Recompute every figure of a run from its saved items and compare: `python -m detectors verify RUN_DIR`."""

from __future__ import annotations

import json
from pathlib import Path

from detectors.benchmark.report import read_items
from detectors.benchmark.scoring import comparisons, figures


class VerifyError(ValueError):
    """A run directory that cannot be verified (missing or damaged files); one line."""


def _differences(expected, actual, path: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual)):
            if key not in expected or key not in actual:
                out.append(f"{path}/{key}: only in {'the recomputation' if key in actual else 'results.json'}")
            else:
                out += _differences(expected[key], actual[key], f"{path}/{key}")
        return out
    same = json.dumps(expected, sort_keys=True) == json.dumps(actual, sort_keys=True)
    return [] if same else [f"{path}: results.json has {json.dumps(expected)}, the items give {json.dumps(actual)}"]


def verify_run(run_dir: str | Path) -> tuple[int, list[str]]:
    """(figures checked, mismatches): recomputes `figures` and `comparisons` from `items/` with the run's own
    settings. A run from before comparisons were recorded has none, and is reported as a mismatch."""
    run_dir = Path(run_dir)
    results_path = run_dir / "results.json"
    if not results_path.is_file() or not (run_dir / "items").is_dir():
        raise VerifyError(f"{run_dir} is not a benchmark run directory (no results.json and items/)")
    try:
        results = json.loads(results_path.read_text())
        items = read_items(run_dir / "items")
    except (OSError, ValueError, KeyError) as error:
        raise VerifyError(f"{run_dir}: cannot read the run ({type(error).__name__}: {error})") from None
    settings = results["settings"]
    recomputed = json.loads(json.dumps({"figures": figures(items, settings),
                                        "comparisons": comparisons(items, settings)}))
    expected = {"figures": results["figures"], "comparisons": results.get("comparisons")}
    checked = len(_leaves(expected))
    return checked, _differences(expected, recomputed)


def _leaves(value) -> list:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [value]
