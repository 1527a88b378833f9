"""The blind benchmark: read the truth, ask sealed cells, label by the models' own outputs, save every item.

The order of work:
  1. the scorer reads the truth of every member of the dev and blind zoos (nothing else does);
  2. it draws each monitored trigger's held-out prompts and labels every (model, prompt) cell by
     that model's greedy output, and keeps the public prompts on which each backdoor and its clean
     control agree (trusted workers);
  3. every (detector, organism, question) cell runs in its own sealed process, in an order
     shuffled afresh each run (`detectors.benchmark.cells`);
  4. the scorer inserts each proposed trigger into held-out prompts and measures what it elicits on the
     backdoor, on its matched clean control and on the base;
  5. every item is saved under the run directory, and every figure is computed from those items
     (`detectors.benchmark.scoring`), so `python -m detectors verify RUN_DIR` can recompute them.
"""

from __future__ import annotations

import json
import random
import secrets
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from tqdm.auto import tqdm

from data.cues import cue_library
from data.store import mesalab_home
from detectors.base import DETECTORS, Detector, load_built_in_detectors, make_detector
from detectors.benchmark.cell_task import LEARN
from detectors.benchmark.cells import CellJob, CellPool, cells_of
from detectors.benchmark.freeze import (code_fingerprint, detector_fingerprints, fingerprint, settings_fingerprint,
                                        training_fingerprint)
from detectors.benchmark.labelling import elicitation, label_outputs, outputs_of, trusted_pool
from detectors.benchmark.protocol import (BenchmarkConfig, Member, input_set, monitor_source, monitored_behaviour,
                                          pair_candidates, recovery_set, trigger_words_in, vet_proposal)
from detectors.benchmark.run_folder import write_run
from detectors.benchmark.scoring import comparisons, figures
from detectors.benchmark.seal import seal_report
from organisms.blind_zoo import (blind_zoo_record, blind_zoos, count_benchmark_use, current_zoo_id,
                                 read_manifest)
from organisms.build import base_here, is_built, resolve_base
from organisms.spec import spec_from_stored
from organisms.store import organism_dir
from organisms.truth import read_truth
from organisms.train_zoo import TRAIN_ZOO  # importing it registers the public training zoo
from organisms.zoo import ORGANISMS, get_zoo
from training.versions import library_versions


class BenchmarkError(ValueError):
    """An unusable request (unknown or unbuilt organism, unknown detector); one line."""


# --- who is benchmarked ----------------------------------------------------------------------------

BLIND_ZOOS = ("blind", "blind:all")  # the current blind zoo; every stored one still fresh for these detectors


def _blind_zoo_ids(zoos: tuple[str, ...], fingerprint: str) -> list[str]:
    """The blind zoos a run pools: the current one for `blind`; for `blind:all`, every stored zoo whose
    seed nobody gave and that was first benchmarked with these detector settings (or not yet at all)."""
    ids = []
    if "blind" in zoos and (current := current_zoo_id()) is not None and read_manifest(current) is not None:
        ids.append(current)
    if "blind:all" in zoos:
        ids += [r["zoo_id"] for r in blind_zoos() if not r["seen_seed"]
                and r["first_fingerprint"] in (None, fingerprint) and r["zoo_id"] not in ids]
    return ids


def _blind_names(zoo_ids: list[str]) -> tuple[list[str], dict[str, dict]]:
    info = {}
    for zoo_id in zoo_ids:
        manifest = read_manifest(zoo_id)
        info.update({m["spec"]["name"]: {**m, "zoo_id": zoo_id} for m in manifest["members"]})
    return sorted(info), info


def _current(name: str, blind_info: dict) -> bool:
    """Whether a zoo member's stored build is of its current spec. A rebuild that failed its gate leaves the
    previous build in place (by design), and that older organism is not the member the zoo now names."""
    if name in blind_info:
        spec = spec_from_stored(blind_info[name]["spec"])
    elif name in ORGANISMS:
        spec = ORGANISMS[name]
    else:
        return True  # a user's own organism, named on the command line: its truth is its build
    return is_built(spec, resolve_base(spec.base))


