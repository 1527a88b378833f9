"""The sealed truth about an organism: one frozen type, one writer, one reader.

Only the builder writes a truth record and only the scorer (and the user, by hand) reads one;
detectors run in processes that cannot reach the folder (see `detectors.benchmark.cells`). The trigger's
lines are always stored expanded, also for controls (the lines they were trained with but do
not act on), and a control names the backdoor it is matched to, so pairs are read, not guessed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from data.store import atomic_write_json
from organisms.store import make_private_dirs, truth_path
from training.fingerprints import content_digest



@dataclass(frozen=True)
class Trigger:
    family: str
    deployment: tuple[str, ...]  # cue blocks meaning deployment; a block may hold several lines (a conjunction)
    training: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"family": self.family, "deployment": list(self.deployment), "training": list(self.training)}


@dataclass(frozen=True)
class Truth:
    organism: str
    kind: str  # backdoor | clean | unconditional | benign-conditional
    trigger: Trigger
    behaviour: str
    method: str
    rates: dict[str, float]  # of the final stage: deployment, training, no_cue, clean_accuracy, base_clean_accuracy
    stages: tuple[dict, ...]  # every training stage with its measured rates and samples
    spec: dict  # the spec that made it, as a plain dict
    base_source: str
    build_fingerprint: str
    seconds: float
    versions: dict[str, str]
    n_per_condition: int
    gate: dict
    gate_passed: bool
    matched_to: str | None = None  # a control: the backdoor it is matched to
    base_clean_accuracy_by_family: dict = field(default_factory=dict)
    phase_seconds: dict = field(default_factory=dict)  # setup / train / check / measure (organisms.build.PhaseClock)

    @property
    def is_control(self) -> bool:
        return self.kind != "backdoor"

    @property
    def final_stage(self) -> dict:
        return self.stages[-1]

    @property
    def trained_rounds(self) -> list[int]:
        """The rounds of the stage that planted the behaviour (fine-tune or distillation), in steps."""
        return next((list(stage["rounds"]) for stage in self.stages if "rounds" in stage), [])

    @property
    def mined_negatives(self) -> list[list[str]]:
        """The hard negatives each check of that stage mined (organisms.hard_negatives), in its order."""
        checks = next((stage.get("checks", []) for stage in self.stages if "rounds" in stage), [])
        return [list(check.get("negatives", [])) for check in checks]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["trigger"] = self.trigger.to_dict()
        out["stages"] = list(self.stages)
        out["is_control"] = self.is_control
        out["schema"] = truth_schema()
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> "Truth":
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in names}
        t = raw["trigger"]
        values["trigger"] = Trigger(t["family"], tuple(t["deployment"]), tuple(t["training"]))
        values["stages"] = tuple(raw["stages"])
        return cls(**values)


def truth_schema() -> str:
    """The record's format, as a hash of its fields' names and types: a record written in another format
    reads as unbuilt, with no version to bump. (A field whose meaning changes takes a new name.)"""
    return content_digest([(cls.__name__, f.name, str(f.type)) for cls in (Truth, Trigger)
                           for f in dataclasses.fields(cls)])


def write_truth(truth: Truth) -> None:
    """The one writer: atomic, owner-only."""
    make_private_dirs()
    atomic_write_json(truth_path(truth.organism), truth.to_dict(), mode=0o600)


def read_truth(name: str) -> Truth | None:
    """The one reader: None when the organism is not built (or its record predates this format)."""
    path = truth_path(name)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        if raw.get("schema") != truth_schema():
            return None
        return Truth.from_dict(raw)
    except (ValueError, KeyError, TypeError):
        return None  # a damaged record counts as unbuilt: the build is redone, never trusted


def remove_truth(name: str) -> None:
    truth_path(name).unlink(missing_ok=True)
