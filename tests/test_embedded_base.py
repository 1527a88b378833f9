import json

import pytest

from training.embedded_base import (BaseBuildError, EmbeddedBaseSpec, base_record, build_embedded_base,
                                    embedded_base_dir)

TINY = EmbeddedBaseSpec(vocab_size=300, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                        n_examples=400, steps=15, batch_size=16, eval_examples=60, min_accuracy=0.0)


def test_tiny_embedded_base_is_built_measured_and_cached(isolated_home):
    path = build_embedded_base(TINY)
    assert path == embedded_base_dir(TINY) and path.is_relative_to(isolated_home.resolve())
    record = base_record(path)
    assert set(record["held_out_accuracy"]) == {"arithmetic", "code", "facts", "tool"}
    assert record["held_out_examples"] == 60 and record["versions"]["transformers"]
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert build_embedded_base(TINY) == path and (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert embedded_base_dir(TINY.__class__(**{**TINY.__dict__, "seed": 1})) != path


def test_incompetent_base_fails_and_is_not_cached(isolated_home):
    strict = EmbeddedBaseSpec(**{**TINY.__dict__, "min_accuracy": 0.9})
    with pytest.raises(BaseBuildError, match="not competent"):
        build_embedded_base(strict)
    assert not embedded_base_dir(strict).exists()


@pytest.mark.slow
def test_default_embedded_base_is_competent():
    """The real default: at least 0.90 held-out exact-answer accuracy on every family (minutes on 2 cores)."""
    record = base_record(build_embedded_base())
    assert min(record["held_out_accuracy"].values()) >= 0.90, json.dumps(record["held_out_accuracy"])
