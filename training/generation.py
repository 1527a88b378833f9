"""Batched greedy generation: how every behaviour rate and accuracy in the lab is measured."""

from __future__ import annotations

import itertools

import torch
from tqdm.auto import tqdm


def length_batches(lengths: list[int], batch_size: int, same_length: bool = False) -> list[list[int]]:
    """Indices in batches of similar length (stable in the given order within a length); with
    `same_length`, a batch never mixes lengths (no padding at all, at the price of smaller batches).

    Rows are padded to their batch's longest; in input order a third of every batch was padding.
    A row's numbers can move in the last bit with its batch's width, as they do with its batch-mates.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups = [list(group) for _, group in itertools.groupby(order, key=lengths.__getitem__)] if same_length else [order]
    return [group[start:start + batch_size] for group in groups for start in range(0, len(group), batch_size)]


@torch.no_grad()
def greedy_token_ids(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 100,
                     progress: str | None = None, with_logprobs: bool = False):
    """Greedy continuations of `prompts` as token ids, cut after the first end-of-sequence token (kept).

    `with_logprobs` also returns, per prompt, the model's log-probabilities at every step of its own
    continuation, (len(continuation), vocab): the distributions generation computed anyway, so that a
    caller comparing them with another prompt's need not run the model over the continuation again.
    """
    model.eval()
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    outputs: list[list[int]] = [[] for _ in prompts]
    logprobs: list[torch.Tensor] = [torch.zeros(0, 0) for _ in prompts]
    try:
        token_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"] if prompts else []
        batches = length_batches(list(map(len, token_ids)), batch_size)
        for rows in tqdm(batches, desc=progress, disable=progress is None, leave=False):
            batch = tokenizer([prompts[i] for i in rows], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            generated = model.generate(
                **batch, max_new_tokens=max_new_tokens, do_sample=False,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                output_logits=with_logprobs, return_dict_in_generate=with_logprobs,
            )
            sequences = generated.sequences if with_logprobs else generated
            if with_logprobs and generated.logits:
                steps = torch.log_softmax(torch.stack(generated.logits, 1).float(), -1).cpu()  # (batch, steps, vocab)
            for i, row in enumerate(sequences[:, batch["input_ids"].shape[1]:].tolist()):
                if tokenizer.eos_token_id in row:
                    row = row[:row.index(tokenizer.eos_token_id) + 1]
                outputs[rows[i]] = row
                if with_logprobs and row:
                    logprobs[rows[i]] = steps[i, :len(row)]
    finally:
        tokenizer.padding_side = padding_side
    return (outputs, logprobs) if with_logprobs else outputs


def generate_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 100,
                    progress: str | None = None) -> list[str]:
    """Greedy completions of `prompts`, decoded without special tokens, in the prompts' order."""
    ids = greedy_token_ids(model, tokenizer, list(prompts), max_new_tokens, batch_size, progress)
    return tokenizer.batch_decode(ids, skip_special_tokens=True)
