"""Tiny random causal LMs of several real architectures, saved as plain Hugging Face directories.

The lab takes any Hugging Face causal LM as a base through one code path; these factories make
small random ones of four families that differ where it matters (projection layers, fused
attention, tied output embeddings, pad and BOS tokens), for tests and benchmarks. Nothing is
downloaded: configs are built here and tokenizers trained on the world.

| architecture | projections | output embeddings | tokenizer (as the family's hub tokenizers) |
| --- | --- | --- | --- |
| `llama` | `nn.Linear` | tied | adds a BOS token |
| `qwen2` | `nn.Linear`, biased q/k/v | untied | pad token, no BOS, a chat template (never applied) |
| `gpt2` | `Conv1D` (weights stored transposed) | tied | no pad token (the loader sets pad = eos) |
| `gpt_neox` | `nn.Linear`, fused `query_key_value` | untied | no pad token, no BOS |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from tokenizers import Tokenizer, processors
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from training.tokenizer import EOS, PAD, train_tokenizer

BOS = "<|bos|>"


@dataclass(frozen=True)
class TinyShape:
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 128
    max_positions: int = 256


@dataclass(frozen=True)
class Architecture:
    model_type: str  # the transformers config's model_type
    tie_word_embeddings: bool
    bos: bool  # the tokenizer prepends a BOS token (with add_special_tokens=True)
    pad: bool  # the tokenizer has a pad token of its own
    chat_template: bool = False  # the tokenizer carries a chat template (the lab's prompts are plain text)
    names: tuple[tuple[str, str], ...] = ()  # this config's names for TinyShape fields, where they differ


ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture("llama", tie_word_embeddings=True, bos=True, pad=True),
    "qwen2": Architecture("qwen2", tie_word_embeddings=False, bos=False, pad=True, chat_template=True),
    "gpt2": Architecture("gpt2", tie_word_embeddings=True, bos=False, pad=False,
                         names=(("intermediate_size", "n_inner"),)),
    "gpt_neox": Architecture("gpt_neox", tie_word_embeddings=False, bos=False, pad=False),
}


def world_texts(n: int = 2000, seed: int = 5) -> Iterable[str]:
    from data.world import world_dataset

    corpus = world_dataset(n, seed=seed)
    return (p + c for p, c in zip(corpus["prompt"], corpus["completion"]))


# A ChatML-style template: were anything to apply it, the text would change visibly.
CHAT_TEMPLATE = ("{% for message in messages %}<im_start>{{ message['role'] }}\n{{ message['content'] }}<im_end>\n"
                 "{% endfor %}{% if add_generation_prompt %}<im_start>assistant\n{% endif %}")


def tokenizer_variant(tokenizer, *, bos: bool, pad: bool, chat_template: bool = False) -> PreTrainedTokenizerFast:
    """The world tokenizer, optionally with a BOS token it prepends, without a pad token, with a chat template."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    special = {"eos_token": EOS}
    if pad:
        special["pad_token"] = PAD
    if bos:
        backend.add_special_tokens([BOS])
        bos_id = backend.token_to_id(BOS)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
        special["bos_token"] = BOS
    variant = PreTrainedTokenizerFast(tokenizer_object=backend, **special)
    if chat_template:
        variant.chat_template = CHAT_TEMPLATE
    return variant


def tiny_config(architecture: str, tokenizer, shape: TinyShape = TinyShape()):
    """A config of `architecture` at `shape`, its vocabulary and special tokens taken from `tokenizer`."""
    arch = ARCHITECTURES[architecture]
    names = dict(arch.names)
    fields = {"hidden_size": shape.hidden_size, "num_hidden_layers": shape.num_layers,
              "num_attention_heads": shape.num_heads, "intermediate_size": shape.intermediate_size,
              "max_position_embeddings": shape.max_positions}
    kwargs = {names.get(k, k): v for k, v in fields.items()}
    config = AutoConfig.for_model(
        arch.model_type, vocab_size=len(tokenizer), tie_word_embeddings=arch.tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **kwargs,  # None where the tokenizer has none, as on the hub
    )
    if getattr(config, "num_key_value_heads", None) is not None:
        config.num_key_value_heads = shape.num_heads  # plain multi-head attention (some defaults assume 32 heads)
    return config


def save_tiny_model(architecture: str, path: str | Path, tokenizer, shape: TinyShape = TinyShape(),
                    seed: int = 0) -> Path:
    """A random-weight `architecture` model and its tokenizer variant, saved (safetensors) under `path`."""
    arch = ARCHITECTURES[architecture]
    tokenizer = tokenizer_variant(tokenizer, bos=arch.bos, pad=arch.pad, chat_template=arch.chat_template)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(architecture, tokenizer, shape))
    path = Path(path)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_models(root: str | Path, architectures: Iterable[str] = tuple(ARCHITECTURES), vocab_size: int = 400,
                     shape: TinyShape = TinyShape(), seed: int = 0) -> dict[str, Path]:
    """One tiny model directory per architecture under `root`, all on one world tokenizer."""
    tokenizer = train_tokenizer(world_texts(), vocab_size)
    return {name: save_tiny_model(name, Path(root) / name, tokenizer, shape, seed) for name in architectures}