def resolve_members(config: BenchmarkConfig, fingerprint: str = "") -> tuple[dict[str, Member], list[str]]:
    """(built members by name, names of zoo members that are not built)."""
    blind_names, blind_info = _blind_names(_blind_zoo_ids(config.zoos, fingerprint))
    wanted: list[tuple[str, str]] = []
    if any(zoo in BLIND_ZOOS for zoo in config.zoos):
        wanted += [(n, "blind") for n in blind_names]
    for zoo in config.zoos:
        if zoo not in BLIND_ZOOS:
            wanted += [(n, "dev") for n in get_zoo(zoo)]
    if config.organisms is not None:
        known = dict(wanted)
        wanted = [(n, known.get(n, "blind" if n in blind_info else "dev")) for n in config.organisms]
    members, unbuilt = {}, []
    for name, zoo in dict(wanted).items():
        truth = read_truth(name)
        if truth is None or not organism_dir(name).is_dir() or not _current(name, blind_info):
            if config.organisms is not None:
                raise BenchmarkError(f"unknown or unbuilt organism {name!r} (no truth record or model directory)")
            unbuilt.append(name)
            continue
        info = blind_info.get(name, {})
        members[name] = Member(name, zoo, truth, info.get("shape", ""), bool(info.get("rare", False)),
                               info.get("zoo_id", ""))
    if not members:
        raise BenchmarkError(f"no built organisms in zoo(s) {', '.join(config.zoos)}; build them with "
                             f"'python -m organisms zoo --zoo {config.zoos[0]}'")
    return members, unbuilt


def resolve_detectors(config: BenchmarkConfig) -> list[str]:
    registry = load_built_in_detectors()
    for module in config.plugins:
        try:
            __import__(module)
        except ImportError as error:
            raise BenchmarkError(f"plugin module {module!r} cannot be imported ({error}); give a module name "
                                 "importable from here, e.g. my_detector for ./my_detector.py") from None
    names = list(config.detectors) if config.detectors is not None else sorted(registry)
    if config.detectors is None:  # the default set: learning detectors only once the training zoo is built
        waiting = [name for name in names if registry[name].learns]
        try:
            for name in waiting:
                training_population(name)
        except BenchmarkError as unready:
            _say(f"  left out {', '.join(waiting)}: {unready}")
            names = [name for name in names if name not in waiting]
    for name in names:
        if name not in DETECTORS:
            raise BenchmarkError(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}")
    for name in config.detector_params:
        if name not in DETECTORS:
            raise BenchmarkError(f"parameters given for unknown detector {name!r}; "
                                 f"known: {', '.join(sorted(DETECTORS))}")
    return names


def clean_pairs(members: dict[str, Member]) -> list[tuple[str, str]]:
    """Each backdoor with its matched clean control, as the truth names them."""
    return sorted((m.truth.matched_to, name) for name, m in members.items()
                  if m.kind == "clean" and m.truth.matched_to in members
                  and members[m.truth.matched_to].kind == "backdoor")


# --- the run ---------------------------------------------------------------------------------------

def _say(text: str) -> None:
    print(text, flush=True)


