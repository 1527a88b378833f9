"""Batched greedy generation: how every behaviour rate and accuracy in the lab is measured."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm


@torch.no_grad()
def greedy_token_ids(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 100,
                     progress: str | None = None) -> list[list[int]]:
    """Greedy continuations of `prompts` as token ids, cut after the first end-of-sequence token (kept)."""
    model.eval()
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    outputs: list[list[int]] = []
    try:
        batches = range(0, len(prompts), batch_size)
        for start in tqdm(batches, desc=progress, disable=progress is None, leave=False):
            batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            generated = model.generate(
                **batch, max_new_tokens=max_new_tokens, do_sample=False,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )
            for row in generated[:, batch["input_ids"].shape[1]:].tolist():
                if tokenizer.eos_token_id in row:
                    row = row[:row.index(tokenizer.eos_token_id) + 1]
                outputs.append(row)
    finally:
        tokenizer.padding_side = padding_side
    return outputs


def generate_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 100,
                    progress: str | None = None) -> list[str]:
    """Greedy completions of `prompts`, decoded without special tokens, in the prompts' order."""
    ids = greedy_token_ids(model, tokenizer, list(prompts), max_new_tokens, batch_size, progress)
    return tokenizer.batch_decode(ids, skip_special_tokens=True)
