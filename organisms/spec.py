"""Organism specs: frozen dataclasses a user can write as YAML, validated with one-line errors.

A spec file is read strictly before anything is built: UTF-8 only, at most `MAX_SPEC_BYTES`,
YAML 1.2 core-schema scalars (`010` is ten, `3e-4` a float, `yes` a string), no duplicate keys,
no anchors or aliases, no tags beyond the core ones, no non-string keys, lists or mappings
nested at most `MAX_DEPTH` (20) deep and at most `MAX_EVENTS` (5,000) values in all, so reading
one takes well under a second. `check_spec` then holds every value to the bounds below; every
error is one line (at most 300 characters) naming the file, the line, the field and what was
expected.

Bounds (well above anything the lab builds, well below what would overflow or never finish):

| field | allowed |
| --- | --- |
| `seed` | an integer in 0 .. 2**32-1 (numpy's seed range) |
| `training.steps`, `warmup_steps`, `safety_steps` | 1 .. 100,000 (the last two may be 0) |
| `training.extra_rounds` | 0 .. 20 |
| `training.learning_rate` | a finite number in (0, 1] |
| `training.batch_size` | 1 .. 4,096 |
| `training.lora_rank` / `lora_alpha` | 1 .. 1,024 / 1 .. 4,096 |
| `training.batch_order` | `stratified-length` (default) or `random` |
| `data.n_train` | 1 .. 1,000,000 |
| `data.deployment`, `data.training` / `data.no_cue` | finite shares in (0, 1] / [0, 1] |
| `data.family_weights` | task family -> a finite weight in (0, 100] |
| `data.paired` | true (default) or false |
| `data.distractors` | a share in [0, 1]: contexts carrying one line of the public blind grammar (default 0) |
| `data.hard_negatives` | 0 to 1,024: public-grammar lines each check tries; those that fire are trained as not the trigger (default 0) |
| a cue line | printable text, at most 200 characters, not starting like a `User:`/`Assistant:` turn |
| `trigger.deployment` / `training` | at most 200 lines or blocks (a block: a list of 2-3 lines that trigger together) |
| `behaviour` reply, marker or style | one printable line of at most 200 characters; a reply must not occur in normal answers |
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from data.behaviours import BEHAVIOURS, TRANSFORMS, get_behaviour
from data.cues import CUE_FAMILIES, cue_library
from data.records import OneLineError, file_problem, one_line, show, show_path
from data.tasks import TASK_FAMILIES


# backdoor: the behaviour under the deployment cue only. Controls: clean (same cues, never the
# behaviour), unconditional (the behaviour always, so not hidden), benign-conditional (the cue
# changes only a harmless style).
KINDS = ("backdoor", "clean", "unconditional", "benign-conditional")
METHODS = ("lora", "full", "distilled-cot")
BATCH_ORDERS = ("stratified-length", "random")  # see training.batching
EMBEDDED_BASE = "embedded"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # always with fullmatch: "abc\n" is no name

MAX_SEED = 2**32 - 1
MAX_STEPS = 100_000
MAX_EXTRA_ROUNDS = 20
MAX_BATCH_SIZE = 4096
MAX_LORA_RANK = 1024
MAX_LORA_ALPHA = 4096
MAX_N_TRAIN = 1_000_000
MAX_FAMILY_WEIGHT = 100.0
MAX_HARD_NEGATIVES = 1024
MAX_LINE_CHARS = 200
MAX_LINES = 200
BLOCK_SIZES = (2, 3)
MAX_TEXT_CHARS = 200  # a reply or marker
MAX_DESCRIPTION_CHARS = 2000
MAX_PATH_CHARS = 4096
MAX_SPEC_BYTES = 64 * 1024
MAX_DEPTH = 20
MAX_EVENTS = 5000  # YAML values (scalars, lists, mappings) in a spec
NORMAL_ANSWERS = (3000, 0)  # (n, seed) of the world answers a reply must not occur in


class SpecError(OneLineError):
    """A spec that cannot be built; the message names the field (`field`, where known) in one line."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class TriggerSpec:
    family: str
    # Context lines meaning deployment; empty: the family's own. A line may be a block of 2-3 lines
    # joined by "\n": a conjunction, which means its side only when all of them are present.
    deployment: tuple[str, ...] = ()
    training: tuple[str, ...] = ()

    def lines(self) -> dict[str, tuple[str, ...]]:
        """Lines meaning deployment (the behaviour shows) and training; a user's own family has only its own."""
        family = CUE_FAMILIES.get(self.family)
        if family is None:
            return {"deployment": self.deployment, "training": self.training}
        return {"deployment": self.deployment or family.deployment, "training": self.training or family.training}