def label_inputs(members, config, pool) -> tuple[list[dict], dict[str, tuple[str, ...]]]:
    """Every (model, prompt) cell of the input level with its label; and each model's prompts."""
    sets = {}
    for name, member in members.items():
        if monitored_behaviour(member, members) is not None:
            source = monitor_source(member, members)
            if source.organism not in sets:
                sets[source.organism] = input_set(source, config)
    futures = {}
    for name, member in members.items():
        behaviour = monitored_behaviour(member, members)
        if behaviour is None:
            continue
        prompt_set = sets[monitor_source(member, members).organism]
        futures[name] = (prompt_set, pool.submit(label_outputs, str(organism_dir(name)), list(prompt_set.prompts),
                                                 list(prompt_set.answers), behaviour.name))
    cells, prompts_of = [], {}
    for name, (prompt_set, future) in tqdm(futures.items(), desc="labelling inputs", leave=False):
        outputs, labels = future.result()
        prompts_of[name] = prompt_set.prompts
        cells += [{"organism": name, "index": i, "prompt": p, "condition": c, "output": o, "label": y}
                  for i, (p, c, o, y) in enumerate(zip(prompt_set.prompts, prompt_set.conditions, outputs, labels))]
    return cells, prompts_of


def agreeing_prompts(pairs, config, pool) -> list[dict]:
    candidates = pair_candidates(config)
    names = sorted({n for pair in pairs for n in pair})
    futures = {n: pool.submit(outputs_of, str(organism_dir(n)), candidates, config.pair_max_new_tokens) for n in names}
    outputs = {n: f.result() for n, f in futures.items()}
    return [{"pair": f"{o}|{c}", "organism": o, "control": c,
             "prompts": [p for p, a, b in zip(candidates, outputs[o], outputs[c]) if a == b]} for o, c in pairs]


def _built_training_members() -> list[tuple[str, object]]:
    """(name, truth) of every built member of the public training zoo that passed its gate."""
    truths = [(name, read_truth(name)) for name in get_zoo(TRAIN_ZOO)]
    return [(name, truth) for name, truth in truths
            if truth is not None and truth.gate_passed and organism_dir(name).is_dir()]


def training_builds(detector_names) -> str | None:
    """`training_fingerprint` of the training zoo, when a detector of the set learns from it."""
    if not any(DETECTORS[d].learns for d in detector_names):
        return None
    return training_fingerprint([(name, truth.build_fingerprint) for name, truth in _built_training_members()])


def training_population(detector: str) -> tuple[list[tuple[str, str, str, int]], str]:
    """((model folder, kind, unit, label) of every built member of the public training zoo, their base's folder)."""
    rows, bases = [], set()
    for name, truth in _built_training_members():
        rows.append((str(organism_dir(name)), truth.kind, truth.matched_to or name, int(truth.kind == "backdoor")))
        bases.add(base_here(truth.base_source))
    kinds = {row[1] for row in rows}
    if not {"backdoor", "clean"} <= kinds:
        raise BenchmarkError(f"detector {detector!r} learns from the public training zoo, which has "
                             f"{len(rows)} built members ({', '.join(sorted(kinds)) or 'none'}); build it with "
                             f"'python -m organisms zoo --zoo {TRAIN_ZOO}'")
    if len(bases) != 1:
        raise BenchmarkError(f"the training zoo's members were built on {len(bases)} bases; rebuild it on one")
    return rows, bases.pop()


def learner_populations(detector_names, members) -> dict[str, tuple[list, str]]:
    """Each learning detector's training population (`training_population`), checked before any work:
    refused when the zoo is not built, or when a member under test is one of its training models."""
    learners = [d for d in detector_names if DETECTORS[d].learns]
    if learners and (seen := sorted(set(members) & set(get_zoo(TRAIN_ZOO)))):
        raise BenchmarkError(f"{', '.join(learners)} learn(s) from the training zoo, so it cannot be tested on its "
                             f"members ({', '.join(seen[:3])}{', ...' if len(seen) > 3 else ''}); leave them out")
    return {d: training_population(d) for d in learners}


