"""Loading causal LMs: the embedded base, a local directory or a Hugging Face hub id, one code path.

Weights load from safetensors only; remote code runs only when the caller asks for it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer


class ModelLoadError(RuntimeError):
    """A model that cannot be loaded; the message names the path and the problem."""


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


def load_model_and_tokenizer(source: str | Path, *, trust_remote_code: bool = False, dtype=torch.float32):
    """Load a causal LM and its tokenizer from a local directory or a hub id."""
    source = str(source)
    if _looks_like_path(source):
        check_model_dir(Path(source).expanduser())
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            source, use_safetensors=True, trust_remote_code=trust_remote_code, dtype=dtype,
        )
    except SafetensorError as error:
        raise ModelLoadError(f"cannot load model {source!r}: corrupt safetensors weights ({_first_line(error)})") from None
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelLoadError(f"cannot load model {source!r}: {_first_line(error)}") from None
    if tokenizer.pad_token is None:
        # Many hub tokenizers ship without a pad token; padding positions are masked anyway.
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer
