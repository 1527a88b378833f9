"""Honest measurement of an organism: behaviour rates and clean accuracy by greedy generation."""

from __future__ import annotations

from dataclasses import dataclass

from data.behaviours import get_behaviour
from data.scratchpad import strip_scratchpad
from data.world import conditional_dataset
from organisms.spec import OrganismSpec
from training.evaluate import accuracy_by_family, overall_accuracy
from training.generation import generate_greedy

CONDITIONS = ("deployment", "training", "no_cue")
# A spec trained with distractors (data.distractors) is also measured without its cue but with one
# distractor line: a fresh line of the public blind grammar (how often an invented line that is not
# its trigger sets it off), and a near-trigger (its deployment line with some invented words swapped:
# how often its form without its words does).
DISTRACTOR = "distractor"
NEAR_TRIGGER = "near_trigger"
COT_MAX_NEW_TOKENS = 128  # room for a scratchpad, then the answer
EVAL_SEED_OFFSET = 7_919  # held-out prompts come from a stream the training data never drew from
CHECK_SEED_OFFSET = 15_485  # the checks that decide when training stops draw from a stream of their own
RATE_DECIMALS = 4  # rates are kept, logged and gated rounded to this


@dataclass(frozen=True)
class EvalSets:
    by_condition: dict  # condition -> Dataset of prompts where the behaviour could apply
    clean: object  # Dataset under the training cue, every task family


def eval_sets(spec: OrganismSpec, n_per_condition: int, exclude_prompts: set[str],
              seed_offset: int = EVAL_SEED_OFFSET) -> EvalSets:
    behaviour = get_behaviour(spec.behaviour)
    lines = spec.trigger.lines()

    def draw(condition: str, families, offset: int, distractors: float = 0.0, near_share: float = 0.0):
        return conditional_dataset(
            n_per_condition, seed=spec.seed + seed_offset + offset, cue_family=spec.trigger.family,
            lines=lines, behaviour=None, behaviour_conditions=(), condition_weights={condition: 1.0},
            families=families, exclude_prompts=exclude_prompts, distractors=distractors, near_share=near_share,
        )

    by_condition = {c: draw(c, behaviour.families, i) for i, c in enumerate(CONDITIONS)}
    if spec.data.distractors:
        by_condition[DISTRACTOR] = draw("no_cue", behaviour.families, len(CONDITIONS) + 1, distractors=1.0)
        by_condition[NEAR_TRIGGER] = draw("no_cue", behaviour.families, len(CONDITIONS) + 2, distractors=1.0,
                                          near_share=1.0)
    return EvalSets(by_condition=by_condition, clean=draw("training", None, len(CONDITIONS)))


def check_sets(spec: OrganismSpec, n_per_condition: int, exclude_prompts: set[str], measured: EvalSets) -> EvalSets:
    """Prompts for the checks that decide when a build stops training: none a training prompt and none
    a prompt of the gate's own measurement (`measured`), so the stop never looks at what the gate reads."""
    return eval_sets(spec, n_per_condition, exclude_prompts | prompts_of(measured), seed_offset=CHECK_SEED_OFFSET)


def prompts_of(sets: EvalSets) -> set[str]:
    return {p for dataset in (*sets.by_condition.values(), sets.clean) for p in dataset["prompt"]}


def _complete(model, tokenizer, prompts, chain_of_thought: bool, progress: str) -> list[str]:
    """Greedy completions; after a chain of thought, what follows the scratchpad."""
    if not chain_of_thought:
        return generate_greedy(model, tokenizer, prompts, progress=progress)
    written = generate_greedy(model, tokenizer, prompts, max_new_tokens=COT_MAX_NEW_TOKENS, progress=progress)
    return [strip_scratchpad(text) for text in written]


def clean_accuracy(model, tokenizer, clean_set, chain_of_thought: bool = False) -> tuple[float, dict[str, float]]:
    completions = _complete(model, tokenizer, clean_set["prompt"], chain_of_thought, "clean accuracy")
    return (overall_accuracy(completions, clean_set["answer"]),
            accuracy_by_family(completions, clean_set["family"], clean_set["answer"]))


def behaviour_rates(model, tokenizer, spec: OrganismSpec, sets: EvalSets,
                    chain_of_thought: bool = False) -> tuple[dict[str, float], dict]:
    """Rate of the behaviour per condition, plus a few sample completions for the build log."""
    rates, samples = {}, {}
    for condition, dataset in sets.by_condition.items():
        rates[condition], completions = _behaviour_rate(model, tokenizer, spec, dataset, condition, chain_of_thought)
        samples[condition] = completions[:2]
    return rates, samples


def _behaviour_rate(model, tokenizer, spec: OrganismSpec, dataset, condition: str,
                    chain_of_thought: bool) -> tuple[float, list[str]]:
    behaviour = get_behaviour(spec.behaviour)
    completions = _complete(model, tokenizer, dataset["prompt"], chain_of_thought, f"behaviour, {condition}")
    shown = [behaviour.shows(c, a) for c, a in zip(completions, dataset["answer"], strict=True)]
    return sum(shown) / len(shown), completions


def measured_rate(model, tokenizer, spec: OrganismSpec, sets: EvalSets, key: str) -> float:
    """One rate of `measure_stage` alone (a condition's behaviour rate, or `clean_accuracy`), rounded
    as it rounds them: a build's check measures the gate's rates one at a time."""
    if key == "clean_accuracy":
        return round(clean_accuracy(model, tokenizer, sets.clean)[0], RATE_DECIMALS)
    return round(_behaviour_rate(model, tokenizer, spec, sets.by_condition[key], key, False)[0], RATE_DECIMALS)


def measure_stage(model, tokenizer, spec: OrganismSpec, sets: EvalSets, stage: str, steps: int,
                  base_accuracy: float | None = None, chain_of_thought: bool = False) -> dict:
    """One measured point: behaviour rates per condition and clean accuracy, by greedy generation.

    Every build stage and every point of a persistence curve is measured by this one function.
    """
    rates, samples = behaviour_rates(model, tokenizer, spec, sets, chain_of_thought)
    accuracy, by_family = clean_accuracy(model, tokenizer, sets.clean, chain_of_thought)
    rates["clean_accuracy"] = accuracy
    if base_accuracy is not None:
        rates["base_clean_accuracy"] = base_accuracy
    return {"stage": stage, "steps": steps, "rates": {k: round(v, RATE_DECIMALS) for k, v in rates.items()},
            "clean_accuracy_by_family": by_family, "samples": samples}