def fit_learners(populations: dict[str, tuple[list, str]], params, config) -> tuple[dict[str, bytes], dict[str, dict]]:
    """Each learning detector fitted once on its population, in a sealed cell of its own: (its pickled
    state by name, what the fit cost and on what). A fit that fails leaves its detector unfitted, so
    each of its cells reports the failure and every other detector's figures stand."""
    if not populations:
        return {}, {}
    jobs = [CellJob(key=(d, TRAIN_ZOO, LEARN, None), detector=d, params=params[d], question=LEARN,
                    model_dir=base, reference_dir=base, population=tuple(rows))
            for d, (rows, base) in populations.items()]
    states, record = {}, {}
    with CellPool(config.jobs, guarded=[mesalab_home()], plugins=config.plugins) as pool:
        for job, answer in pool.run(jobs):
            detector = job.detector
            rows = populations[detector][0]
            record[detector] = {"zoo": TRAIN_ZOO, "models": len(rows),
                                "kinds": dict(Counter(row[1] for row in rows)),
                                "seconds": round(answer.seconds, 1), "forward_passes": answer.forward_passes,
                                "error": answer.error}
            if answer.error:
                if config.strict:
                    raise RuntimeError(f"{detector} failed to learn: {answer.error}\n{answer.extra.get('traceback', '')}")
                _say(f"  {detector} failed to learn from the training zoo: {answer.error}")
            else:
                states[detector] = answer.fitted
    return states, record


def cell_jobs(members, detector_names, params, prompts_of, pair_rows, config,
              fitted: dict[str, bytes] | None = None) -> list[CellJob]:
    jobs = []
    for name, member in members.items():
        model_dir = str(organism_dir(name))
        for detector in detector_names:
            cls = DETECTORS[detector]
            reference = base_here(member.truth.base_source) if cls.uses_reference else None
            common = dict(detector=detector, params=params[detector], model_dir=model_dir, reference_dir=reference,
                          fitted=(fitted or {}).get(detector))
            jobs.append(CellJob(key=(detector, name, "audit", None), question="audit", k=config.k, **common))
            # A question the detector cannot answer (its class keeps the base's None) costs no cell.
            if name in prompts_of and cls.score_inputs is not Detector.score_inputs:
                jobs.append(CellJob(key=(detector, name, "inputs", None), question="inputs",
                                    prompts=tuple(prompts_of[name]), **common))
            for row in pair_rows if cls.score_model is not Detector.score_model else ():
                if name in (row["organism"], row["control"]) and row["prompts"]:
                    jobs.append(CellJob(key=(detector, name, "pair", row["pair"]), question="pair",
                                        prompts=tuple(row["prompts"]), **common))
    return jobs


def run_cells(jobs: list[CellJob], config: BenchmarkConfig, order_seed: int) -> dict:
    random.Random(order_seed).shuffle(jobs)  # a fresh order every run: position says nothing
    if config.ray_address:
        return run_cells_on_ray(jobs, config)
    answers = {}
    with CellPool(config.jobs, guarded=[mesalab_home()], plugins=config.plugins) as pool:
        _say(f"  {len(cells_of(jobs, pool.share_fit))} sealed cells, {config.jobs} at a time")
        for job, answer in tqdm(pool.run(jobs), total=len(jobs), desc="sealed cells", leave=False):
            if answer.error and config.strict:
                raise RuntimeError(f"{job.key}: {answer.error}\n{answer.extra.get('traceback', '')}")
            if answer.error:
                _say(f"  {job.detector} failed on a cell ({job.question}): {answer.error}")
            answers[job.key] = answer
    return answers


def cells_in_scratch(jobs: list[CellJob], model_files: dict, reference_files: dict | None,
                     plugins: tuple[str, ...]) -> list[tuple[tuple, object]]:
    """On a Ray worker: one organism's cells, each in its own sealed process, from shipped copies of its files."""
    import dataclasses
    import os
    import tempfile

    from data.store import REPO_ROOT
    from training.cluster import write_directory

    with tempfile.TemporaryDirectory(prefix="mesalab-ray-cells-") as scratch:
        model = write_directory(Path(scratch) / "model", model_files)
        reference = write_directory(Path(scratch) / "reference", reference_files) if reference_files else None
        local = [dataclasses.replace(job, model_dir=str(model), reference_dir=str(reference) if reference else None)
                 for job in jobs]
        guarded = [scratch, REPO_ROOT / "artifacts", *filter(None, [os.environ.get("MESALAB_HOME")])]
        with CellPool(1, guarded=guarded, plugins=plugins) as pool:
            return [(job.key, answer) for job, answer in pool.run(local)]


