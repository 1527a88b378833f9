"""Loading causal LMs: the embedded base, a local directory or a Hugging Face hub id, one code path.

Weights load from safetensors only; remote code runs only when the caller asks for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

# What a directory's tokenizer_config.json names when its tokenizer.json is the whole tokenizer.
GENERIC_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


class ModelLoadError(RuntimeError):
    """A model that cannot be loaded; the message names the path and the problem."""


DEVICE_VARIABLE = "MESALAB_DEVICE"
DEVICES = ("auto", "cpu", "cuda")


def model_device() -> str:
    """Where loaded models run: `$MESALAB_DEVICE` (cpu, cuda; auto, the default: cuda when torch sees one).

    Decided when a model is loaded, never at import: the benchmark's cell server forks every cell and
    must never have touched CUDA itself (a CUDA context does not survive a fork), while each cell loads,
    and so places, its own models.
    """
    choice = os.environ.get(DEVICE_VARIABLE, "").strip().lower() or "auto"
    if choice not in DEVICES:
        raise ModelLoadError(f"${DEVICE_VARIABLE}={os.environ[DEVICE_VARIABLE]!r} is not a device; "
                             f"expected one of {', '.join(DEVICES)}")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"${DEVICE_VARIABLE}=cuda, but torch sees no CUDA device")
    return choice


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or Path(source).expanduser().exists()


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def check_model_dir(path: Path) -> None:
    if not path.is_dir():
        raise ModelLoadError(f"model directory {str(path)!r} does not exist")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"model directory {str(path)!r} has no config.json")
    if not any(path.glob("*.safetensors")):
        raise ModelLoadError(f"model directory {str(path)!r} has no .safetensors weights (only safetensors are loaded)")


def _declared_tokenizer_class(source: str) -> str | None:
    path = Path(source).expanduser() / "tokenizer_config.json"
    try:
        return json.loads(path.read_text()).get("tokenizer_class") if path.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None


def load_tokenizer(source: str, trust_remote_code: bool = False):
    """The tokenizer a model directory or hub id declares.

    A directory that declares the generic class (a tokenizer.json saved as is, as the lab saves
    its own) loads exactly that file: AutoTokenizer would otherwise pick a class by the model's
    architecture (Qwen2's, say), which rebuilds the pre-tokenizer and adds tokens of its own.
    """
    if _looks_like_path(source) and _declared_tokenizer_class(source) in GENERIC_TOKENIZER_CLASSES:
        return PreTrainedTokenizerFast.from_pretrained(source)
    return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)


def load_model_and_tokenizer(source: str | Path, *, trust_remote_code: bool = False, dtype=torch.float32):
    """Load a causal LM and its tokenizer from a local directory or a hub id, the model on `model_device()`."""
    source = str(source)
    device = model_device()  # a bad $MESALAB_DEVICE fails before any weights are read
    if _looks_like_path(source):
        check_model_dir(Path(source).expanduser())
    try:
        tokenizer = load_tokenizer(source, trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            source, use_safetensors=True, trust_remote_code=trust_remote_code, dtype=dtype,
        )
    except SafetensorError as error:
        raise ModelLoadError(f"cannot load model {source!r}: corrupt safetensors weights ({_first_line(error)})") from None
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelLoadError(f"cannot load model {source!r}: {_first_line(error)}") from None
    if tokenizer.eos_token is None:
        raise ModelLoadError(f"cannot load model {source!r}: its tokenizer has no EOS token (completions could not end)")
    if tokenizer.pad_token is None:
        # GPT-2, GPT-NeoX and many hub tokenizers ship without a pad token; padding positions are masked anyway.
        tokenizer.pad_token = tokenizer.eos_token
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise ModelLoadError(f"cannot load model {source!r}: its tokenizer has {len(tokenizer)} tokens "
                             f"but the model embeds only {vocab}")
    model.to(device)  # on the CPU a no-op: CPU numbers are exactly those of a model never moved
    model.eval()
    return model, tokenizer
