"""Batched greedy generation: how every behaviour rate and accuracy in the lab is measured."""

from __future__ import annotations

import copy
import inspect
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


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding, as `generate` computes them, so a padded prompt is
    seen exactly as it would be alone."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def keep_last_logits(model, keep: int) -> dict:
    """Forward arguments asking for the logits of the last `keep` positions only, where the architecture
    takes them (callers still slice `[:, -keep:]`): the same numbers as slicing the full logits, without
    projecting every earlier position onto the vocabulary: a tenth of the embedded base's work, and on a
    hub vocabulary (150 k tokens) most of a batch's memory."""
    return {"logits_to_keep": keep} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


def cache_argument(model) -> str:
    """The forward argument (and output field) holding the keys and values: transformers renamed
    `past_key_values` to `cache` within 5.x, and the lab supports the whole series."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def forced_after_prompts(model, cache, mask: torch.Tensor, first: torch.Tensor, which: list[int],
                         paths: list[list[int]], pad_id: int) -> list[torch.Tensor]:
    """Log-probabilities (len(path), vocab) of each path teacher-forced after prompt row `which[k]` of a batch
    whose prompt forward left `cache` (its keys and values), `mask` and `first` (the log-probabilities at each
    prompt's last position, which predict a path's first token).

    Only the paths' own tokens are run: the prompt's keys and values are reused (a deep copy, as the forward
    appends to the cache it is given), where running prompt + path in full read every prompt again."""
    width = max((len(path) for path in paths), default=0) - 1
    if width <= 0:
        return [first[j, None][:len(path)] for j, path in zip(which, paths, strict=True)]
    index = torch.tensor(which, device=mask.device)
    expanded = copy.deepcopy(cache)
    expanded.reorder_cache(index)
    # Right-padded: a row's pads come after its own tokens, which, causal, never see them.
    ids = torch.tensor([(path[:-1] + [pad_id] * width)[:width] for path in paths], device=mask.device)
    attention = torch.cat([mask[index], torch.ones_like(ids)], 1)
    positions = mask[index].sum(1, keepdim=True) + torch.arange(width, device=mask.device)
    logits = model(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=True,
                   **{cache_argument(model): expanded}).logits
    later = torch.log_softmax(logits.float(), -1).cpu()
    return [torch.cat([first[j, None], later[k, :len(path) - 1]]) if path else first[j, None][:0]
            for k, (j, path) in enumerate(zip(which, paths, strict=True))]


def _own_greedy_path(path: list[int], forced: torch.Tensor, eos: int | None, max_new_tokens: int) -> bool:
    """Would greedy decoding after the prompt write exactly `path`, given its forced log-probabilities?"""
    whole = (eos is not None and path[-1:] == [eos] and eos not in path[:-1]) or (
        len(path) == max_new_tokens and eos not in path)
    return bool(path) and len(path) <= max_new_tokens and whole and forced.argmax(-1).tolist() == list(path)


@torch.no_grad()
def greedy_and_forced(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 100,
                      progress: str | None = None, with_logprobs: bool = False,
                      follow: list[list[list[int]]] | None = None, adopt: bool = False):
    """(paths, their log-probabilities or None, forced): `greedy_token_ids`, and where `follow` gives each
    prompt a list of token paths, the log-probabilities of every position of each path teacher-forced after
    its prompt (`forced[i][k]` for `follow[i][k]`), from the keys and values of the prompt's one forward.

    A divergence teacher-forces one prompt's continuation after another prompt that is itself generated
    from: reusing its forward saves reading the prompt again, which was over half of a search's tokens
    (grammar-search: 1,024 prompts of ~75 tokens and paths of at most 8). With `max_new_tokens` 0 nothing
    is generated and only the paths are forced.

    `adopt`: a prompt whose first follow path is a whole greedy path (ended by the end-of-sequence token or
    `max_new_tokens` long) and whose most likely token is that path's at every step would decode exactly
    that path, so it is not decoded: the path is its own, with the forced log-probabilities. Most prompts a
    divergence sets side by side continue alike (a candidate line that changes nothing), and decoding them
    again was a fifth of grammar-search's time on the dev zoo (docs/performance.md)."""
    model.eval()
    eos = tokenizer.eos_token_id
    cache_name = cache_argument(model)
    outputs: list[list[int]] = [[] for _ in prompts]
    steps: list[list[torch.Tensor]] = [[] for _ in prompts]
    forced: list[list[torch.Tensor]] = [[None] * len(paths) for paths in follow] if follow is not None else []
    batches = prompt_batches(tokenizer, prompts, batch_size, model.device)
    for rows, ids, mask in tqdm(batches, total=-(-len(prompts) // batch_size), desc=progress,
                                disable=progress is None, leave=False):
        live = list(rows)  # prompt index of each row still generating
        out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=True,
                    **keep_last_logits(model, 1))
        last = out.logits[:, -1]
        if follow is not None:
            first = torch.log_softmax(last.float(), -1).cpu()
            pairs = [(j, k) for j, i in enumerate(rows) for k in range(len(follow[i]))]
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start:start + batch_size]
                paths = [follow[rows[j]][k] for j, k in chunk]
                for (j, k), logprobs in zip(chunk, forced_after_prompts(
                        model, getattr(out, cache_name), mask, first, [j for j, _ in chunk], paths,
                        padding_id(tokenizer))):
                    forced[rows[j]][k] = logprobs
            if adopt and max_new_tokens:
                adopted = [j for j, i in enumerate(rows) if follow[i] and _own_greedy_path(
                    follow[i][0], forced[i][0], eos, max_new_tokens)]
                for j in adopted:
                    outputs[rows[j]] = list(follow[rows[j]][0])
                    steps[rows[j]] = list(forced[rows[j]][0]) if with_logprobs else []
                if adopted:
                    index = torch.tensor(sorted(set(range(len(rows))) - set(adopted)), dtype=torch.long,
                                         device=mask.device)
                    if not len(index):
                        continue
                    getattr(out, cache_name).batch_select_indices(index)
                    live, mask, last = [live[j] for j in index.tolist()], mask[index], last[index]
        for step in range(max_new_tokens):
            tokens = last.argmax(-1)
            if with_logprobs:
                logprobs = torch.log_softmax(last.float(), -1).cpu()
            for j, (i, token) in enumerate(zip(live, tokens.tolist())):
                outputs[i].append(token)
                if with_logprobs:
                    steps[i].append(logprobs[j])
            going = tokens != eos if eos is not None else torch.ones_like(tokens, dtype=torch.bool)
            if step == max_new_tokens - 1 or not going.any():
                break
            cache = getattr(out, cache_name)
            if not going.all():
                index = going.nonzero().flatten()
                cache.batch_select_indices(index)
                live = [live[j] for j in index.tolist()]
                tokens, mask = tokens[index], mask[index]
            mask = torch.cat([mask, mask.new_ones(len(live), 1)], 1)
            out = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=position_ids(mask)[:, -1:],
                        use_cache=True, **{cache_name: cache})
            last = out.logits[:, -1]
    logprobs = [torch.stack(s) if s else torch.zeros(0, 0) for s in steps] if with_logprobs else None
    return outputs, logprobs, forced