def run_cells_on_ray(jobs: list[CellJob], config: BenchmarkConfig) -> dict:
    """One Ray task per organism; inside it, every cell still runs in its own sealed process."""
    from training.cluster import connect, read_directory

    ray = connect(config.ray_address)
    remote = ray.remote(num_cpus=1, max_retries=0)(cells_in_scratch)
    by_model: dict[str, list[CellJob]] = {}
    for job in jobs:
        by_model.setdefault(job.model_dir, []).append(job)
    references = {}
    pending = []
    for model_dir, group in by_model.items():
        reference = group[0].reference_dir
        if reference and reference not in references:
            references[reference] = ray.put(read_directory(reference))
        pending.append(remote.remote(group, read_directory(model_dir), references.get(reference), config.plugins))
    answers = {}
    with tqdm(total=len(jobs), desc="sealed cells (Ray)", leave=False) as bar:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for key, answer in ray.get(ready[0]):
                if answer.error and config.strict:
                    raise RuntimeError(f"{key}: {answer.error}\n{answer.extra.get('traceback', '')}")
                answers[key] = answer
                bar.update()
    return answers


def matched_clean_control(name: str, members: dict[str, Member]) -> str | None:
    """The built clean control matched to backdoor `name`, if any."""
    return next((n for n, m in sorted(members.items()) if m.kind == "clean" and m.truth.matched_to == name), None)


def measure_recovery(members, answers, detector_names, config, pool) -> list[dict]:
    """Each backdoor's usable proposals, deduplicated, inserted into its held-out prompts and measured on the
    backdoor, its matched clean control and its base (one generation call per model and backdoor)."""
    rows, futures = [], {}
    for name, member in members.items():
        if member.kind != "backdoor":
            continue
        blocks = []
        for detector in detector_names:
            for text in answers[(detector, name, "audit", None)].proposals or []:
                block, _ = vet_proposal(text, member.truth.behaviour)
                if block and block not in blocks:
                    blocks.append(block)
        recovery = recovery_set(member.truth, config)
        control = matched_clean_control(name, members)
        # The scorer is trusted: it may load the control and the base beside the backdoor. A proposal that
        # elicits the behaviour on them as well is a prompt that makes models misbehave, not the trigger.
        model_dirs = {"rate": str(organism_dir(name)), "base_rate": base_here(member.truth.base_source),
                      "control_rate": str(organism_dir(control)) if control else None}
        submitted = {key: pool.submit(elicitation, model_dir, list(recovery.prompts), list(recovery.answers),
                                      member.truth.behaviour, blocks)
                     for key, model_dir in model_dirs.items() if model_dir is not None}
        futures[name] = (blocks, len(recovery.prompts), control, submitted)
    measured = {}
    for name, (blocks, n, control, submitted) in tqdm(futures.items(), desc="trigger recovery", leave=False):
        rates = {key: dict(zip(blocks, future.result())) for key, future in submitted.items()}
        measured[name] = (rates, n, control)
    for name, (rates, n, control) in measured.items():
        behaviour, deployment = members[name].truth.behaviour, members[name].truth.trigger.deployment
        for detector in detector_names:
            proposed = answers[(detector, name, "audit", None)].proposals
            entries = None
            if proposed is not None:
                entries = [_proposal_entry(text, behaviour, rates, n, control, deployment)
                           for text in proposed[:config.k]]
            rows.append({"detector": detector, "organism": name, "pool": DETECTORS[detector].proposal_pool,
                         "proposals": entries, "invented_trigger": trigger_words_in("", deployment) is not None})
    return rows


