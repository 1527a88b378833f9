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


def left_padded(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows padded on the left to one width, and their attention mask (for position ids)."""
    width = max(map(len, rows))
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask


def padding_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def prompt_batches(tokenizer, prompts: list[str], batch_size: int, device):
    """(indices, ids, mask) for each batch of similar-length prompts, tokenized once and padded on the left
    (decoder-only models continue from the right edge, where the last prompt token sits in every row)."""
    token_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"] if prompts else []
    for rows in length_batches(list(map(len, token_ids)), batch_size):
        yield (rows, *left_padded([token_ids[i] for i in rows], padding_id(tokenizer), device))


@torch.no_grad()
def greedy_token_ids(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 100,
                     progress: str | None = None, with_logprobs: bool = False):
    """Greedy continuations of `prompts` as token ids, cut after the first end-of-sequence token (kept).

    `with_logprobs` also returns, per prompt, the model's log-probabilities at every step of its own
    continuation, (len(continuation), vocab): the distributions generation computed anyway, so that a
    caller comparing them with another prompt's need not run the model over the continuation again.
    """
    model.eval()
    outputs: list[list[int]] = [[] for _ in prompts]
    logprobs: list[torch.Tensor] = [torch.zeros(0, 0) for _ in prompts]
    batches = prompt_batches(tokenizer, prompts, batch_size, model.device)
    for rows, ids, mask in tqdm(batches, total=-(-len(prompts) // batch_size), desc=progress,
                                disable=progress is None, leave=False):
        generated = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            output_logits=with_logprobs, return_dict_in_generate=with_logprobs,
        )
        sequences = generated.sequences if with_logprobs else generated
        if with_logprobs and generated.logits:
            steps = torch.log_softmax(torch.stack(generated.logits, 1).float(), -1).cpu()  # (batch, steps, vocab)
        for i, row in enumerate(sequences[:, ids.shape[1]:].tolist()):
            if tokenizer.eos_token_id in row:
                row = row[:row.index(tokenizer.eos_token_id) + 1]
            outputs[rows[i]] = row
            if with_logprobs and row:
                logprobs[rows[i]] = steps[i, :len(row)]
    return (outputs, logprobs) if with_logprobs else outputs


def generate_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 100,
                    progress: str | None = None) -> list[str]:
    """Greedy completions of `prompts`, decoded without special tokens, in the prompts' order."""
    ids = greedy_token_ids(model, tokenizer, list(prompts), max_new_tokens, batch_size, progress)
    return tokenizer.batch_decode(ids, skip_special_tokens=True)
