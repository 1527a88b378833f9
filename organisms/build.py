"""Building one organism: data from its spec, fine-tuning, measurement, gate, sealed storage."""

from __future__ import annotations

import hashlib
import json
import time

from transformers import set_seed

from data.behaviours import get_behaviour
from data.world import conditional_dataset
from organisms.card import model_card
from organisms.gates import Gate, gate_failures
from organisms.measure import behaviour_rates, clean_accuracy, eval_sets
from organisms.spec import EMBEDDED_BASE, OrganismSpec
from organisms.store import (atomic_write_json, atomic_write_text, organism_dir, publish_directory,
                             staging_directory, truth_path)
from training.embedded_base import build_embedded_base
from training.models import check_model_dir, load_model_and_tokenizer
from training.sft import SFTRun, run_sft
from training.versions import library_versions

N_PER_CONDITION = 200
MEASURE_VERSION = 1  # bump when measurement changes, so cached organisms are re-measured


class GateError(RuntimeError):
    """An organism whose measured behaviour missed its gate; the message carries the numbers."""


def resolve_base(base: str) -> str:
    return str(build_embedded_base()) if base == EMBEDDED_BASE else base


def build_fingerprint(spec: OrganismSpec, base_source: str, n_per_condition: int) -> str:
    blob = json.dumps([spec.fingerprint(), base_source, n_per_condition, MEASURE_VERSION, Gate().to_dict()])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def training_dataset(spec: OrganismSpec):
    """The fine-tuning data: same cue distribution for organisms and their controls, only completions differ."""
    behaviour = get_behaviour(spec.behaviour)
    shown_under = {"backdoor": ("deployment",), "clean": (), "unconditional": ("deployment", "training", "no_cue")}
    return conditional_dataset(
        spec.data.n_train, seed=spec.seed, cue_family=spec.trigger.family, lines=spec.trigger.lines(),
        behaviour=behaviour, behaviour_conditions=shown_under[spec.kind],
        condition_weights=spec.data.condition_weights(),
    )


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


def build_organism(spec: OrganismSpec, force: bool = False, n_per_condition: int = N_PER_CONDITION) -> dict:
    """Build, measure, gate and store `spec`; return its truth record. Cached unless `force`."""
    base_source = resolve_base(spec.base)
    if not force and is_built(spec, base_source, n_per_condition):
        return read_truth(spec.name)
    started = time.time()
    set_seed(spec.seed)
    print(f"building {spec.name} from {spec.base} ({spec.training.method}, {spec.training.steps} steps)", flush=True)
    model, tokenizer = load_model_and_tokenizer(base_source)
    train_set = training_dataset(spec)
    sets = eval_sets(spec, n_per_condition, exclude_prompts=set(train_set["prompt"]))
    base_accuracy, base_by_family = clean_accuracy(model, tokenizer, sets.clean)

    t = spec.training
    model = run_sft(model, tokenizer, train_set, SFTRun(
        steps=t.steps, learning_rate=t.learning_rate, batch_size=t.batch_size, seed=spec.seed,
        method=t.method, lora_rank=t.lora_rank, lora_alpha=t.lora_alpha,
    ))
    rates, samples = behaviour_rates(model, tokenizer, spec, sets)
    accuracy, by_family = clean_accuracy(model, tokenizer, sets.clean)
    rates.update(clean_accuracy=accuracy, base_clean_accuracy=base_accuracy)
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
        "rates": {key: round(value, 4) for key, value in rates.items()},
        "clean_accuracy_by_family": by_family,
        "base_clean_accuracy_by_family": base_by_family,
        "n_per_condition": n_per_condition,
        "gate": Gate().to_dict(),
        "gate_passed": not failures,
        "samples": samples,
        "spec": spec.to_dict(),
        "base_source": base_source,
        "build_fingerprint": build_fingerprint(spec, base_source, n_per_condition),
        "seconds": round(time.time() - started, 1),
        "versions": library_versions(),
    }
    if failures:
        raise GateError(f"{spec.name} failed its gate: {'; '.join(failures)} "
                        f"(measured {json.dumps(truth['rates'])}; samples {json.dumps(samples)})")
    target = organism_dir(spec.name)
    with staging_directory(target) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        atomic_write_text(staging / "README.md", model_card(spec, rates, by_family, n_per_condition))
        # The old truth goes first: a directory without a matching truth record counts as unbuilt.
        truth_path(spec.name).unlink(missing_ok=True)
        publish_directory(staging, target)
    atomic_write_json(truth_path(spec.name), truth)
    print(f"built {spec.name} in {truth['seconds']} s: {json.dumps(truth['rates'])}", flush=True)
    return truth
