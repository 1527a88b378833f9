"""The shared activation cache: one batched forward pass per (model, prompt set), reused by all.

For every prompt it records, at every layer's residual stream (the embeddings plus each
block's output, as `output_hidden_states` returns them): the last prompt token and the mean
over the prompt's tokens; and the next-token log-probabilities after the prompt. Entries are
kept in memory and, when the cache is given a directory, as float16 `.npz` files named by a key
hashing the model's weights, the tokenizer and the prompt list, so asking the same question twice
pays once and a changed model can never be served stale numbers. The benchmark gives each sealed
cell a cache of its own, which dies with the cell: a cache shared across cells or runs would tell
a detector which questions had been asked of which model before.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training.fingerprints import source_digest
from training.generation import keep_last_logits, position_ids, prompt_batches

# Cached activations are keyed by this module's code (its syntax tree, training.fingerprints): a change to
# what is recorded, or how, misses the old entries. Read at import, before a cell is sealed in its folder.
CACHE_KEY = source_digest(Path(__file__).read_text())


@dataclass(frozen=True)
class Activations:
    last: np.ndarray  # (n_prompts, n_layers + 1, hidden): the final prompt token
    mean: np.ndarray  # (n_prompts, n_layers + 1, hidden): mean over the prompt's tokens
    logprobs: np.ndarray  # (n_prompts, vocab): next-token log-probabilities after the prompt

    @property
    def n_layers(self) -> int:
        return self.last.shape[1]

    def at(self, layer: int, pool: str = "last") -> np.ndarray:
        if pool not in ("last", "mean"):
            raise ValueError(f"unknown pooling {pool!r}; expected 'last' or 'mean'")
        return (self.last if pool == "last" else self.mean)[:, layer, :]


_fingerprints: dict[int, tuple[tuple, str]] = {}


def model_fingerprint(model) -> str:
    """sha256 of every weight tensor's bytes (with name, dtype and shape).

    Memoised on the tensors' in-place version counters: a detector that perturbs the weights
    in place (noise injection) bumps them, so the next lookup re-hashes instead of reusing.
    """
    state = model.state_dict()
    versions = tuple(t._version for t in state.values())
    memo = _fingerprints.get(id(model))
    if memo and memo[0] == versions:
        return memo[1]
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    _fingerprints[id(model)] = (versions, digest.hexdigest())
    return _fingerprints[id(model)][1]


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Padding and truncation settings change as the tokenizer is used; they do not change tokens.
        state = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("padding", "truncation")}
        blob = json.dumps(state, sort_keys=True)
    else:
        blob = json.dumps(tokenizer.get_vocab(), sort_keys=True)
    special = json.dumps({"pad": tokenizer.pad_token_id, "eos": tokenizer.eos_token_id,
                          "bos": tokenizer.bos_token_id})
    return hashlib.sha256((blob + special).encode()).hexdigest()


@torch.no_grad()
def forward_activations(model, tokenizer, prompts: list[str], batch_size: int = 64) -> Activations:
    model.eval()
    last, mean, logprobs, placed = [], [], [], []
    for rows, ids, mask in prompt_batches(tokenizer, prompts, batch_size, model.device):
        placed += rows  # the last prompt token sits at index -1 in every (left-padded) row
        out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), output_hidden_states=True,
                    **keep_last_logits(model, 1))
        states = torch.stack(out.hidden_states, dim=1).float()  # (batch, layers + 1, seq, hidden)
        weights = mask[:, None, :, None].float()
        last.append(states[:, :, -1, :].cpu())
        mean.append(((states * weights).sum(2) / weights.sum(2)).cpu())
        logprobs.append(torch.log_softmax(out.logits[:, -1, :].float(), dim=-1).cpu())
    where = np.argsort(placed)  # back to the prompts' order
    to16 = lambda parts: torch.cat(parts).numpy()[where].astype(np.float16)  # noqa: E731
    return Activations(last=to16(last), mean=to16(mean), logprobs=to16(logprobs))


def _as32(acts: Activations) -> Activations:
    # Stored as float16 to keep the cache small; handed out as float32 so sklearn and sums are exact enough.
    return Activations(*(np.asarray(a, dtype=np.float32) for a in (acts.last, acts.mean, acts.logprobs)))


class ActivationCache:
    """Counts hits, misses and the prompts pushed through the model, so reports can show cost."""

    def __init__(self, directory: Path | str | None = None, batch_size: int = 64):
        self.directory = Path(directory) if directory else None  # None: memory only
        self.batch_size = batch_size
        self.hits = self.misses = 0
        self._memory: dict[str, Activations] = {}

    def key(self, model, tokenizer, prompts: list[str]) -> str:
        blob = json.dumps([CACHE_KEY, model_fingerprint(model), tokenizer_fingerprint(tokenizer), prompts])
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, model, tokenizer, prompts: list[str]) -> Activations:
        prompts = list(prompts)
        key = self.key(model, tokenizer, prompts)
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        path = self.directory / f"{key}.npz" if self.directory else None
        if path is not None and path.is_file():
            try:
                with np.load(path) as stored:
                    acts = Activations(stored["last"], stored["mean"], stored["logprobs"])
                self.hits += 1
                self._memory[key] = _as32(acts)
                return self._memory[key]
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)  # a damaged entry is recomputed, not trusted
        self.misses += 1
        acts = forward_activations(model, tokenizer, prompts, self.batch_size)
        if path is not None:
            self._write(path, acts)
        self._memory[key] = _as32(acts)
        return self._memory[key]

    def _write(self, path: Path, acts: Activations) -> None:
        """Write beside the target, then rename: a reader sees a whole entry or none."""
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, last=acts.last, mean=acts.mean, logprobs=acts.logprobs)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.stem}-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(buffer.getvalue())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
