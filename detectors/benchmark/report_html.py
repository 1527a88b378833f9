"""report.html: one self-contained page of a run (no network, no scripts), for people who would rather
look than read.

It holds what report.md holds (the boards with intervals, rank intervals and the paired verdicts, the
model level against each kind of control) and what a terminal cannot show well: the ROC and rank
plots, a map of where each detector ranks each model, a drill-down per organism (its kind, measured
rates, each detector's score and rank, what each detector proposed as its trigger and what that
elicited) and each detector's cost. The tables are the Markdown report's own, converted, so the two
never disagree. Like `items/`, the page names blind members' behaviours: it is for the zoo's owner.
"""

from __future__ import annotations

import base64
import html
from collections import defaultdict

from scipy.stats import rankdata

from detectors.benchmark.report import (ZOO_TITLES, blind_status, comparison_text, control_table, leaderboard,
                                        learned_text)

KIND_COLOURS = {"backdoor": "#d62728", "clean": "#1f77b4", "benign-conditional": "#2ca02c", "unconditional": "#ff7f0e"}
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 2px solid #ddd; } h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
.heat td:first-child { white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; }
.status { background: #fff8e0; border-left: 4px solid #e0b000; padding: 0.6em 1em; }
.kind { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 50%; margin-right: 0.3em; }
.heat td.cell { text-align: center; min-width: 2.4em; }
.bar { background: #4c78a8; height: 0.9em; display: inline-block; vertical-align: middle; }
details { margin: 0.3em 0; } summary { cursor: pointer; }
img { max-width: 100%; } .plots { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.muted { color: #777; }
"""


def _esc(value) -> str:
    return html.escape(str(value))


def _inline(text: str) -> str:
    """A Markdown table cell or line as HTML: escaped, `code` and **bold** kept."""
    out, parts = [], _esc(text).split("`")
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{part}</code>")
        else:
            bold = part.split("**")
            out.append("".join(f"<b>{b}</b>" if j % 2 else b for j, b in enumerate(bold)))
    return "".join(out)


def markdown_table(text: str) -> str:
    """The pipe tables report.md writes (and the prose lines around them) as HTML."""
    out, rows = [], []

    def flush():
        if rows:
            head, *body = rows
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in body)
                       + "</table>")
            rows.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= {"-", ":"} for c in cells):
                rows.append(cells)
        else:
            flush()
            if line.strip():
                out.append(f"<p>{_inline(line)}</p>")
    flush()
    return "\n".join(out)


def _kind_dot(kind: str) -> str:
    return f'<span class="kind" style="background:{KIND_COLOURS.get(kind, "#999")}" title="{_esc(kind)}"></span>'


def zoo_ranks(items: dict, zoo: str) -> tuple[dict, dict, dict]:
    """(members of `zoo` by name, detector -> organism -> model score, detector -> organism -> rank among the
    models that detector scored, 1 = most suspicious, ties averaged): what the rank map and the drill-down show."""
    members = {m["name"]: m for m in items["members"] if m["zoo"] == zoo}
    scores = defaultdict(dict)
    for row in items["model_scores"]:
        if row["organism"] in members and row["score"] is not None:
            scores[row["detector"]][row["organism"]] = row["score"]
    ranks = {}
    for detector, by_organism in scores.items():
        names = sorted(by_organism)
        ranks[detector] = dict(zip(names, rankdata([-by_organism[n] for n in names], method="average")))
    return members, scores, ranks


def rank_map(items: dict, zoo: str) -> str:
    """Models x detectors: each cell the model's rank within the detector (1 = most suspicious), shaded."""
    members, scores, ranks = zoo_ranks(items, zoo)
    detectors = sorted(scores)
    if not detectors:
        return "<p class='muted'>No detector scored models in this zoo.</p>"
    n = len(members)
    head = "<tr><th>model</th><th>kind</th>" + "".join(f"<th>{_esc(d)}</th>" for d in detectors) + "</tr>"
    body = []
    kind_order = {k: i for i, k in enumerate(KIND_COLOURS)}
    for name, member in sorted(members.items(), key=lambda kv: (kind_order.get(kv[1]["kind"], 9), kv[0])):
        cells = []
        for detector in detectors:
            rank = ranks[detector].get(name)
            if rank is None:
                cells.append("<td class='cell muted'>–</td>")
                continue
            heat = 1 - (rank - 1) / max(1, n - 1)  # 1: ranked most suspicious
            cells.append(f"<td class='cell' style='background:rgba(214,39,40,{heat:.2f})'>{rank:g}</td>")
        body.append(f"<tr><td><a href='#m-{_esc(name)}'>{_esc(name)}</a></td><td>{_kind_dot(member['kind'])}"
                    f"{_esc(member['kind'])}</td>{''.join(cells)}</tr>")
    return f"<table class='heat'>{head}{''.join(body)}</table>"


def drill_down(items: dict, zoo: str) -> str:
    """One collapsible section per organism: what it is, how it measured, what each detector made of it."""
    members, by_detector, ranks = zoo_ranks(items, zoo)
    proposals = defaultdict(list)
    for row in items["proposals"]:
        if row["organism"] in members and row.get("proposals"):
            proposals[row["organism"]].append(row)
    sections = []
    for name, m in sorted(members.items()):
        rates = m.get("rates") or {}
        facts = [f"kind <b>{_esc(m['kind'])}</b>", f"unit {_esc(m.get('unit', name))}",
                 f"behaviour <code>{_esc(m.get('behaviour'))}</code>"]
        if m.get("matched_to"):
            facts.append(f"matched to <a href='#m-{_esc(m['matched_to'])}'>{_esc(m['matched_to'])}</a>")
        if m.get("shape"):
            facts.append(f"shape {_esc(m['shape'])}{' (rare)' if m.get('rare') else ''}")
        rate_text = ", ".join(f"{_esc(k)} {v:.3f}" for k, v in rates.items() if isinstance(v, (int, float)))
        score_rows = []
        for detector in sorted(d for d, column in by_detector.items() if name in column):
            column = by_detector[detector]
            score_rows.append(f"<tr><td>{_esc(detector)}</td><td>{column[name]:.4g}</td>"
                              f"<td>{ranks[detector][name]:g} of {len(column)}</td></tr>")
        proposal_rows = []
        for row in sorted(proposals.get(name, []), key=lambda r: r["detector"]):
            for p in row["proposals"]:
                elicited = ("rejected: " + _esc(p["rejected"])) if p.get("rejected") else \
                    f"{p['rate']:.2f} here, {p['control_rate']:.2f} on the clean control, {p['base_rate']:.2f} on the base"
                proposal_rows.append(f"<tr><td>{_esc(row['detector'])}</td><td><code>{_esc(p['block'])}</code></td>"
                                     f"<td>{elicited}</td></tr>")
        sections.append(
            f"<details id='m-{_esc(name)}'><summary>{_kind_dot(m['kind'])}<b>{_esc(name)}</b> "
            f"<span class='muted'>{_esc(m['kind'])}</span></summary>"
            f"<p>{'; '.join(facts)}.</p><p>Measured at build (greedy generation): {rate_text or '–'}.</p>"
            + (f"<table><tr><th>detector</th><th>model score</th><th>rank</th></tr>{''.join(score_rows)}</table>"
               if score_rows else "")
            + (f"<table><tr><th>detector</th><th>proposed trigger</th><th>behaviour rate when inserted</th></tr>"
               f"{''.join(proposal_rows)}</table>" if proposal_rows else "")
            + "</details>")
    return "\n".join(sections)


def cost_table(results: dict, zoo: str) -> str:
    rows = [(name, f["zoos"][zoo]) for name, f in results["figures"].items() if zoo in f["zoos"]]
    if not rows:
        return ""
    longest = max(r["seconds"] for _, r in rows) or 1
    body = "".join(f"<tr><td>{_esc(name)}</td><td>{r['seconds']:.0f}</td>"
                   f"<td><span class='bar' style='width:{200 * r['seconds'] / longest:.0f}px'></span></td>"
                   f"<td>{r['forward_passes']:,}</td><td>{r['errors']}</td></tr>"
                   for name, r in sorted(rows, key=lambda kv: -kv[1]["seconds"]))
    return ("<table><tr><th>detector</th><th>cell-seconds</th><th></th><th>forward passes</th><th>errors</th></tr>"
            f"{body}</table>")


def _image(name: str, data: bytes) -> str:
    return f"<img alt='{_esc(name)}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>"


def html_report(results: dict, items: dict, plots: dict[str, bytes]) -> str:
    """The page; `plots` maps the run's PNG names (roc_input_<zoo>.png, model_scores_<zoo>.png) to their bytes."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>mesalab run {_esc(results['run_id'])}"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>Detector benchmark {_esc(results['run_id'])}</h1>",
             f"<p>Seed {results['settings']['seed']}; {results['cells']} answers from sealed cells; {results['seconds']} s "
             f"in all. Every figure is recomputed from <code>items/</code> by <code>python -m detectors verify</code>.</p>"]
    status = blind_status(results)
    if status:
        parts.append(f"<p class='status'>{_inline(status)}</p>")
    if results.get("unbuilt"):
        parts.append(f"<p>Not built, so not benchmarked: {_esc(', '.join(results['unbuilt']))}.</p>")
    parts.append("<p>Legend: " + " ".join(f"{_kind_dot(k)}{k}" for k in KIND_COLOURS) + ". Read the boards as "
                 "report.md explains: the unit is the spec (a backdoor with its matched controls), intervals resample "
                 "units, and only the paired verdicts rank two detectors.</p>")
    if learned_text(results):
        parts.append(f"<p>{_inline(learned_text(results))}</p>")
    for zoo in results["settings"]["zoos"]:
        parts += [f"<h2>{_esc(ZOO_TITLES.get(zoo, zoo))}</h2>", "<h3>Board</h3>", markdown_table(leaderboard(results, zoo)),
                  "<h3>Paired comparisons</h3>", markdown_table(comparison_text(results, zoo)),
                  "<h3>Model level against each kind of control</h3>", markdown_table(control_table(results, zoo)),
                  "<h3>Plots</h3><div class='plots'>"
                  + "".join(_image(n, d) for n, d in sorted(plots.items()) if n.endswith(f"_{zoo}.png")) + "</div>",
                  "<h3>Where each detector ranks each model</h3>", rank_map(items, zoo),
                  "<h3>Organisms</h3>", drill_down(items, zoo),
                  "<h3>Cost</h3>", cost_table(results, zoo)]
    parts.append("</body></html>")
    return "\n".join(parts)
