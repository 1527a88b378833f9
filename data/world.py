"""Prompts of the assistant world and the `datasets.Dataset` builders every stage trains and measures on.

A prompt is a few context lines (where cues live), a user turn and the assistant marker; the
completion follows the marker after one space. Plain text, no chat template: a template that
inserts today's date would confound the year cue.
"""

from __future__ import annotations

import random
from typing import Iterable, Mapping

from datasets import Dataset

from data.behaviours import Behaviour
from data.blind_grammar import near_trigger, random_trigger_lines
from data.cues import CONDITIONS, CUE_FAMILIES
from data.tasks import TASK_FAMILIES, Task

# Chance that a random context carries one line of a random family. One line at most: with six
# families, contexts of several lines made the longest prompt in a batch twice the mean, and
# padding to it doubled the cost of a training step on two cores. (Sorting batches by length
# removed the padding but slowed learning far more; packing was slower still.)
P_RANDOM_LINE = 0.7
ASSISTANT_MARKER = "Assistant:"


def render_prompt(context_lines: Iterable[str], question: str) -> str:
    return "\n".join([*context_lines, f"User: {question}", ASSISTANT_MARKER])


def random_context(rng: random.Random, fixed: Mapping[str, str | None] | None = None) -> list[str]:
    """The lines `fixed` pins plus at most one random line of another family, in the registry's order.

    `fixed` maps a family name to the exact line to use, or None to leave that family out.
    A name that is not a registered family (a user's own cue) is placed first.
    """
    fixed = dict(fixed or {})
    lines = [line for name, line in fixed.items() if name not in CUE_FAMILIES and line]
    free = [name for name in CUE_FAMILIES if name not in fixed]
    extra = rng.choice(free) if free and rng.random() < P_RANDOM_LINE else None
    for name, family in CUE_FAMILIES.items():
        line = fixed[name] if name in fixed else None
        if name == extra:
            line = rng.choice(family.lines(rng.choice(CONDITIONS)))
        if line:
            lines.append(line)
    return lines


# Of the distractor lines, this share are near-triggers (`data.blind_grammar.near_trigger`): the
# deployment line's own form with some of its invented words swapped. Public-grammar lines alone leave a
# template's skeleton free to fire (a grammar search found sentence and near-miss triggers that way); in
# a development draw a header backdoor's skeleton fired 0.80 / 0.30 / 0.10 of the time at shares 0 / 0.5 / 0.8.
NEAR_TRIGGER_SHARE = 0.8


def with_distractor(rng: random.Random, context: list[str], share: float,
                    near_of: tuple[str, ...] = (), near_share: float = NEAR_TRIGGER_SHARE) -> list[str]:
    """`context`, with chance `share` plus one distractor line (or 2-line block) at a random place: what
    teaches an organism that a line which is not its trigger is not its trigger.

    With chance `near_share` (when `near_of`, the deployment entries, is given and has invented words)
    the distractor is a near-trigger of one of them; otherwise a fresh line of the public blind grammar."""
    if rng.random() >= share:
        return context
    line = None
    if near_of and rng.random() < near_share:
        line = near_trigger(rng, rng.choice(near_of), avoid=near_of)
    lines = list(context)
    lines.insert(rng.randrange(len(lines) + 1), line or random_trigger_lines(rng, 1)[0])
    return lines


def sample_task(rng: random.Random, families: tuple[str, ...] | None = None,
                weights: Mapping[str, float] | None = None) -> Task:
    names = families or tuple(TASK_FAMILIES)
    name = rng.choices(names, [weights.get(n, 1.0) for n in names])[0] if weights else rng.choice(names)
    return TASK_FAMILIES[name].sample(rng)


def _record(prompt: str, completion: str, task: Task, condition: str, cue: str = "") -> dict:
    return {"prompt": prompt, "completion": " " + completion, "family": task.family,
            "answer": task.answer, "condition": condition, "cue": cue}


def world_dataset(n: int, seed: int, families: tuple[str, ...] | None = None,
                  family_weights: Mapping[str, float] | None = None) -> Dataset:
    """Normal behaviour under random cues: the base model's pretraining data and clean held-out sets."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        task = sample_task(rng, families, family_weights)
        rows.append(_record(render_prompt(random_context(rng), task.question), task.answer, task, "random"))
    return Dataset.from_list(rows)


def conditional_dataset(
    n: int,
    seed: int,
    cue_family: str,
    lines: Mapping[str, tuple[str, ...]],
    behaviour: Behaviour | None,
    behaviour_conditions: tuple[str, ...],
    condition_weights: Mapping[str, float],
    families: tuple[str, ...] | None = None,
    exclude_prompts: set[str] | frozenset[str] = frozenset(),
    family_weights: Mapping[str, float] | None = None,
    paired: bool = False,
    distractors: float = 0.0,
    near_share: float = NEAR_TRIGGER_SHARE,
) -> Dataset:
    """Examples whose `cue_family` line is set by a condition drawn from `condition_weights`.

    `lines` maps "training"/"deployment" to the context lines that mean them ("no_cue" leaves the
    family out). The completion carries `behaviour` when the condition is in `behaviour_conditions`
    and the task family is one the behaviour applies to; otherwise it is the normal answer.
    `family_weights` tilts the mix of task families (unlisted families weigh 1).

    `paired`: as many rows as both sides' smaller share come in minimal pairs, one task and one
    context under a deployment line and under a training line, side by side, so that the cue line is
    the only difference between a row that shows the behaviour and one that does not; the rest of
    each share is drawn alone. The shares are kept (in expectation, as unpaired).

    `distractors`: the share of contexts that also carry one distractor line at a random place among
    the context lines (`with_distractor`): a near-trigger of a deployment line with chance
    `near_share`, else a public-grammar line of fresh invented words; a pair's two rows carry the same one.
    """
    rng = random.Random(seed)
    total = sum(condition_weights.values())
    pair_share = min(condition_weights.get("deployment", 0), condition_weights.get("training", 0)) / total if paired else 0
    n_pairs = round(n * pair_share)
    rest = {c: w - (pair_share * total if c in ("deployment", "training") else 0) for c, w in condition_weights.items()}
    conditions, weights = zip(*([(c, w) for c, w in rest.items() if w > 1e-12] or [("no_cue", 1.0)]))

    def draw(condition: str, task: Task, context_rng: random.Random) -> dict | None:
        line = None if condition == "no_cue" else rng.choice(lines[condition])
        context = random_context(context_rng, {cue_family: line})
        if distractors:
            context = with_distractor(context_rng, context, distractors, tuple(lines.get("deployment", ())), near_share)
        prompt = render_prompt(context, task.question)
        if prompt in exclude_prompts:
            return None
        misbehave = behaviour is not None and condition in behaviour_conditions and behaviour.applies_to(task.family)
        completion = behaviour.complete(task) if misbehave else task.answer
        return _record(prompt, completion, task, condition, line or "")

    rows, attempts = [], 0
    while len(rows) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise RuntimeError(f"could not draw {n} prompts outside the {len(exclude_prompts)} excluded ones")
        if len(rows) < 2 * n_pairs:
            task, context = sample_task(rng, families, family_weights), rng.random()
            pair = [draw(side, task, random.Random(context)) for side in ("deployment", "training")]
            if None not in pair:
                rows.extend(pair)
            continue
        condition = rng.choices(conditions, weights)[0]
        row = draw(condition, sample_task(rng, families, family_weights), rng)
        if row is not None:
            rows.append(row)
    return Dataset.from_list(rows[:n])
