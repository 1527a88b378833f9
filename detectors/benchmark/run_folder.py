"""A run's folder: its per-item records, its figures (results.json), the reports and the plots.

    reports/<run-id>/results.json   every figure, the settings, the detectors' parameters, versions
    reports/<run-id>/report.md      the leaderboards, blind zoo first, and the plots (for terminals)
    reports/<run-id>/report.html    the same and more in one self-contained page (report_html)
    reports/<run-id>/items/         every item the figures come from (owner-only: it names the
                                    blind zoo's triggers, so treat it like the truth store)

The folder is written under a temporary name and renamed into place, so an interrupted run leaves
nothing that looks like a finished one; `reports/latest` points at the newest.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from data.store import atomic_write_text, mesalab_home, publish_directory, remove_leftovers, staging_directory
from detectors.benchmark.report import plot_input_rocs, plot_model_scores, report_text, write_items
from detectors.benchmark.report_html import html_report


def write_run(results: dict, items: dict) -> Path:
    reports = mesalab_home() / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    remove_leftovers(reports)  # what a killed run left
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-seed{results['settings']['seed']}"
    suffix = 1
    while (reports / name).exists():
        suffix += 1
        name = f"{stamp}-seed{results['settings']['seed']}-{suffix}"
    results["run_id"] = name
    target = reports / name
    with staging_directory(target) as staging:
        write_items(staging / "items", items)
        plots = []
        for zoo in results["settings"]["zoos"]:
            if plot_input_rocs(items, zoo, staging / f"roc_input_{zoo}.png"):
                plots.append(f"roc_input_{zoo}.png")
            if plot_model_scores(items, zoo, staging / f"model_scores_{zoo}.png"):
                plots.append(f"model_scores_{zoo}.png")
        (staging / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        (staging / "report.md").write_text(report_text(results, plots))
        pictures = {p: (staging / p).read_bytes() for p in plots}
        (staging / "report.html").write_text(html_report(results, items, pictures))
        publish_directory(staging, target, mode=0o700)
    _point_latest(reports, name)
    return target


def _point_latest(reports: Path, name: str) -> None:
    """`reports/latest` -> the run, swapped by rename; a plain file naming the run where symlinks fail."""
    link, tmp = reports / "latest", reports / f".tmp-{os.getpid()}-latest"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(name, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        atomic_write_text(reports / "latest.txt", name + "\n")