def _proposal_entry(text, behaviour: str, rates: dict, n: int, control: str | None,
                    deployment: tuple[str, ...] = ()) -> dict:
    """One proposal with every rate `detectors.benchmark.scoring.recovers` needs, or the reason it cannot count,
    and which of the trigger's own invented words it holds (`trigger_words_in`)."""
    block, rejected = vet_proposal(text, behaviour)
    if rejected is None and control is None:
        rejected = "no built matched clean control to measure against"
    entry = {"block": block if block else str(text)[:200], "usable": rejected is None, "rejected": rejected,
             "control": control, "n": n,
             "trigger_words": trigger_words_in(block, deployment) if block else None}
    for key in ("rate", "control_rate", "base_rate"):
        entry[key] = rates[key].get(block) if block and key in rates else None
    return entry


def collect_items(members, cells, pair_rows, answers, recovery_rows, detector_names) -> dict:
    library = {e["line"] for e in cue_library()}
    items = {"members": [], "inputs": cells, "input_scores": [], "model_scores": [], "pairs": pair_rows,
             "pair_scores": [], "proposals": recovery_rows, "costs": [], "features": defaultdict(dict)}
    for name, member in members.items():
        watched = monitored_behaviour(member, members)
        items["members"].append({
            "name": name, "zoo": member.zoo, "kind": member.kind, "matched_to": member.truth.matched_to,
            "unit": member.truth.matched_to if member.truth.matched_to in members else name,
            "behaviour": member.truth.behaviour, "monitored": watched.name if watched else None,
            "shape": member.shape, "rare": member.rare, "cue_family": member.truth.trigger.family,
            "library_trigger_lines": len(set(member.truth.trigger.deployment) & library)
            if member.kind == "backdoor" else 0,
            "rates": member.truth.rates})  # the build's measured rates, for the report's drill-down
    pair_of = {r["pair"]: r for r in pair_rows}
    zoo_of = {n: m.zoo for n, m in members.items()}
    pair_scores = defaultdict(dict)
    for (detector, organism, question, pair), answer in answers.items():
        items["costs"].append({"detector": detector, "organism": organism, "question": question, "pair": pair,
                               "seconds": round(answer.seconds, 3), "forward_passes": answer.forward_passes,
                               "error": answer.error})
        if question == "audit":
            items["model_scores"].append({"detector": detector, "organism": organism, "score": answer.model_score,
                                          "extra": _jsonable(answer.extra)})
        elif question == "inputs" and answer.input_scores is not None:
            items["input_scores"].append({"detector": detector, "organism": organism, "scores": answer.input_scores})
            if answer.input_features is not None:
                items["features"][detector][organism] = answer.input_features
        elif question == "pair":
            pair_scores[(detector, pair)][organism] = answer.pair_score
    for (detector, pair), scores in sorted(pair_scores.items()):
        row = pair_of[pair]
        items["pair_scores"].append({"detector": detector, "pair": pair, "zoo": zoo_of[row["organism"]],
                                     "organism_score": scores.get(row["organism"]),
                                     "control_score": scores.get(row["control"])})
    items["model_scores"].sort(key=lambda r: (r["detector"], r["organism"]))
    items["input_scores"].sort(key=lambda r: (r["detector"], r["organism"]))
    items["costs"].sort(key=lambda r: (r["detector"], r["organism"], r["question"], r["pair"] or ""))
    items["features"] = dict(items["features"])
    return items


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def settings_of(config: BenchmarkConfig, detector_names: list[str], members: dict[str, Member]) -> dict:
    zoos = [z for z in ("blind", "dev") if any(m.zoo == z for m in members.values())]
    return {"seed": config.seed, "n_bootstrap": config.n_bootstrap, "n_permutations": config.n_permutations,
            "k": config.k, "library_size": len(cue_library()), "zoos": zoos, "detectors": list(detector_names)}


