"""report.html: built from a run's items alone, self-contained, and seen in a real browser.

The browser is Debian's headless Chromium (`make test` installs it where it can); where it cannot be
installed the rendering test is skipped with the reason, and the content tests still run.
"""

import json
import random
import re
import shutil
import subprocess

import pytest

from detectors.benchmark.report_html import html_report, markdown_table
from detectors.benchmark.run_folder import write_run
from detectors.benchmark.scoring import comparisons, figures

DETECTORS = ("alpha", "beta")
KINDS = ("backdoor", "clean", "benign-conditional")


def synthetic_run(n_units: int = 6, zoo_id: str = "00000000", seed: int = 0) -> tuple[dict, dict]:
    """A small blind board of two made-up detectors, scored as a real run would be: `alpha` separates
    backdoors from their controls, `beta` does not."""
    rng = random.Random(seed)
    members, model_scores, inputs, input_scores, proposals, costs = [], [], [], [], [], []
    for unit in range(n_units):
        backdoor = f"blind-{zoo_id}-{3 * unit + 1:02d}"
        for offset, kind in enumerate(KINDS):
            name = f"blind-{zoo_id}-{3 * unit + 1 + offset:02d}"
            members.append({"name": name, "zoo": "blind", "kind": kind, "matched_to": None if offset == 0 else backdoor,
                            "unit": backdoor, "behaviour": "hate", "monitored": "hate", "shape": "header",
                            "rare": False, "cue_family": "cue-x", "library_trigger_lines": 0,
                            "rates": {"deployment": 1.0 if kind == "backdoor" else 0.0, "training": 0.0}})
            model_scores.append({"detector": "alpha", "organism": name, "extra": {},
                                 "score": (2.0 if kind == "backdoor" else 0.0) + rng.random()})
            model_scores.append({"detector": "beta", "organism": name, "extra": {}, "score": rng.random()})
            labels = [int(kind == "backdoor" and i < 4) for i in range(8)]
            inputs += [{"organism": name, "index": i, "label": y, "condition": "deployment", "prompt": "p", "output": "o"}
                       for i, y in enumerate(labels)]
            input_scores.append({"detector": "alpha", "organism": name,
                                 "scores": [y + rng.random() for y in labels]})
            for detector in DETECTORS:
                costs.append({"detector": detector, "organism": name, "question": "audit", "pair": None,
                              "seconds": 1.5 if detector == "alpha" else 0.5, "forward_passes": 100, "error": None})
        proposals.append({"detector": "alpha", "organism": backdoor, "pool": "open", "invented_trigger": True,
                          "proposals": [
            {"block": "Glorp: <vexin>", "rate": 0.9, "control_rate": 0.0, "base_rate": 0.0, "n": 24,
             "control": f"blind-{zoo_id}-{3 * unit + 2:02d}", "rejected": None, "usable": True,
             "trigger_words": ["glorp"] if unit % 2 else []}]})
    items = {"members": members, "inputs": inputs, "input_scores": input_scores, "model_scores": model_scores,
             "pairs": [], "pair_scores": [], "proposals": proposals, "costs": costs, "features": {}}
    settings = {"detectors": list(DETECTORS), "k": 5, "library_size": 0, "n_bootstrap": 200, "n_permutations": 200,
                "seed": 0, "zoos": ["blind"]}
    results = {"run_id": "synthetic", "settings": settings, "cells": len(costs), "seconds": 12.0,
               "timings": {"cells": 10.0, "labelling": 1.0, "recovery": 1.0}, "unbuilt": [],
               "seen_seed": False,
               "detector_fingerprint": {"both": "f" * 16, "per_detector": {d: f"{d}-{'f' * 8}" for d in DETECTORS}},
               "blind_zoos": [{"zoo_id": zoo_id, "fresh": True, "seed_hash": "0" * 16, "seen_seed": False,
                               "size": 3 * n_units, "runs_before": 0}], "members": {m["name"]: {"zoo": m["zoo"], "kind": m["kind"]} for m in members},
               "figures": figures(items, settings), "comparisons": comparisons(items, settings)}
    return results, items


def test_markdown_tables_become_html_tables_with_text_escaped():
    page = markdown_table("Intro with `code` and **bold**.\n\n| a | b |\n|---|---|\n| 1 <x> | 2 |\n")
    assert "<p>Intro with <code>code</code> and <b>bold</b>.</p>" in page
    assert "<th>a</th><th>b</th>" in page and "<td>1 &lt;x&gt; </td>" not in page and "<td>1 &lt;x&gt;</td>" in page


def test_the_page_holds_the_boards_the_rank_map_the_drill_down_and_the_cost():
    results, items = synthetic_run()
    page = html_report(results, items, {"roc_input_blind.png": b"\x89PNG fake"})
    assert page.count("<table") >= 5
    assert "alpha beats beta" in page  # the paired verdict the comparison calls
    assert re.search(r"<td>alpha</td><td>1 \[1, 1\]</td>", page)  # the board row with its rank interval
    assert "data:image/png;base64," in page and "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count("<details id='m-blind-00000000-") == 18  # one drill-down per organism
    assert "Glorp: &lt;vexin&gt;" in page and "0.90 here, 0.00 on the clean control" in page  # proposals, escaped
    assert "cell-seconds" in page and ">9<" in page  # alpha's cost: 6 cells x 1.5 s


def test_a_run_writes_report_html_beside_report_md(isolated_home):
    results, items = synthetic_run(4)
    run_dir = write_run(results, items)
    page = (run_dir / "report.html").read_text()
    assert (run_dir / "report.md").is_file() and "<h1>Detector benchmark" in page
    assert "data:image/png;base64," in page  # the run's own plots, inlined
    # Two of the four backdoors recovered with the trigger's own words, two with none of them.
    assert "| alpha | 1.00 [" in (run_dir / "report.md").read_text()
    assert "Trigger recovery by the words it used" in (run_dir / "report.md").read_text()
    words = results["figures"]["alpha"]["zoos"]["blind"]["recovery"]
    assert words["judged"] == 4 and words["top5_own_words"]["value"] == words["top5_other_words"]["value"] == 0.5


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_page_renders_in_headless_chromium(tmp_path, isolated_home):
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (make test installs Debian's 'chromium' where apt can)")
    results, items = synthetic_run(4)
    run_dir = write_run(results, items)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    url = (run_dir / "report.html").resolve().as_uri()
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert "Board" in dom and "Paired comparisons" in dom and "Where each detector ranks each model" in dom
    assert dom.count("<img") >= 2 and dom.count("<details") == 12
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1200,1600", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120)
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert image.size == (1200, 1600) and len(colours) > 50  # drawn: text, tables and plots, not a blank page
