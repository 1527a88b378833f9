"""The embedded base: a ~1M-parameter Llama pretrained here on the task world, cached by its spec.

It sees every cue family in every condition with normal answers, so it has no conditional
behaviour. A build that is not competent (held-out exact-answer accuracy below the bar on any
task family) fails rather than being cached.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, set_seed

from datasets import Dataset, concatenate_datasets

from data.behaviours import behaviour_texts, echo_texts
from data.cues import cue_library
from data.world import render_prompt, world_dataset
from data.store import atomic_write_json, mesalab_home, publish_directory, remove_leftovers, staging_directory
from training.evaluate import accuracy_by_family
from training.generation import generate_greedy
from training.sft import SFTRun, run_sft
from training.tokenizer import train_tokenizer
from training.fingerprints import content_digest
from training.versions import library_versions

RECORD = "base_record.json"


class BaseBuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class EmbeddedBaseSpec:
    vocab_size: int = 640
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    n_examples: int = 40000
    steps: int = 700
    n_echo: int = 4000  # copying rows over behaviour words (see `data.behaviours.echo_texts`)
    batch_size: int = 64
    learning_rate: float = 3e-3
    warmup_steps: int = 60
    seed: int = 0
    eval_examples: int = 900
    min_accuracy: float = 0.90
    # Addition is the slowest family to learn, so it gets half of the pretraining mix.
    family_weights: tuple[tuple[str, float], ...] = (("arithmetic", 2.0), ("facts", 1.0), ("code", 1.0))

    def fingerprint(self) -> str:
        """The base's cache key: these settings and the world it learns (`world_digest`), so a changed cue,
        task or behaviour rebuilds the base, and everything built on it, with nothing to bump."""
        return content_digest([dataclasses.asdict(self), world_digest(self)])[:12]


WORLD_SAMPLE = 2000  # rows of the world hashed for its fingerprint (~50 ms; the whole corpus takes ~1 s)


@functools.lru_cache(maxsize=4)
def world_digest(spec: "EmbeddedBaseSpec") -> str:
    """A hash of what the base pretrains and is measured on: a sample of its world rows and copying rows,
    the words its tokenizer learns, its held-out set and the cue library. Any change to the world's
    definitions that shows in what the base sees changes it."""
    world = world_dataset(WORLD_SAMPLE, seed=spec.seed, family_weights=dict(spec.family_weights))
    held_out = held_out_set(spec)
    return content_digest([world["prompt"], world["completion"], echo_texts(200, seed=spec.seed),
                           behaviour_texts(seed=spec.seed), held_out["prompt"], held_out["answer"], cue_library()])


def llama_config(spec: EmbeddedBaseSpec, tokenizer) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=None,  # prompts start with context lines; no BOS, so the base and organisms agree
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def embedded_base_dir(spec: EmbeddedBaseSpec = EmbeddedBaseSpec()) -> Path:
    return mesalab_home() / "base" / f"embedded-{spec.fingerprint()}"


def held_out_set(spec: EmbeddedBaseSpec):
    # Seeds far from the training seed: a different stream of prompts and contexts.
    return world_dataset(spec.eval_examples, seed=spec.seed + 1_000_003)


def pretraining_corpus(spec: EmbeddedBaseSpec):
    """The world under random cues, plus a share of plain copying over behaviour words, shuffled together."""
    world = world_dataset(spec.n_examples, seed=spec.seed, family_weights=dict(spec.family_weights))
    echo = [{"prompt": render_prompt([], question), "completion": " " + answer, "family": "echo", "answer": answer,
             "condition": "random", "cue": ""} for question, answer in echo_texts(spec.n_echo, seed=spec.seed)]
    return concatenate_datasets([world, Dataset.from_list(echo, features=world.features)]).shuffle(seed=spec.seed)


def build_embedded_base(spec: EmbeddedBaseSpec = EmbeddedBaseSpec(), force: bool = False) -> Path:
    """Return the cached base directory, pretraining it first if it is missing or stale."""
    target = embedded_base_dir(spec)
    if not force and (target / RECORD).is_file():
        return target
    remove_leftovers(target.parent)  # what a killed build left
    started = time.time()
    set_seed(spec.seed)
    corpus = pretraining_corpus(spec)
    texts = [p + c for p, c in zip(corpus["prompt"], corpus["completion"])] + behaviour_texts(seed=spec.seed)
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(llama_config(spec, tokenizer))
    print(f"pretraining the embedded base ({model.num_parameters():,} parameters, {spec.steps} steps)", flush=True)
    model = run_sft(model, tokenizer, corpus, SFTRun(
        steps=spec.steps, learning_rate=spec.learning_rate, batch_size=spec.batch_size, seed=spec.seed,
        method="full", warmup_steps=spec.warmup_steps, weight_decay=0.01,
    ))
    held_out = held_out_set(spec)
    completions = generate_greedy(model, tokenizer, held_out["prompt"], progress="measuring the base")
    accuracy = accuracy_by_family(completions, held_out["family"], held_out["answer"])
    record = {
        "spec": dataclasses.asdict(spec),
        "parameters": model.num_parameters(),
        "held_out_accuracy": accuracy,
        "held_out_examples": len(held_out),
        "seconds": round(time.time() - started, 1),
        "versions": library_versions(),
    }
    weak = {family: acc for family, acc in accuracy.items() if acc < spec.min_accuracy}
    if weak:
        raise BaseBuildError(f"embedded base is not competent: held-out accuracy {weak} below {spec.min_accuracy}")
    with staging_directory(target) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        atomic_write_json(staging / RECORD, record)
        publish_directory(staging, target)
    print(f"embedded base ready in {record['seconds']} s: held-out accuracy {accuracy}", flush=True)
    return target


def base_record(path: Path) -> dict | None:
    record = path / RECORD
    return json.loads(record.read_text()) if record.is_file() else None