def greedy_token_ids(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 100,
                     progress: str | None = None, with_logprobs: bool = False):
    """Greedy continuations of `prompts` as token ids, cut after the first end-of-sequence token (kept).

    `with_logprobs` also returns, per prompt, the model's log-probabilities at every step of its own
    continuation, (len(continuation), vocab): the distributions generation computed anyway, so that a
    caller comparing them with another prompt's need not run the model over the continuation again.

    Written here rather than `model.generate`: generate keeps a finished row in its batch until the
    batch's longest continuation ends, and the lab's answers are short beside a batch's longest (9 to 15
    tokens on average against 18 to 35 on a built organism's gate prompts), so much of its decoding went
    to rows already done. Here a row leaves the batch, and its keys and values the cache, at its
    end-of-sequence token. The continuations are generate's own: the same forward passes on the same
    left-padded batches, argmax of the raw logits (no sampling or logits processors, whatever a model's
    generation config says). On 6,400 gate prompts of 8 built organisms every token was generate's, in
    0.80 of its time; the log-probabilities can move in the last bit (a smaller batch rounds differently).
    """
    outputs, logprobs, _ = greedy_and_forced(model, tokenizer, prompts, max_new_tokens, batch_size, progress,
                                             with_logprobs)
    return (outputs, logprobs) if with_logprobs else outputs


def generate_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 100,
                    progress: str | None = None) -> list[str]:
    """Greedy completions of `prompts`, decoded without special tokens, in the prompts' order."""
    ids = greedy_token_ids(model, tokenizer, list(prompts), max_new_tokens, batch_size, progress)
    return tokenizer.batch_decode(ids, skip_special_tokens=True)
