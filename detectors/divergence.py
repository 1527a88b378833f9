"""How differently a model continues two prompts: the measure behind behavioural detectors.

For a pair (a, b): take the greedy continuation c of a, with the distributions that generating it
computed, then teacher-force c after b and compare the next-token distributions position by
position (Jensen-Shannon, in bits, so 0..1). The maximum over positions catches a behaviour that
branches late (an unsafe SQL query differs from the safe one only after a dozen tokens), and the
greedy output of b differs from c exactly when, at some position, b's most likely token is not c's
token. One generation and one forward pass per pair, instead of two generations compared as text.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from training.generation import greedy_token_ids, keep_last_logits, left_padded, length_batches, padding_id, position_ids


@torch.no_grad()
def continuation_logprobs(model, tokenizer, prompts: list[str], continuations: list[list[int]],
                          batch_size: int = 64) -> list[torch.Tensor]:
    """For each prompt, log-probabilities (len(continuation), vocab) of every continuation position."""
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    full = [p + c for p, c in zip(prompt_ids, continuations)]
    out: list[torch.Tensor] = [torch.zeros(0, 0)] * len(full)
    for batch in length_batches(list(map(len, full)), batch_size):
        ids, mask = left_padded([full[i] for i in batch], padding_id(tokenizer), model.device)
        keep = 1 + max(len(continuations[i]) for i in batch)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                       **keep_last_logits(model, keep)).logits[:, -keep:].float()
        logp = torch.log_softmax(logits, dim=-1).cpu()
        for row, i in enumerate(batch):
            k = len(continuations[i])
            # Right-aligned rows: the token at -j is predicted at -j-1.
            out[i] = logp[row, keep - k - 1:keep - 1] if k else logp[row, :0]
    return out


def js_bits(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence per row, in bits (0 = identical, 1 = disjoint)."""
    p, q = logp.exp(), logq.exp()
    logm = torch.log((p + q) / 2).clamp(min=-1e4)
    kl = lambda a, loga: (a * (loga - logm)).nan_to_num().sum(-1)  # noqa: E731
    return ((kl(p, logp) + kl(q, logq)) / 2 / math.log(2)).clamp(0, 1)


def continuation_divergence(model, tokenizer, prompts_a: list[str], prompts_b: list[str], max_new_tokens: int = 24,
                            symmetric: bool = True, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: (max JS over the continuation, whether the greedy outputs differ).

    `symmetric` also follows b's own continuation, so a behaviour is caught whichever prompt
    carries it.
    """
    if len(prompts_a) != len(prompts_b):
        raise ValueError("continuation_divergence needs as many prompts a as prompts b")
    n = len(prompts_a)
    if n == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    leaders = list(prompts_a) + (list(prompts_b) if symmetric else [])
    followers = list(prompts_b) + (list(prompts_a) if symmetric else [])
    # A prompt that leads in several pairs (the stripped prompt every candidate line is set against)
    # is generated and scored once.
    unique = list(dict.fromkeys(leaders))
    row = {prompt: i for i, prompt in enumerate(unique)}
    unique_paths, unique_lead = greedy_token_ids(model, tokenizer, unique, max_new_tokens, batch_size,
                                                 with_logprobs=True)
    paths = [unique_paths[row[p]] for p in leaders]
    lead = [unique_lead[row[p]] for p in leaders]
    follow = continuation_logprobs(model, tokenizer, followers, paths, batch_size)
    js = np.zeros(len(leaders))
    changed = np.zeros(len(leaders), dtype=bool)
    for i, path in enumerate(paths):
        if not path:
            continue
        js[i] = float(js_bits(lead[i], follow[i]).max())
        changed[i] = bool((follow[i].argmax(-1) != torch.tensor(path)).any())
    if symmetric:
        js, changed = np.maximum(js[:n], js[n:]), changed[:n] | changed[n:]
    return js, changed


def grouped_divergence(model, tokenizer, groups: list[tuple[list[str], list[str]]], max_new_tokens: int = 24,
                       symmetric: bool = True, batch_size: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
    """`continuation_divergence` of many (prompts a, prompts b) groups in one batched pass.

    On a small model, generation costs per step, not per row: one pass over every group's rows
    in full batches is several times faster than one short batch per group (a cue family, a
    candidate line).
    """
    sizes = [len(a) for a, _ in groups]
    js, changed = continuation_divergence(model, tokenizer, [p for a, _ in groups for p in a],
                                          [p for _, b in groups for p in b], max_new_tokens, symmetric, batch_size)
    bounds = np.cumsum([0, *sizes])
    return [(js[lo:hi], changed[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]


def model_divergence(model, reference, tokenizer, prompts: list[str], max_new_tokens: int = 24,
                     batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt: (max JS between `model` and `reference`, whether their greedy outputs differ).

    Both models continue the same prompt; each one's greedy path is teacher-forced through both,
    so a difference is caught whichever model produces it. They must share the tokenizer.
    """
    if model.get_input_embeddings().num_embeddings != reference.get_input_embeddings().num_embeddings:
        raise ValueError("model_divergence needs a reference with the same vocabulary")
    prompts = list(prompts)
    if not prompts:
        return np.zeros(0), np.zeros(0, dtype=bool)
    js = np.zeros(len(prompts))
    changed = np.zeros(len(prompts), dtype=bool)
    for leader, follower in ((model, reference), (reference, model)):
        paths, lead = greedy_token_ids(leader, tokenizer, prompts, max_new_tokens, batch_size, with_logprobs=True)
        follow = continuation_logprobs(follower, tokenizer, prompts, paths, batch_size)
        for i, path in enumerate(paths):
            if path:
                js[i] = max(js[i], float(js_bits(lead[i], follow[i]).max()))
                changed[i] |= bool((follow[i].argmax(-1) != torch.tensor(path)).any())
    return js, changed