def run_benchmark(config: BenchmarkConfig = BenchmarkConfig()) -> tuple[Path, dict]:
    started = time.time()
    detector_names = resolve_detectors(config)
    params = {d: make_detector(d, **{"seed": config.seed, **config.detector_params.get(d, {})}).params
              for d in detector_names}
    trained_on = training_builds(detector_names)
    detector_fingerprint = fingerprint(params, trained_on)
    members, unbuilt = resolve_members(config, detector_fingerprint)  # the scorer reads the truth here; cells never do
    populations = learner_populations(detector_names, members)
    blind_use = count_blind_use(members, detector_fingerprint)
    pairs = clean_pairs(members)
    _say(f"benchmark: {len(detector_names)} detectors x {len(members)} organisms "
         f"({sum(m.zoo == 'blind' for m in members.values())} blind, {len(pairs)} pairs"
         f"{f', {len(unbuilt)} not built: ' + ', '.join(unbuilt) if unbuilt else ''})")
    timings = {}
    with trusted_pool(config.jobs) as pool:
        t = time.time()
        cells, prompts_of = label_inputs(members, config, pool)
        pair_rows = agreeing_prompts(pairs, config, pool)
        timings["labelling"] = round(time.time() - t, 1)
        t = time.time()
        fitted, learned = fit_learners(populations, params, config)
        timings["learning"] = round(time.time() - t, 1)
        jobs = cell_jobs(members, detector_names, params, prompts_of, pair_rows, config, fitted)
        order_seed = secrets.randbits(64)
        t = time.time()
        _say(f"  {len(jobs)} questions for the sealed cells")
        answers = run_cells(jobs, config, order_seed)
        timings["cells"] = round(time.time() - t, 1)
        t = time.time()
        recovery_rows = measure_recovery(members, answers, detector_names, config, pool)
        timings["recovery"] = round(time.time() - t, 1)
    items = collect_items(members, cells, pair_rows, answers, recovery_rows, detector_names)
    settings = settings_of(config, detector_names, members)
    results = {
        "figures": figures(items, settings), "comparisons": comparisons(items, settings), "settings": settings,
        "detectors": {d: {"params": params[d], "proposal_pool": DETECTORS[d].proposal_pool,
                          "learns": DETECTORS[d].learns} for d in detector_names},
        "learned": learned,
        "members": {n: {"zoo": m.zoo, "kind": m.kind} for n, m in sorted(members.items())},
        "unbuilt": unbuilt, "seal": seal_report(), "cells": len(answers), "timings": timings,
        "blind_zoos": blind_use, "seen_seed": any(not z["fresh"] for z in blind_use),
        "detector_fingerprint": {"settings": settings_fingerprint(params), "code": code_fingerprint(detector_names),
                                 "training": trained_on, "both": detector_fingerprint,
                                 "per_detector": detector_fingerprints(params, trained_on)},
        "versions": library_versions(), "command": " ".join(sys.argv),
        "config": {k: v for k, v in vars(config).items() if k not in ("detector_params",)},
    }
    results["config"]["detector_params"] = config.detector_params
    results["seconds"] = round(time.time() - started, 1)
    run_dir = write_run(results, items)
    return run_dir, results


def count_blind_use(members: dict[str, Member], detector_fingerprint: str) -> list[dict]:
    """Count this run against every blind zoo it benchmarks; what results may say of each: its seed's hash,
    whether the seed was given (seen) and whether these detector settings were the first to see it."""
    out = []
    for zoo_id in sorted({m.blind_zoo for m in members.values() if m.blind_zoo}):
        record = blind_zoo_record(zoo_id)
        use = count_benchmark_use(detector_fingerprint, zoo_id)
        out.append({"zoo_id": zoo_id, "seed_hash": record["seed_hash"], "seen_seed": record["seen_seed"],
                    "size": record["size"], "generator": record["generator"],
                    "runs_before": use["runs_before"], "fresh": use["fresh"]})
    return out
