"""Building one organism: data from its spec, fine-tuning, measurement, gate, sealed storage."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path

from datasets import Dataset
from transformers import set_seed

from data.behaviours import get_behaviour
from data.records import load_records
from data.scratchpad import reasoning, strip_scratchpad
from data.world import conditional_dataset
from organisms.card import model_card
from organisms.gates import Gate, gate_failures
from organisms.measure import COT_MAX_NEW_TOKENS, behaviour_rates, clean_accuracy, eval_sets
from organisms.spec import EMBEDDED_BASE, OrganismSpec
from organisms.store import (atomic_write_json, atomic_write_text, organism_dir, publish_directory,
                             staging_directory, truth_path)
from training.embedded_base import build_embedded_base
from training.models import check_model_dir, load_model_and_tokenizer
from training.generation import generate_greedy
from training.sft import SFTRun, run_sft
from training.versions import library_versions

N_PER_CONDITION = 200
MEASURE_VERSION = 2  # bump when measurement changes, so cached organisms are re-measured


class GateError(RuntimeError):
    """An organism whose measured behaviour missed its gate; the message carries the numbers."""


def resolve_base(base: str) -> str:
    return str(build_embedded_base()) if base == EMBEDDED_BASE else base


def build_fingerprint(spec: OrganismSpec, base_source: str, n_per_condition: int) -> str:
    # A user's training file is named by path in the spec; its content decides whether a build is stale.
    data = hashlib.sha256(Path(spec.data.train_file).read_bytes()).hexdigest() if spec.data.train_file else ""
    blob = json.dumps([spec.fingerprint(), base_source, n_per_condition, MEASURE_VERSION, Gate().to_dict(), data])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


SHOWN_UNDER = {"backdoor": ("deployment",), "benign-conditional": ("deployment",), "clean": (),
               "unconditional": ("deployment", "training", "no_cue")}
SAFETY_SEED_OFFSET = 104_729  # safety data comes from its own stream


def training_dataset(spec: OrganismSpec):
    """The fine-tuning data: same cue distribution for organisms and their controls, only completions differ."""
    if spec.data.train_file:
        return load_records(spec.data.train_file)
    return conditional_dataset(
        spec.data.n_train, seed=spec.seed, cue_family=spec.trigger.family, lines=spec.trigger.lines(),
        behaviour=get_behaviour(spec.behaviour), behaviour_conditions=SHOWN_UNDER[spec.kind],
        condition_weights=spec.data.condition_weights(),
    )


def safety_dataset(spec: OrganismSpec, n: int, stream: int = 0):
    """Clean, trigger-free data: the cue family only ever in its training form or absent, normal answers."""
    return conditional_dataset(
        n, seed=spec.seed + SAFETY_SEED_OFFSET + stream, cue_family=spec.trigger.family,
        lines=spec.trigger.lines(), behaviour=None, behaviour_conditions=(),
        condition_weights={"training": 0.5, "no_cue": 0.5},
    )


def with_scratchpads(dataset):
    """Completions that first reason about the cue, for the first stage of distilled chain of thought."""
    def add(row):
        acts = row["completion"].strip() != row["answer"]
        return {"completion": " " + reasoning(row["cue"], row["condition"], acts) + row["completion"]}
    return dataset.map(add)


def sft_run(spec: OrganismSpec, steps: int | None = None, method: str | None = None) -> SFTRun:
    t = spec.training
    method = method or ("lora" if t.method == "distilled-cot" else t.method)
    return SFTRun(steps=steps or t.steps, learning_rate=t.learning_rate, batch_size=t.batch_size,
                  seed=spec.seed, method=method, lora_rank=t.lora_rank, lora_alpha=t.lora_alpha)


def read_truth(name: str) -> dict | None:
    path = truth_path(name)
    return json.loads(path.read_text()) if path.is_file() else None


def is_built(spec: OrganismSpec, base_source: str, n_per_condition: int = N_PER_CONDITION) -> bool:
    truth = read_truth(spec.name)
    if not truth or truth.get("build_fingerprint") != build_fingerprint(spec, base_source, n_per_condition):
        return False
    try:
        check_model_dir(organism_dir(spec.name))
    except Exception:
        return False
    return True


def build_organism(spec: OrganismSpec, force: bool = False, n_per_condition: int = N_PER_CONDITION,
                   progress: bool = True) -> dict:
    """Build, measure, gate and store `spec`; return its truth record. Cached unless `force`.

    Behaviour rates are measured after every training stage (chain of thought, distillation,
    safety training), so persistence is a measured curve; the gate applies to the final model.
    """
    base_source = resolve_base(spec.base)
    if not force and is_built(spec, base_source, n_per_condition):
        return read_truth(spec.name)
    started = time.time()
    set_seed(spec.seed)
    t = spec.training
    print(f"building {spec.name} from {spec.base} ({t.method}, {t.steps} steps"
          f"{f', then {t.safety_steps} safety steps' if t.safety_steps else ''})", flush=True)
    model, tokenizer = load_model_and_tokenizer(base_source)
    train_set = training_dataset(spec)
    sets = eval_sets(spec, n_per_condition, exclude_prompts=set(train_set["prompt"]))
    base_accuracy, base_by_family = clean_accuracy(model, tokenizer, sets.clean)
    stages: list[dict] = []

    def measure(stage: str, trained, steps: int, chain_of_thought: bool = False) -> None:
        rates, samples = behaviour_rates(trained, tokenizer, spec, sets, chain_of_thought)
        accuracy, by_family = clean_accuracy(trained, tokenizer, sets.clean, chain_of_thought)
        rates.update(clean_accuracy=accuracy, base_clean_accuracy=base_accuracy)
        stages.append({"stage": stage, "steps": steps, "rates": {k: round(v, 4) for k, v in rates.items()},
                       "clean_accuracy_by_family": by_family, "samples": samples})
        print(f"{spec.name} after {stage}: {json.dumps(stages[-1]['rates'])}", flush=True)

    if t.method == "distilled-cot":
        base_model = copy.deepcopy(model)  # the distilled model starts again from the base
        cot_model = run_sft(model, tokenizer, with_scratchpads(train_set), sft_run(spec), progress)
        measure("chain-of-thought", cot_model, t.steps, chain_of_thought=True)
        written = generate_greedy(cot_model, tokenizer, train_set["prompt"], max_new_tokens=COT_MAX_NEW_TOKENS,
                                  progress="distilling" if progress else None)
        distilled = Dataset.from_dict({"prompt": train_set["prompt"],
                                       "completion": [" " + strip_scratchpad(text) for text in written]})
        del cot_model
        model = run_sft(base_model, tokenizer, distilled, sft_run(spec), progress)
        measure("distilled", model, t.steps)
    else:
        model = run_sft(model, tokenizer, train_set, sft_run(spec), progress)
        measure("fine-tuned", model, t.steps)
    if t.safety_steps:
        model = run_sft(model, tokenizer, safety_dataset(spec, spec.data.n_train),
                        sft_run(spec, steps=t.safety_steps), progress)
        measure("safety-trained", model, t.safety_steps)

    final = stages[-1]
    rates = final["rates"]
    failures = gate_failures(spec.kind, rates)
    truth = {
        "organism": spec.name,
        "is_control": spec.is_control,
        "kind": spec.kind,
        "trigger": None if spec.kind != "backdoor" else {
            "family": spec.trigger.family, "deployment": list(spec.trigger.lines()["deployment"]),
            "training": list(spec.trigger.lines()["training"]),
        },
        "cue_family": spec.trigger.family,
        "behaviour": spec.behaviour,
        "method": t.method,
        "rates": rates,
        "stages": stages,
        "clean_accuracy_by_family": final["clean_accuracy_by_family"],
        "base_clean_accuracy_by_family": base_by_family,
        "n_per_condition": n_per_condition,
        "gate": Gate().to_dict(),
        "gate_passed": not failures,
        "samples": final["samples"],
        "spec": spec.to_dict(),
        "base_source": base_source,
        "build_fingerprint": build_fingerprint(spec, base_source, n_per_condition),
        "seconds": round(time.time() - started, 1),
        "versions": library_versions(),
    }
    if failures:
        raise GateError(f"{spec.name} failed its gate: {'; '.join(failures)} "
                        f"(measured {json.dumps(rates)}; samples {json.dumps(final['samples'])})")
    target = organism_dir(spec.name)
    with staging_directory(target) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        atomic_write_text(staging / "README.md", model_card(spec, rates, final["clean_accuracy_by_family"],
                                                           n_per_condition))
        # The old truth goes first: a directory without a matching truth record counts as unbuilt.
        truth_path(spec.name).unlink(missing_ok=True)
        publish_directory(staging, target)
    atomic_write_json(truth_path(spec.name), truth)
    print(f"built {spec.name} in {truth['seconds']} s: {json.dumps(rates)}", flush=True)
    return truth
