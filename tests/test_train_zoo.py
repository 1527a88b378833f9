"""The public training zoo: the blind generator's draw from a public seed, registered as the zoo `train`."""

import json
from collections import Counter

from organisms.__main__ import _validated, main
from organisms.blind_zoo import DEFAULT_BACKDOORS, DEFAULT_UNCONDITIONAL, draw_blind_zoo, is_blind_name
from organisms.train_zoo import TRAIN_SEED, TRAIN_ZOO, train_members
from organisms.zoo import get_organism, get_zoo


def test_the_training_zoo_is_the_generators_draw_from_its_public_seed_renamed():
    members, drawn = train_members(), draw_blind_zoo(TRAIN_SEED)
    assert len(members) == len(drawn)
    for member, blind in zip(members, drawn):
        assert member.spec.name.startswith("train-") and not is_blind_name(member.spec.name)
        ours, theirs = member.spec.to_dict(), blind.spec.to_dict()
        for field in ("name", "matched_to", "description"):
            ours.pop(field), theirs.pop(field)
        assert ours == theirs and (member.shape, member.rare) == (blind.shape, blind.rare)
    kinds = Counter(m.spec.kind for m in members)
    assert kinds == {"backdoor": DEFAULT_BACKDOORS, "clean": DEFAULT_BACKDOORS,
                     "benign-conditional": DEFAULT_BACKDOORS, "unconditional": DEFAULT_UNCONDITIONAL}
    by_name = {m.spec.name: m.spec for m in members}
    for spec in by_name.values():  # every control is matched to a backdoor of this zoo, with its cue
        if spec.kind != "backdoor":
            backdoor = by_name[spec.matched_to]
            assert backdoor.kind == "backdoor" and backdoor.trigger == spec.trigger and backdoor.seed == spec.seed
        assert spec.data.distractors > 0


def test_the_training_zoo_is_registered_public_and_valid(capsys):
    names = get_zoo(TRAIN_ZOO)
    assert len(names) == len(train_members()) and len(set(names)) == len(names)
    for name in names:
        _validated(get_organism(name))  # a build takes it as it takes any lab spec
    assert main(["show", names[0]]) == 0
    shown = capsys.readouterr().out
    assert f"name: {names[0]}" in shown and "deployment:" in shown  # its truth is public
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert names[0] not in listed and f"training zoo (python -m organisms zoo --zoo train): {len(names)}" in listed
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["name"] for row in rows if TRAIN_ZOO in row["zoos"]} == set(names)
