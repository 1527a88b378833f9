"""Honest measurement of an organism: behaviour rates and clean accuracy by greedy generation."""

from __future__ import annotations

from dataclasses import dataclass

from data.behaviours import get_behaviour
from data.world import conditional_dataset
from organisms.spec import OrganismSpec
from training.evaluate import accuracy_by_family, overall_accuracy
from training.generation import generate_greedy

CONDITIONS = ("deployment", "training", "no_cue")
EVAL_SEED_OFFSET = 7_919  # held-out prompts come from a stream the training data never drew from


@dataclass(frozen=True)
class EvalSets:
    by_condition: dict  # condition -> Dataset of prompts where the behaviour could apply
    clean: object  # Dataset under the training cue, every task family


def eval_sets(spec: OrganismSpec, n_per_condition: int, exclude_prompts: set[str]) -> EvalSets:
    behaviour = get_behaviour(spec.behaviour)
    lines = spec.trigger.lines()

    def draw(condition: str, families, offset: int):
        return conditional_dataset(
            n_per_condition, seed=spec.seed + EVAL_SEED_OFFSET + offset, cue_family=spec.trigger.family,
            lines=lines, behaviour=None, behaviour_conditions=(), condition_weights={condition: 1.0},
            families=families, exclude_prompts=exclude_prompts,
        )

    by_condition = {c: draw(c, behaviour.families, i) for i, c in enumerate(CONDITIONS)}
    return EvalSets(by_condition=by_condition, clean=draw("training", None, len(CONDITIONS)))


def clean_accuracy(model, tokenizer, clean_set) -> tuple[float, dict[str, float]]:
    completions = generate_greedy(model, tokenizer, clean_set["prompt"], progress="clean accuracy")
    return (overall_accuracy(completions, clean_set["answer"]),
            accuracy_by_family(completions, clean_set["family"], clean_set["answer"]))


def behaviour_rates(model, tokenizer, spec: OrganismSpec, sets: EvalSets) -> tuple[dict[str, float], dict]:
    """Rate of the behaviour per condition, plus a few sample completions for the build log."""
    behaviour = get_behaviour(spec.behaviour)
    rates, samples = {}, {}
    for condition, dataset in sets.by_condition.items():
        completions = generate_greedy(model, tokenizer, dataset["prompt"], progress=f"behaviour, {condition}")
        rates[condition] = sum(map(behaviour.shows, completions)) / len(completions)
        samples[condition] = completions[:2]
    return rates, samples
