"""Pool finished runs on different blind zoos into one board, without running a cell again.

`python -m detectors pool RUN_DIR RUN_DIR ...` joins the blind items of runs on disjoint blind zoos, for
the detectors every run holds with one fingerprint (the same parameters and code; for a learner, the
same training zoo), and computes every figure and paired comparison over the union, unit by unit,
exactly as a run does
(`detectors.benchmark.scoring`), into a run folder of its own that `verify` recomputes. It gives
the board of `--zoo blind:all` from runs already made, at no cost in cells: more zoos, more units,
tighter intervals. A pooled board is fresh only if every run in it was (its zoo unseen, and these
settings the first to benchmark it); otherwise it is headed as development figures like any other.
"""

from __future__ import annotations

import json
from pathlib import Path

from detectors.base import load_built_in_detectors
from detectors.benchmark.freeze import code_fingerprint, detector_fingerprints, settings_fingerprint
from detectors.benchmark.report import read_items
from detectors.benchmark.run_folder import write_run
from detectors.benchmark.scoring import comparisons, figures


class PoolError(ValueError):
    """Runs that cannot be pooled; one line."""


def _read(run_dir: Path) -> tuple[dict, dict]:
    try:
        return json.loads((run_dir / "results.json").read_text()), read_items(run_dir / "items")
    except (OSError, ValueError, KeyError) as error:
        raise PoolError(f"{run_dir} is not a readable benchmark run ({type(error).__name__}: {error})") from None


def _blind_only(items: dict) -> dict:
    """The run's items of blind members alone (the dev zoo is the same zoo in every run: pooling it would
    count its members twice)."""
    blind = {m["name"] for m in items["members"] if m["zoo"] == "blind"}
    out = {name: [row for row in rows if row.get("name", row.get("organism")) in blind]
           for name, rows in items.items() if name != "features"}
    out["features"] = {d: {o: a for o, a in by.items() if o in blind} for d, by in items.get("features", {}).items()}
    return out


def per_detector(results: dict) -> dict[str, str]:
    """A run's fingerprint of each detector. A run from before they were recorded gets them from today's
    code only where its recorded set fingerprint proves that code and those parameters the same; else none."""
    recorded = results.get("detector_fingerprint") or {}
    if recorded.get("per_detector"):
        return recorded["per_detector"]
    params = {name: d["params"] for name, d in (results.get("detectors") or {}).items()}
    load_built_in_detectors()
    try:
        same = (code_fingerprint(sorted(params)) == recorded.get("code")
                and settings_fingerprint(params) == recorded.get("settings") and recorded.get("training") is None)
    except KeyError:  # a detector this code no longer has
        return {}
    return detector_fingerprints(params) if params and same else {}


def _common_detectors(runs) -> tuple[list[str], list[str]]:
    """(detectors every run holds with one fingerprint, detectors some run holds that are left out)."""
    keys = [per_detector(results) for _, results, _ in runs]
    held = set().union(*keys)
    common = sorted(d for d in held if all(k.get(d) is not None and k.get(d) == keys[0].get(d) for k in keys))
    return common, sorted(held - set(common))


def _only(items: dict, detectors: set[str]) -> dict:
    out = {name: [row for row in rows if "detector" not in row or row["detector"] in detectors]
           for name, rows in items.items() if name != "features"}
    out["features"] = {d: by for d, by in items.get("features", {}).items() if d in detectors}
    return out


def pool_runs(run_dirs: list[str | Path]) -> tuple[Path, dict]:
    if len(run_dirs) < 2:
        raise PoolError("pool needs at least two run folders")
    runs = [(Path(d), *_read(Path(d))) for d in run_dirs]
    first = runs[0][1]
    common, left_out = _common_detectors(runs)
    if not common:
        raise PoolError(f"{', '.join(str(d) for d, _, _ in runs)} share no detector run with one fingerprint "
                        "(the same parameters and code): nothing to pool")
    items: dict = {"features": {}}
    seen_members: dict[str, str] = {}
    for run_dir, results, run_items in runs:
        blind = _only(_blind_only(run_items), set(common))
        if not blind["members"]:
            raise PoolError(f"{run_dir} benchmarked no blind zoo")
        for member in blind["members"]:
            if member["name"] in seen_members:
                raise PoolError(f"{member['name']} is in {seen_members[member['name']]} and {run_dir}: pool runs "
                                "of different blind zoos")
            seen_members[member["name"]] = str(run_dir)
        for name, rows in blind.items():
            if name == "features":
                for detector, by_organism in rows.items():
                    items["features"].setdefault(detector, {}).update(by_organism)
            else:
                items.setdefault(name, []).extend(rows)
    settings = {**first["settings"], "zoos": ["blind"], "detectors": common}
    zoos = [zoo for _, results, _ in runs for zoo in results.get("blind_zoos", [])]
    pooled = {
        "figures": figures(items, settings), "comparisons": comparisons(items, settings), "settings": settings,
        "detectors": {d: v for d, v in (first.get("detectors") or {}).items() if d in common},
        "detector_fingerprint": {"per_detector": {d: per_detector(first)[d] for d in common}},
        "left_out": left_out,
        "members": {m["name"]: {"zoo": m["zoo"], "kind": m["kind"]} for m in sorted(items["members"],
                                                                                      key=lambda m: m["name"])},
        "unbuilt": [n for _, results, _ in runs for n in results.get("unbuilt", []) if n.startswith("blind-")],
        "seal": first.get("seal"), "cells": sum(r.get("cells", 0) for _, r, _ in runs),
        "timings": {k: round(sum(r.get("timings", {}).get(k, 0) for _, r, _ in runs), 1)
                    for k in ("labelling", "cells", "recovery")},
        "blind_zoos": zoos, "seen_seed": any(not z.get("fresh") for z in zoos),
        "pooled_from": [results.get("run_id", str(run_dir)) for run_dir, results, _ in runs],
        "versions": first.get("versions"), "command": "pool " + " ".join(str(d) for d in run_dirs),
        "config": first.get("config"), "seconds": round(sum(r.get("seconds", 0) for _, r, _ in runs), 1),
    }
    return write_run(pooled, items), pooled
