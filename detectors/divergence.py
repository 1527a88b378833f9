"""How differently a model continues two prompts: the measure behind behavioural detectors.

For a pair (a, b): take the greedy continuation c of a, with the distributions that generating it
computed, then teacher-force c after b and compare the next-token distributions position by
position (Jensen-Shannon, in bits, so 0..1). The maximum over positions catches a behaviour that
branches late (an unsafe SQL query differs from the safe one only after a dozen tokens), and the
greedy output of b differs from c exactly when, at some position, b's most likely token is not c's
token. One generation and one forward pass per pair, instead of two generations compared as text; the
forward reads only c, on the keys and values of b's own forward (`training.generation.greedy_and_forced`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from training.generation import greedy_and_forced, greedy_token_ids


def continuation_logprobs(model, tokenizer, prompts: list[str], continuations: list[list[int]],
                          batch_size: int = 64) -> list[torch.Tensor]:
    """For each prompt, log-probabilities (len(continuation), vocab) of every continuation position.

    Each distinct prompt is read once, and its keys and values serve every continuation set after it: a
    search sets hundreds of continuations after the same few stripped prompts."""
    unique = list(dict.fromkeys(prompts))
    rows = {prompt: [] for prompt in unique}
    for i, prompt in enumerate(prompts):
        rows[prompt].append(i)
    _, _, forced = greedy_and_forced(model, tokenizer, unique, 0, batch_size,
                                     follow=[[continuations[i] for i in rows[p]] for p in unique])
    out: list[torch.Tensor] = [torch.zeros(0, 0)] * len(prompts)
    for prompt, logprobs in zip(unique, forced):
        for i, step in zip(rows[prompt], logprobs):
            out[i] = step
    return out


def js_bits(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence per row, in bits (0 = identical, 1 = disjoint)."""
    p, q = logp.exp(), logq.exp()
    logm = torch.log((p + q) / 2).clamp(min=-1e4)
    kl = lambda a, loga: (a * (loga - logm)).nan_to_num().sum(-1)  # noqa: E731
    return ((kl(p, logp) + kl(q, logq)) / 2 / math.log(2)).clamp(0, 1)


def _second_direction(model, tokenizer, prompts: list[str], paths: list[list[int]], lead: list[torch.Tensor],
                      follow: list[torch.Tensor], other_paths: list[list[int]], other_lead: list[torch.Tensor],
                      batch_size: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(lead, follow) of a divergence's second direction: the other side's paths (`other_paths`, with their
    own log-probabilities `other_lead`) forced after `prompts`, whose own paths and log-probabilities are
    `paths` and `lead`, and `follow` the first direction's forcing of `paths` on the other side.

    Where the other side writes the same path, the second direction compares the same two distributions
    along the same path as the first: they are reused, and only the pairs whose paths differ are forced."""
    differ = [i for i, (own, other) in enumerate(zip(paths, other_paths)) if own != other]
    second_lead, second_follow = list(follow), list(lead)
    forced = continuation_logprobs(model, tokenizer, [prompts[i] for i in differ], [other_paths[i] for i in differ],
                                   batch_size)
    for i, step in zip(differ, forced):
        second_lead[i], second_follow[i] = other_lead[i], step
    return second_lead, second_follow


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
    # A prompt that leads in several pairs (the stripped prompt every candidate line is set against)
    # is generated once; b's prompts teacher-force a's paths from the forward that generates from them.
    unique_a = list(dict.fromkeys(prompts_a))
    row_a = {prompt: i for i, prompt in enumerate(unique_a)}
    unique_paths, unique_lead = greedy_token_ids(model, tokenizer, unique_a, max_new_tokens, batch_size,
                                                 with_logprobs=True)
    paths = [unique_paths[row_a[p]] for p in prompts_a]
    lead = [unique_lead[row_a[p]] for p in prompts_a]
    if not symmetric:
        follow = continuation_logprobs(model, tokenizer, list(prompts_b), paths, batch_size)
    else:
        unique_b = list(dict.fromkeys(prompts_b))
        pairs_of = {prompt: [] for prompt in unique_b}
        for i, prompt in enumerate(prompts_b):
            pairs_of[prompt].append(i)
        # A b prompt that would write its pair's a path is not decoded again (`adopt`).
        paths_b, lead_b, forced_b = greedy_and_forced(model, tokenizer, unique_b, max_new_tokens, batch_size,
                                                      with_logprobs=True, adopt=True,
                                                      follow=[[paths[i] for i in pairs_of[p]] for p in unique_b])
        follow_b: list[torch.Tensor] = [torch.zeros(0, 0)] * n
        own_paths: list[list[int]] = [[]] * n
        own_lead: list[torch.Tensor] = [torch.zeros(0, 0)] * n
        for u, prompt in enumerate(unique_b):
            for i, step in zip(pairs_of[prompt], forced_b[u]):
                follow_b[i], own_paths[i], own_lead[i] = step, paths_b[u], lead_b[u]
        own_lead, follow_a = _second_direction(model, tokenizer, list(prompts_a), paths, lead, follow_b, own_paths,
                                               own_lead, batch_size)
        paths, lead, follow = paths + own_paths, lead + own_lead, follow_b + follow_a
    js = np.zeros(len(paths))
    changed = np.zeros(len(paths), dtype=bool)
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
    # The reference reads each prompt once: the forward it generates from also teacher-forces the model's path.
    paths, lead = greedy_token_ids(model, tokenizer, prompts, max_new_tokens, batch_size, with_logprobs=True)
    # Nor does it decode again where it would write the model's path (`adopt`); there the second direction
    # compares the same distributions along the same path, and the model is not run on it again.
    ref_paths, ref_lead, forced = greedy_and_forced(reference, tokenizer, prompts, max_new_tokens, batch_size,
                                                    with_logprobs=True, follow=[[path] for path in paths], adopt=True)
    follow = [steps[0] for steps in forced]
    ref_lead, ref_follow = _second_direction(model, tokenizer, prompts, paths, lead, follow, ref_paths, ref_lead,
                                             batch_size)
    for leading, followed, along in ((lead, follow, paths), (ref_lead, ref_follow, ref_paths)):
        for i, path in enumerate(along):
            if path:
                js[i] = max(js[i], float(js_bits(leading[i], followed[i]).max()))
                changed[i] |= bool((followed[i].argmax(-1) != torch.tensor(path)).any())
    return js, changed
