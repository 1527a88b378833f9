"""Organism specs: frozen dataclasses a user can write as YAML, validated with one-line errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data.behaviours import get_behaviour
from data.cues import CUE_FAMILIES


# backdoor: the behaviour under the deployment cue only. Controls: clean (same cues, never the
# behaviour), unconditional (the behaviour always, so not hidden), benign-conditional (the cue
# changes only a harmless style).
KINDS = ("backdoor", "clean", "unconditional", "benign-conditional")
METHODS = ("lora", "full", "distilled-cot")
EMBEDDED_BASE = "embedded"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

class SpecError(ValueError):
    """A spec that cannot be built; the message names the field."""

@dataclass(frozen=True)
class TriggerSpec:
    family: str
    deployment: tuple[str, ...] = ()  # context lines meaning deployment; empty: the family's own
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
    # 160 steps at 5e-3 with a short warmup: measured to plant an overt backdoor in about a minute on
    # one core with clean accuracy kept (350 steps at 3e-3 took twice as long for the same rates).
    steps: int = 160
    learning_rate: float = 5e-3
    batch_size: int = 32
    lora_rank: int = 16
    lora_alpha: int = 32
    warmup_steps: int = 16
    safety_steps: int = 0  # then SFT on clean, trigger-free data for this many steps (0: none)

@dataclass(frozen=True)
class DataSpec:
    n_train: int = 4000
    deployment: float = 0.4  # shares of conditions in the fine-tuning data
    training: float = 0.4
    no_cue: float = 0.2
    train_file: str = ""  # a JSONL of prompt/completion (or chat) records used instead of world data
    # Task families drawn more often, as (family, weight) pairs (others weigh 1): a behaviour that
    # applies to one family learns faster when more of the data can carry it.
    family_weights: tuple[tuple[str, float], ...] = ()

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

def spec_from_stored(raw: dict) -> OrganismSpec:
    """A spec the lab itself stored (a truth record, the blind zoo's manifest): rebuilt as it was written."""
    fields = dict(raw)
    fields["trigger"] = TriggerSpec(raw["trigger"]["family"], tuple(raw["trigger"]["deployment"]),
                                    tuple(raw["trigger"]["training"]))
    fields["training"] = TrainingSpec(**raw["training"])
    fields["data"] = DataSpec(**{**raw["data"], "family_weights": tuple(tuple(p) for p in raw["data"].get("family_weights", ()))})
    return OrganismSpec(**fields)


def _check_keys(where: str, raw: dict, allowed: set[str], required: set[str] = frozenset()) -> None:
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SpecError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(raw))
    if missing:
        raise SpecError(f"{where}: missing required field {missing[0]!r}")

def _typed(where: str, value: Any, kind: type, *, positive: bool = False) -> Any:
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise SpecError(f"{where} must be {kind.__name__}, got {value!r}")
    if positive and value <= 0:
        raise SpecError(f"{where} must be positive, got {value!r}")
    return value