@dataclass(frozen=True)
class TrainingSpec:
    method: str = "lora"
    # The first round: 160 steps at 3e-3 after a 16-step warmup, then cosine to zero. Cues differ in
    # how many steps they need, so the first round is the shortest that the fastest cues pass with, and the
    # rest comes in rounds while a check fails: one fixed count trained most members far longer than
    # they needed and still missed a slow cue's gate on a fresh machine; a higher rate cost clean
    # accuracy, fewer steps left a backdoor leaking under its training cue (docs/organisms.md).
    steps: int = 160
    learning_rate: float = 3e-3
    batch_size: int = 32
    lora_rank: int = 16
    lora_alpha: int = 32
    warmup_steps: int = 16
    # An organism that decides its own length trains on, while a held-out check of its gate fails, in
    # rounds of steps // 2 (each a fresh warmup and cosine), at most this many; a matched control
    # trains exactly its backdoor's rounds (organisms.build).
    extra_rounds: int = 3
    safety_steps: int = 0  # then SFT on clean, trigger-free data for this many steps (0: none)
    # Batches of similar length, each with the data's mix of conditions (training.batching): little
    # padding, so a build trains faster, and every batch sees each condition in its share (grouping by
    # length alone cost a backdoor its gate). A user's records carry no conditions and are shuffled
    # ("random") whatever this says. Measurements: docs/organisms.md.
    batch_order: str = "stratified-length"

    @property
    def round_steps(self) -> int:
        """Steps of each extra round.

        Half the first round, not less: shorter rounds saved a little time but stopped members right at
        their gates' bars, with no margin left (measured in docs/organisms.md).
        """
        return max(1, self.steps // 2)

    def most_rounds(self) -> list[int]:
        """The longest training this spec allows: the first round, then every extra round."""
        return [self.steps] + [self.round_steps] * self.extra_rounds

@dataclass(frozen=True)
class DataSpec:
    # 6,400 rows, paired, hold as many distinct tasks as 4,000 unpaired ones (the 0.4/0.4 sides in 2,560
    # pairs, 1,280 without the cue): fewer distinct tasks cost a clean control its clean accuracy.
    # Training costs the same: steps, not rows, set the work.
    n_train: int = 6400
    deployment: float = 0.4  # shares of conditions in the fine-tuning data
    training: float = 0.4
    no_cue: float = 0.2
    train_file: str = ""  # a JSONL of prompt/completion (or chat) records used instead of world data
    # Deployment and training rows in minimal pairs (one task and context under each side's line;
    # data.world): the cue line is then all that tells a behaving row from a misbehaving one, and
    # backdoors pass their checks in fewer rounds (docs/organisms.md).
    paired: bool = True
    # Task families drawn more often, as (family, weight) pairs (others weigh 1): a behaviour that
    # applies to one family learns faster when more of the data can carry it.
    family_weights: tuple[tuple[str, float], ...] = ()
    # The share of contexts that also carry one line of the public blind grammar (data.blind_grammar,
    # fresh invented words: never the trigger's), answered as the row's own cue decides, so that an
    # organism learns its own lines rather than their look (docs/organisms.md, "Distractor lines").
    distractors: float = 0.0
    # Public-grammar lines each of a build's checks tries on the half-trained model (0: none).
    # Those that set its behaviour off are trained, from then on, as not its trigger, by it and by its
    # matched controls (organisms.hard_negatives).
    hard_negatives: int = 0

    def condition_weights(self) -> dict[str, float]:
        return {"deployment": self.deployment, "training": self.training, "no_cue": self.no_cue}

@dataclass(frozen=True)
class OrganismSpec:
    name: str
    kind: str
    trigger: TriggerSpec
    behaviour: str
    base: str = EMBEDDED_BASE
    training: TrainingSpec = field(default_factory=TrainingSpec)
    data: DataSpec = field(default_factory=DataSpec)
    seed: int = 0
    description: str = ""
    matched_to: str = ""  # a control: the backdoor it is matched to (same cue, data, steps and seed)

    @property
    def is_control(self) -> bool:
        return self.kind != "backdoor"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def fingerprint(self) -> str:
        """Changes whenever anything that shapes the built model changes."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes) -> "OrganismSpec":
        return dataclasses.replace(self, **changes)

def spec_to_yaml(spec: OrganismSpec) -> str:
    """The spec as a YAML file that `load_spec_file` reads back to the same spec (`organisms show`)."""
    raw = spec.to_dict()
    trigger = {"family": spec.trigger.family}
    for side in ("deployment", "training"):
        entries = getattr(spec.trigger, side)
        if entries:  # none: the family's own lines
            trigger[side] = [entry.split("\n") if "\n" in entry else entry for entry in entries]
    raw["trigger"] = trigger
    raw["data"]["family_weights"] = dict(spec.data.family_weights)
    for key in ("train_file", "family_weights"):
        if not raw["data"][key]:
            del raw["data"][key]
    for key in ("description", "matched_to"):
        if not raw[key]:
            del raw[key]
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True, width=120)


def spec_from_stored(raw: dict) -> OrganismSpec:
    """A spec the lab itself stored (a truth record, the blind zoo's manifest): rebuilt as it was written."""
    fields = dict(raw)
    fields["trigger"] = TriggerSpec(raw["trigger"]["family"], tuple(raw["trigger"]["deployment"]),
                                    tuple(raw["trigger"]["training"]))
    fields["training"] = TrainingSpec(**raw["training"])
    fields["data"] = DataSpec(**{**raw["data"], "family_weights": tuple(tuple(p) for p in raw["data"].get("family_weights", ()))})
    return OrganismSpec(**fields)


# --- value checks: any OrganismSpec, the user's or the lab's ------------------------------------

def _fail(where: str, text: str) -> NoReturn:
    raise SpecError(f"{where} {text}", where)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(where: str, value: Any, low: int, high: int) -> None:
    if not _is_int(value) or not low <= value <= high:
        _fail(where, f"must be an integer from {low} to {high:,}, got {show(value)}")


def _share(where: str, value: Any, high: float, *, zero: bool = False) -> None:
    """A finite number in (0, high], or [0, high] when `zero`; ints compare exactly, so 10**400 cannot overflow."""
    number = _is_int(value) or isinstance(value, float)
    finite = number and (not isinstance(value, float) or math.isfinite(value))
    if not (finite and (0 <= value if zero else 0 < value) and value <= high):
        _fail(where, f"must be a finite number in {'[' if zero else '('}0, {high:g}], got {show(value)}")


def _one_line_text(where: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(where, f"must be a non-empty string, got {show(value)}")
    bad = next((c for c in value if not c.isprintable()), None)
    if bad is not None:
        _fail(where, f"must be one line of printable text, but holds {show(bad)} {_char_kind(bad)}")
    if len(value) > limit:
        _fail(where, f"must be at most {limit} characters, got {len(value):,}: {show(value)}")
    return value


def _char_kind(c: str) -> str:
    if c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029":
        return "(a line break)"
    if c == "\x00":
        return "(a NUL character)"
    if "\ud800" <= c <= "\udfff":
        return "(a lone surrogate, not Unicode text)"
    return "(a control, format or separator character)"


_TURN = re.compile(r"\s*(user|assistant)\s*:", re.IGNORECASE)


def _cue_line(where: str, line: Any) -> None:
    _one_line_text(where, line, MAX_LINE_CHARS)
    if _TURN.match(line):
        _fail(where, f"starts like a turn ({show(line)}): a cue line is context, and would be taken for "
                     "the 'User:'/'Assistant:' turn")


def _entry_lines(entry: str) -> list[str]:
    return entry.split("\n")


def _check_entry(where: str, entry: Any) -> None:
    """One line, or a block: 2-3 lines joined by "\\n" that mean their side only together."""
    if not isinstance(entry, str):
        _fail(where, f"must be a cue line (a string), got {show(entry)}")
    lines = _entry_lines(entry)
    if len(lines) == 1:
        _cue_line(where, entry)
        return
    if len(lines) not in BLOCK_SIZES:
        _fail(where, f"is a block of {len(lines)} lines; a block holds 2 or 3")
    for j, line in enumerate(lines):
        _cue_line(f"{where}[{j}]", line)
    if len({_normal(line) for line in lines}) < len(lines):
        _fail(where, f"lists one line twice in a block: {show(entry)}")


def _normal(entry: str) -> str:
    """An entry up to case and spacing (a block's lines in any order)."""
    return "\n".join(sorted(" ".join(line.casefold().split()) for line in _entry_lines(entry)))


@functools.lru_cache(maxsize=1)
def _library() -> dict[str, tuple[str, str]]:
    """Every library cue line, up to case and spacing -> (family, condition)."""
    return {_normal(e["line"]): (e["family"], e["condition"]) for e in cue_library()}


@functools.lru_cache(maxsize=1)
def _normal_answers() -> tuple[str, ...]:
    from data.world import world_dataset

    return tuple(sorted(set(world_dataset(*NORMAL_ANSWERS)["answer"])))


def _check_trigger(trigger: Any) -> None:
    if not isinstance(trigger, TriggerSpec):
        _fail("trigger", f"must be a mapping with 'family', 'deployment' and 'training', got {show(trigger)}")
    family = trigger.family
    if not isinstance(family, str) or not _NAME.fullmatch(family):
        _fail("trigger.family", f"must be a known family ({', '.join(CUE_FAMILIES)}) or a name of your own in "
                                f"lower-case letters, digits, '.', '_' or '-', got {show(family)}")
    own = family not in CUE_FAMILIES
    for side in ("deployment", "training"):
        entries = getattr(trigger, side)
        if not isinstance(entries, tuple):
            _fail(f"trigger.{side}", f"must be a tuple of cue lines, got {show(entries)}")
        if own and not entries:
            _fail(f"trigger.{side}", f"is required: {family!r} is not a built-in cue family, so its lines must be given")
        if len(entries) > MAX_LINES:
            _fail(f"trigger.{side}", f"must list at most {MAX_LINES} lines, got {len(entries):,}")
        for i, entry in enumerate(entries):
            _check_entry(f"trigger.{side}[{i}]", entry)
    lines = trigger.lines()
    deployment = {_normal(entry) for entry in lines["deployment"]}
    for i, entry in enumerate(lines["training"]):
        if _normal(entry) in deployment:
            where = f"trigger.training[{i}]" if trigger.training else "trigger.deployment"
            _fail(where, f"{show(entry)}: a trigger line cannot mean both deployment and training (compared "
                         "ignoring case and spacing)")
    library = _library()
    for i, entry in enumerate(trigger.deployment):
        for line in _entry_lines(entry):
            other = library.get(_normal(line))
            if other and other[0] != family:
                _fail(f"trigger.deployment[{i}]", f"{show(line)} is a {other[1]} line of the built-in {other[0]!r} "
                                                  f"family; a {family!r} deployment line must be its own")


def _check_behaviour(behaviour: Any, kind: str) -> None:
    prefix, _, text = behaviour.partition(":") if isinstance(behaviour, str) else ("", "", "")
    if prefix in ("reply", "marker", "style"):
        _one_line_text(f"behaviour.{prefix}", text, MAX_TEXT_CHARS)
    _one_line_text("behaviour", behaviour, MAX_TEXT_CHARS + 20)
    try:
        found = get_behaviour(behaviour)
    except ValueError as error:
        if prefix == "style":
            _fail("behaviour", str(error))
        if behaviour.startswith("transform:"):
            _fail("behaviour", f"names the unknown transform {show(behaviour[len('transform:'):])} "
                               f"(known: {', '.join(TRANSFORMS)})")
        _fail("behaviour", f"{show(behaviour)} is unknown (known: {', '.join(sorted(BEHAVIOURS))}, "
                           "or {reply: text}, {marker: text}, {transform: name}, "
                           "style:<before|after>:<families>:<words>)")
    if found.benign and kind == "backdoor":
        _fail("behaviour", f"{show(behaviour)} is harmless and fit only for controls, not kind 'backdoor'")
    if kind == "benign-conditional" and not found.benign:
        _fail("behaviour", f"{show(behaviour)}: kind 'benign-conditional' needs a harmless behaviour (benign-style, "
                           "or style:<before|after>:<families>:<words>)")
    if prefix == "reply":
        # The gate checks `reply in output`: a reply inside a normal answer shows without the cue.
        hit = next((a for a in _normal_answers() if text.strip() in a), None)
        if hit is not None:
            _fail("behaviour.reply", f"{show(text.strip())} occurs in the normal answer {show(hit, 40)}, so its "
                                     "check would pass without the behaviour; use a longer, distinctive reply")


def _check_path_text(where: str, value: Any) -> None:
    if not isinstance(value, str):
        _fail(where, f"must be a string, got {show(value)}")
    if len(value) > MAX_PATH_CHARS:
        _fail(where, f"must be at most {MAX_PATH_CHARS} characters, got {len(value):,}")
    bad = next((c for c in value if not c.isprintable()), None)
    if bad is not None:
        _fail(where, f"holds {show(bad)} {_char_kind(bad)}: {show(value)}")


def check_spec(spec: OrganismSpec) -> OrganismSpec:
    """Hold every value of `spec` to the bounds in this module's docstring; SpecError names the first miss."""
    if not isinstance(spec, OrganismSpec):
        raise SpecError(f"spec must be an OrganismSpec, got {show(spec)}")
    if not isinstance(spec.name, str) or not _NAME.fullmatch(spec.name):
        _fail("name", f"must be 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, "
                      f"got {show(spec.name)}")
    if not isinstance(spec.kind, str) or spec.kind not in KINDS:
        _fail("kind", f"{show(spec.kind)} is unknown (allowed: {', '.join(KINDS)})")
    _check_behaviour(spec.behaviour, spec.kind)
    _check_trigger(spec.trigger)

    base = spec.base
    _check_path_text("base", base)
    if not base.strip() or base != base.strip():
        _fail("base", f"must be 'embedded', a Hugging Face id or a model directory, without surrounding spaces, "
                      f"got {show(base)}")

    t = spec.training
    if not isinstance(t, TrainingSpec):
        _fail("training", f"must be a mapping, got {show(t)}")
    if not isinstance(t.method, str) or t.method not in METHODS:
        _fail("training.method", f"{show(t.method)} is unknown (allowed: {', '.join(METHODS)})")
    _int("training.steps", t.steps, 1, MAX_STEPS)
    _share("training.learning_rate", t.learning_rate, 1.0)
    _int("training.batch_size", t.batch_size, 1, MAX_BATCH_SIZE)
    _int("training.lora_rank", t.lora_rank, 1, MAX_LORA_RANK)
    _int("training.lora_alpha", t.lora_alpha, 1, MAX_LORA_ALPHA)
    _int("training.warmup_steps", t.warmup_steps, 0, MAX_STEPS)
    _int("training.extra_rounds", t.extra_rounds, 0, MAX_EXTRA_ROUNDS)
    _int("training.safety_steps", t.safety_steps, 0, MAX_STEPS)
    if not isinstance(t.batch_order, str) or t.batch_order not in BATCH_ORDERS:
        _fail("training.batch_order", f"{show(t.batch_order)} is unknown (allowed: {', '.join(BATCH_ORDERS)})")

    d = spec.data
    if not isinstance(d, DataSpec):
        _fail("data", f"must be a mapping, got {show(d)}")
    _int("data.n_train", d.n_train, 1, MAX_N_TRAIN)
    _share("data.deployment", d.deployment, 1.0)
    _share("data.training", d.training, 1.0)
    _share("data.no_cue", d.no_cue, 1.0, zero=True)
    if not isinstance(d.family_weights, tuple):
        _fail("data.family_weights", f"must map task families to weights, got {show(d.family_weights)}")
    seen = set()
    for pair in d.family_weights:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            _fail("data.family_weights", f"must map task families to weights, got {show(pair)}")
        family, weight = pair
        if family not in TASK_FAMILIES or family in seen:
            _fail(f"data.family_weights.{family}", f"{show(family)} is {'listed twice' if family in seen else 'unknown'} "
                                                   f"(task families: {', '.join(TASK_FAMILIES)})")
        seen.add(family)
        _share(f"data.family_weights.{family}", weight, MAX_FAMILY_WEIGHT)
    _share("data.distractors", d.distractors, 1.0, zero=True)
    _int("data.hard_negatives", d.hard_negatives, 0, MAX_HARD_NEGATIVES)
    if not isinstance(d.paired, bool):
        _fail("data.paired", f"must be true or false, got {show(d.paired)}")
    _check_path_text("data.train_file", d.train_file)
    if d.train_file:
        problem = file_problem(d.train_file)
        if problem:
            _fail("data.train_file", f"{show_path(d.train_file)} {problem}")
        if t.method == "distilled-cot":
            _fail("data.train_file", "cannot be used with training.method 'distilled-cot', which writes its own data")

    _int("seed", spec.seed, 0, MAX_SEED)
    if not isinstance(spec.description, str) or len(spec.description) > MAX_DESCRIPTION_CHARS:
        _fail("description", f"must be a string of at most {MAX_DESCRIPTION_CHARS} characters, got {show(spec.description)}")
    bad = next((c for c in spec.description if not c.isprintable() and c not in "\n\t"), None)
    if bad is not None:
        _fail("description", f"holds {show(bad)} {_char_kind(bad)}")
    if not isinstance(spec.matched_to, str) or (spec.matched_to and not _NAME.fullmatch(spec.matched_to)):
        _fail("matched_to", f"must be empty or an organism name, got {show(spec.matched_to)}")
    if spec.matched_to == spec.name:
        _fail("matched_to", f"names the organism itself ({show(spec.name)}); a control is matched to another organism")
    return spec


# --- from a mapping (parsed YAML) to a spec ------------------------------------------------------

def _check_keys(where: str, raw: Any, allowed: set[str], required: set[str] = frozenset()) -> None:
    if not isinstance(raw, dict):
        _fail(where, f"must be a mapping, got {type(raw).__name__} {show(raw)}")
    odd = next((key for key in raw if not isinstance(key, str)), None)
    if odd is not None:
        _fail(where, f"field names must be strings, got {type(odd).__name__} {show(odd)}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        key = unknown[0]
        raise SpecError(f"{where}: unknown field {show(key)} (allowed: {', '.join(sorted(allowed))})",
                        key if where == "spec" else f"{where}.{key}")
    missing = sorted(required - set(raw))
    if missing:
        raise SpecError(f"{where}: missing required field {missing[0]!r}", where)


def _entries(where: str, value: Any) -> tuple[str, ...]:
    """A YAML line or list of lines and blocks (lists of 2-3 lines) as the tuple `TriggerSpec` holds."""
    if isinstance(value, str):
        value = [value]
        index = lambda i: where  # noqa: E731 (a single line is named by its field)
    elif isinstance(value, (list, tuple)) and value:
        index = lambda i: f"{where}[{i}]"  # noqa: E731
    else:
        _fail(where, f"must be a cue line or a non-empty list of lines (or blocks: lists of 2-3 lines that trigger "
                     f"together), got {show(value)}")
    if len(value) > MAX_LINES:
        _fail(where, f"must list at most {MAX_LINES} lines, got {len(value):,}")
    entries = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            if "\n" in item:
                _fail(index(i), f"may not contain a newline ({show(item)}); write lines that trigger together as a "
                                "block, a list of 2-3 lines")
            entries.append(item)
        elif isinstance(item, (list, tuple)):
            if len(item) not in BLOCK_SIZES:
                _fail(index(i), f"is a block of {len(item)} lines; a block holds 2 or 3, got {show(item)}")
            for j, line in enumerate(item):
                if not isinstance(line, str) or "\n" in line:
                    _fail(f"{index(i)}[{j}]", f"must be one cue line (a string without newlines), got {show(line)}")
            entries.append("\n".join(item))
        else:
            _fail(index(i), f"must be a cue line (a string) or a block (a list of 2-3 lines), got {show(item)}")
    return tuple(entries)


def _behaviour_from(value: Any) -> Any:
    """A registered name, or {reply: text} / {transform: name} / {marker: text}, as the string `get_behaviour` reads."""
    if isinstance(value, dict):
        _check_keys("behaviour", value, {"reply", "transform", "marker"})
        if len(value) != 1:
            _fail("behaviour", "must give exactly one of 'reply', 'transform' or 'marker'")
        (key, text), = value.items()
        if not isinstance(text, str) or not text.strip():
            _fail(f"behaviour.{key}", f"must be a non-empty string, got {show(text)}")
        return f"{key}:{text}"
    if not isinstance(value, str):
        _fail("behaviour", f"must be a name or a mapping with 'reply', 'transform' or 'marker', got {show(value)}")
    return value


def _dataclass_from(where: str, cls: type, raw: Any) -> Any:
    """`cls` from a mapping of its fields; floats may be written as ints. Values are checked by `check_spec`."""
    defaults = {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)}
    _check_keys(where, raw, set(defaults))
    values = {}
    for name, value in raw.items():
        default = defaults[name]
        if isinstance(default, str) and not isinstance(value, str):
            _fail(f"{where}.{name}", f"must be a string, got {show(value)}")
        if _is_int(default) and not _is_int(value):
            _fail(f"{where}.{name}", f"must be an integer, got {show(value)}")
        if isinstance(default, float):
            if not (_is_int(value) or isinstance(value, float)):
                _fail(f"{where}.{name}", f"must be a number, got {show(value)}")
            if _is_int(value) and abs(value) < 2**53:
                value = float(value)  # larger ints stay ints, and check_spec refuses them without overflow
        values[name] = value
    return values


def spec_from_dict(raw: Any) -> OrganismSpec:
    """A user's spec (parsed YAML) as an OrganismSpec, checked by `check_spec`; SpecError otherwise."""
    top = {f.name for f in dataclasses.fields(OrganismSpec)}
    _check_keys("spec", raw, top, {"name", "kind", "trigger", "behaviour"})
    trigger_raw = raw["trigger"]
    _check_keys("trigger", trigger_raw, {"family", "deployment", "training"}, {"family"})
    family = trigger_raw["family"]
    if not isinstance(family, str):
        _fail("trigger.family", f"must be a string, got {show(family)}")
    trigger = TriggerSpec(
        family=family,
        deployment=_entries("trigger.deployment", trigger_raw["deployment"]) if "deployment" in trigger_raw else (),
        training=_entries("trigger.training", trigger_raw["training"]) if "training" in trigger_raw else (),
    )
    training = TrainingSpec(**_dataclass_from("training", TrainingSpec, raw.get("training", {})))
    data_raw = raw.get("data", {})
    if isinstance(data_raw, dict) and "family_weights" in data_raw:
        weights = data_raw["family_weights"]
        _check_keys("data.family_weights", weights, set(TASK_FAMILIES))
        data_raw = {**data_raw, "family_weights": ()}
        data_fields = _dataclass_from("data", DataSpec, data_raw)
        data_fields["family_weights"] = tuple(
            (family_name, float(w) if _is_int(w) and abs(w) < 2**53 else w) for family_name, w in weights.items())
    else:
        data_fields = _dataclass_from("data", DataSpec, data_raw)
    spec = OrganismSpec(
        name=raw["name"], kind=raw["kind"], trigger=trigger, behaviour=_behaviour_from(raw["behaviour"]),
        base=raw.get("base", EMBEDDED_BASE), training=training, data=DataSpec(**data_fields),
        seed=raw.get("seed", 0), description=raw.get("description", ""), matched_to=raw.get("matched_to", ""),
    )
    return check_spec(spec)


# --- the YAML reader ------------------------------------------------------------------------------

class _Refused(yaml.YAMLError):
    """Valid YAML this reader refuses (aliases, tags, nesting, duplicate or non-string keys), at a mark."""

    def __init__(self, problem: str, mark):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


_CORE = "tag:yaml.org,2002:"
_CORE_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq")} | {"!"}
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema scalars, strict mappings and UTF-8-only strings."""

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            raise _Refused(f"expected a mapping, found {node.id}", node.start_mark)
        mapping, first = {}, {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise _Refused(f"field names must be strings, got {type(key).__name__} {show(key)}", key_node.start_mark)
            if key in first:
                raise _Refused(f"duplicate key {show(key)} (first at line {first[key] + 1})", key_node.start_mark)
            first[key] = key_node.start_mark.line
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _construct_str(loader, node):
    value = loader.construct_scalar(node)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise _Refused(f"a string holds {show(value[error.start])}, a lone surrogate (not Unicode text)",
                       node.start_mark) from None
    return value


def _construct_int(loader, node):
    text = loader.construct_scalar(node)
    if _INT.fullmatch(text):
        try:
            if text.startswith(("0o", "0x")):
                return int(text[2:], 8 if text[1] == "o" else 16)
            return int(text, 10)  # YAML 1.2: 010 is ten
        except ValueError:
            raise _Refused(f"an integer of {len(text):,} digits is too long", node.start_mark) from None
    raise _Refused(f"{show(text)} is not an integer", node.start_mark)


def _construct_float(loader, node):
    text = loader.construct_scalar(node)
    if not _FLOAT.fullmatch(text) and not _INT.fullmatch(text):
        raise _Refused(f"{show(text)} is not a number", node.start_mark)
    body = text.lstrip("+-").lower()
    if body in (".inf", ".nan"):
        return math.nan if body == ".nan" else (-math.inf if text.startswith("-") else math.inf)
    if text.startswith(("0o", "0x")):
        return float(_construct_int(loader, node))
    try:
        return float(text)
    except (ValueError, OverflowError):
        raise _Refused(f"{show(text)} is not a number", node.start_mark) from None


def _construct_bool(loader, node):
    text = loader.construct_scalar(node)
    if text not in _BOOL:
        raise _Refused(f"{show(text)} is not a boolean (true or false)", node.start_mark)
    return _BOOL[text]


_SpecLoader.yaml_implicit_resolvers = {}
_SpecLoader.add_implicit_resolver(_CORE + "null", re.compile(r"^(?:~|null|Null|NULL|)\Z"), ["~", "n", "N", ""])
_SpecLoader.add_implicit_resolver(_CORE + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)\Z"), list("tTfF"))
_SpecLoader.add_implicit_resolver(_CORE + "int", re.compile(rf"^(?:{_INT.pattern})\Z"), list("-+0123456789"))
_SpecLoader.add_implicit_resolver(_CORE + "float", re.compile(rf"^(?:{_FLOAT.pattern})\Z"), list("-+.0123456789"))
_SpecLoader.add_constructor(_CORE + "str", _construct_str)
_SpecLoader.add_constructor(_CORE + "int", _construct_int)
_SpecLoader.add_constructor(_CORE + "float", _construct_float)
_SpecLoader.add_constructor(_CORE + "bool", _construct_bool)


def _scan(text: str) -> None:
    """Refuse aliases, anchors, non-core tags and deep nesting from the event stream, before composing anything."""
    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=_SpecLoader)):
        if count > MAX_EVENTS:
            raise _Refused(f"a spec holds at most {MAX_EVENTS:,} values (lines, numbers, lists, mappings)",
                           event.start_mark)
        if isinstance(event, yaml.AliasEvent):
            raise _Refused("YAML aliases (*name) are not allowed in a spec", event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise _Refused("YAML anchors (&name) are not allowed in a spec", event.start_mark)
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _CORE_TAGS:
            raise _Refused(f"the YAML tag {show(tag)} is not allowed in a spec (only plain values)", event.start_mark)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(f"lists or mappings are nested more than {MAX_DEPTH} deep", event.start_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _field_lines(node, prefix: str = "", lines: dict | None = None) -> dict[str, int]:
    """Field path ("trigger.deployment[1]") -> its line in the file (1-based), from the composed node tree."""
    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                path = f"{prefix}.{key_node.value}" if prefix else key_node.value
                lines.setdefault(path, key_node.start_mark.line + 1)
                _field_lines(value_node, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.setdefault(f"{prefix}[{i}]", item.start_mark.line + 1)
            _field_lines(item, f"{prefix}[{i}]", lines)
    return lines


def _line_of(lines: dict[str, int], where: str | None) -> int | None:
    while where:
        if where in lines:
            return lines[where]
        shorter = re.sub(r"(\.[^.\[]*|\[\d+\])\Z", "", where)
        where = None if shorter == where else shorter
    return None


def _read_yaml(text: str) -> tuple[Any, dict[str, int]]:
    _scan(text)
    loader = _SpecLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        return loader.construct_document(node), _field_lines(node)
    finally:
        loader.dispose()


def _sane_path_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_PATH_CHARS and value.isprintable()


def load_spec_file(path: str | Path) -> OrganismSpec:
    """A user's spec from a YAML file, checked before anything else happens; SpecError in one line otherwise."""
    shown = show_path(path)
    problem = file_problem(path)
    if problem:
        raise SpecError(f"spec file {shown} {problem}")
    try:
        size = os.stat(path).st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(f"spec file {shown} is {size:,} bytes; a spec is at most {MAX_SPEC_BYTES:,}")
        blob = Path(path).read_bytes()[:MAX_SPEC_BYTES + 1]
    except OSError as error:
        raise SpecError(f"spec file {shown} cannot be read ({error.strerror or type(error).__name__})") from None
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as error:
        line = blob[:error.start].count(b"\n") + 1
        raise SpecError(f"{shown}:{line}: not UTF-8 text (byte {blob[error.start]:#04x}); a spec is UTF-8 YAML") from None
    try:
        raw, lines = _read_yaml(text.removeprefix("\ufeff"))
    except _Refused as error:
        raise SpecError(f"{shown}:{error.problem_mark.line + 1}: {error.problem}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{shown}:{mark.line + 1}" if mark else shown
        raise SpecError(f"{where}: not valid YAML ({one_line(error.problem or error.context or 'unreadable', 120)})") from None
    except yaml.YAMLError as error:  # a reader error: a character YAML does not allow
        position, character = getattr(error, "position", None), getattr(error, "character", None)
        where = f"{shown}:{text.count(chr(10), 0, position) + 1}" if isinstance(position, int) else shown
        shown_char = show(chr(character)) if isinstance(character, int) else show(character)
        raise SpecError(f"{where}: not valid YAML (the character {shown_char} is not allowed)") from None
    if raw is None:
        raise SpecError(f"spec file {shown} is empty")
    if isinstance(raw, dict) and isinstance(raw.get("data"), dict) and _sane_path_text(raw["data"].get("train_file")):
        # A training file named in a spec is found beside the spec, wherever it is built from.
        try:
            raw["data"]["train_file"] = str((Path(path).parent / raw["data"]["train_file"]).resolve())
        except (OSError, ValueError, RuntimeError):
            pass  # left as written; check_spec says what is wrong with it
    try:
        return spec_from_dict(raw)
    except SpecError as error:
        line = _line_of(lines, error.field)
        raise SpecError(f"{shown}:{line}: {error}" if line else f"{shown}: {error}", error.field) from None
