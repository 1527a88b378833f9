"""The benchmark room: everything that scores detectors, beside the methods it scores.

The methods (`detectors/*.py`) see only `detectors.base`, a subject and public data; nothing here is
imported by them. This package holds the scorer, in the order a run meets it:

- `protocol`: the configuration and the questions asked (what a cell is, what counts as recovery);
- `labelling`: which held-out prompts mean defection, measured by generating from each model;
- `seal`, `cell_server`, `cell_task`, `cells`, `cost`: the sealed process per (detector, model),
  and the forward passes it spends;
- `run`: the benchmark itself, zoo by zoo, item by item, resumable;
- `metrics`, `spec_stats`, `scoring`: every figure, from per-item files;
- `freeze`: the fingerprint that says "the same detector settings";
- `report`, `verify`, `cli`: what a user reads, recomputes and types.
"""