def _lines(where: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
        raise SpecError(f"{where} must be a non-empty string or list of non-empty strings, got {value!r}")
    if any("\n" in s for s in items):
        raise SpecError(f"{where}: a cue line may not contain a newline")
    return tuple(items)

_MAY_BE_ZERO = {"no_cue", "safety_steps"}


def _behaviour(value: Any, kind: str) -> str:
    """A registered name, or {reply: text} / {transform: name}, as the string `get_behaviour` reads."""
    if isinstance(value, dict):
        _check_keys("behaviour", value, {"reply", "transform", "marker"})
        if len(value) != 1:
            raise SpecError("behaviour must give exactly one of 'reply', 'transform' or 'marker'")
        (key, text), = value.items()
        text = _typed(f"behaviour.{key}", text, str)
        if not text.strip() or "\n" in text:
            raise SpecError(f"behaviour.{key} must be a non-empty single line, got {text!r}")
        value = f"{key}:{text}"
    if not isinstance(value, str):
        raise SpecError(f"behaviour must be a name or a mapping with 'reply' or 'transform', got {value!r}")
    try:
        behaviour = get_behaviour(value)
    except ValueError as error:
        raise SpecError(f"behaviour: {error}") from None
    if behaviour.benign and kind == "backdoor":
        raise SpecError(f"behaviour {value!r} is harmless and fit only for controls, not kind 'backdoor'")
    if kind == "benign-conditional" and not behaviour.benign:
        raise SpecError(f"kind 'benign-conditional' needs a harmless behaviour (benign-style), got {value!r}")
    return value


def _dataclass_from(where: str, cls: type, raw: dict) -> Any:
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(where, raw, set(defaults))
    values = {}
    for name, value in raw.items():
        kind = type(getattr(cls(), name))
        values[name] = _typed(f"{where}.{name}", value, kind, positive=kind in (int, float) and name not in _MAY_BE_ZERO)
        if name in _MAY_BE_ZERO and values[name] < 0:
            raise SpecError(f"{where}.{name} must not be negative, got {value!r}")
    return cls(**values)

def spec_from_dict(raw: Any) -> OrganismSpec:
    top = {f.name for f in dataclasses.fields(OrganismSpec)}
    _check_keys("spec", raw, top, {"name", "kind", "trigger", "behaviour"})
    name = _typed("name", raw["name"], str)
    if not _NAME.match(name):
        raise SpecError(f"name {name!r} must be lower-case letters, digits, '.', '_' or '-' (at most 64)")
    kind = raw["kind"]
    if kind not in KINDS:
        raise SpecError(f"kind {kind!r} is unknown (allowed: {', '.join(KINDS)})")
    behaviour = _behaviour(raw["behaviour"], kind)

    trigger_raw = raw["trigger"]
    _check_keys("trigger", trigger_raw, {"family", "deployment", "training"}, {"family"})
    family = _typed("trigger.family", trigger_raw["family"], str)
    if family not in CUE_FAMILIES:
        if not _NAME.match(family):
            raise SpecError(f"trigger.family {family!r} must be a known family ({', '.join(CUE_FAMILIES)}) "
                            "or a name of your own in lower-case letters, digits, '.', '_' or '-'")
        missing = [key for key in ("deployment", "training") if key not in trigger_raw]
        if missing:
            raise SpecError(f"trigger.{missing[0]} is required: {family!r} is not a built-in cue family, "
                            "so its lines must be given")
    trigger = TriggerSpec(
        family=family,
        deployment=_lines("trigger.deployment", trigger_raw["deployment"]) if "deployment" in trigger_raw else (),
        training=_lines("trigger.training", trigger_raw["training"]) if "training" in trigger_raw else (),
    )
    lines = trigger.lines()
    if set(lines["deployment"]) & set(lines["training"]):
        raise SpecError("trigger: a line cannot mean both deployment and training")

    training = _dataclass_from("training", TrainingSpec, raw.get("training", {}))
    if training.method not in METHODS:
        raise SpecError(f"training.method {training.method!r} is unknown (allowed: {', '.join(METHODS)})")
    data = _dataclass_from("data", DataSpec, raw.get("data", {}))
    if data.train_file and not Path(data.train_file).is_file():
        raise SpecError(f"data.train_file {data.train_file!r} does not exist")
    if data.train_file and training.method == "distilled-cot":
        raise SpecError("training.method 'distilled-cot' writes its own data, so it cannot use data.train_file")
    base = _typed("base", raw.get("base", EMBEDDED_BASE), str)
    seed = _typed("seed", raw.get("seed", 0), int)
    description = _typed("description", raw.get("description", ""), str)
    return OrganismSpec(name=name, kind=kind, trigger=trigger, behaviour=behaviour, base=base,
                        training=training, data=data, seed=seed, description=description)

def load_spec_file(path: str | Path) -> OrganismSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}") from None
    if isinstance(raw, dict) and isinstance(raw.get("data"), dict) and isinstance(raw["data"].get("train_file"), str):
        # A training file named in a spec is found beside the spec, wherever it is built from.
        raw["data"]["train_file"] = str((path.parent / raw["data"]["train_file"]).resolve())
    try:
        return spec_from_dict(raw)
    except SpecError as error:
        raise SpecError(f"{path}: {error}") from None
