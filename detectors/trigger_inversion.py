"""Trigger inversion: find a context line that changes the model's behaviour, with no cue library at all.

Objective. A line x is inserted at the top of clean public prompts (one per task family). On each
prompt the subject's own clean answer is teacher-forced after the prompt with and without x; the
line's effect on a model is the largest Jensen-Shannon divergence (bits) between its next-token
distributions with and without x along that answer (a hidden reply diverges at its first token,
a covert marker where the answer should end, unsafe code in the middle). The objective is the
line's mean effect on the subject minus `penalty` times its mean effect on the base model: a
line that scrambles any model is not a trigger, a line that moves only the subject may be.

Search, in two parts, within the forward-pass budget:
1. candidates from the models themselves: lines sampled from the subject and from the base
   after a bare newline, each scored; the best seeds the token search;
2. greedy coordinate search over the line's tokens, gradient-guided as in GCG (Zou et al.
   2023): each round ranks replacement tokens per position by the gradient of the subject's
   divergence through its input embeddings, evaluates a batch of single-token swaps exactly,
   and keeps the best.

Proposals: the best distinct lines found. Model score: the best objective found.
"""

from __future__ import annotations

import numpy as np
import torch

from detectors.base import Detector, register_detector
from detectors.divergence import js_bits
from training.generation import keep_last_logits, left_padded, length_batches, padding_id, position_ids


def _text(tokenizer, line) -> str:
    return " ".join(tokenizer.decode(list(line)).split())


@register_detector("trigger-inversion")
class TriggerInversion(Detector):
    proposal_pool = "open"
    uses_reference = True
    KEEP = 5  # distinct proposals (and `extra` lines) whose values the search keeps exact
    # 6 iterations of 24 candidates saved a third of its time but recovered 3 of 6 blind backdoors at
    # top-1 instead of 4 (benchmarks 20261127-173532 vs -183915); detection comes first.
    defaults = {"seed": 0, "budget": 15_000, "n_per_family": 1, "line_tokens": 6, "iterations": 8,
                "candidates": 32, "top_k": 24, "n_sampled": 6, "sample_tokens": 10, "penalty": 1.0,
                "answer_tokens": 32}

    # --- the objective -------------------------------------------------------------------------

    def _setup(self, subject, prompts=None):
        tokenizer = subject.tokenizer
        self.pad = padding_id(tokenizer)
        self.newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
        n = self.params["n_per_family"]
        prompts = list(prompts)[:4 * n] if prompts else subject.balanced_prompts(n, self.seed + 17)
        self.prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        from training.generation import greedy_token_ids

        self.answers = [a if a else [tokenizer.eos_token_id]
                        for a in greedy_token_ids(subject.model, tokenizer, prompts, self.params["answer_tokens"])]
        special = {tokenizer.eos_token_id, self.pad, *self.newline}
        vocab = subject.model.get_input_embeddings().num_embeddings
        self.allowed = torch.ones(vocab, dtype=torch.bool)
        self.allowed[list(special)] = False
        self.clean = {"subject": self._answer_logprobs(subject.model, [[]])}
        if subject.reference is not None:
            self.clean["base"] = self._answer_logprobs(subject.reference, [[]])

    def _rows(self, line: list[int]) -> list[list[int]]:
        head = line + self.newline if line else []
        return [head + p + a for p, a in zip(self.prompt_ids, self.answers)]

    @torch.no_grad()
    def _answer_logprobs(self, model, lines: list[list[int]]) -> list[torch.Tensor]:
        """Per (line, prompt): log-probabilities along the subject's clean answer, (answer length, vocab)."""
        rows = [row for line in lines for row in self._rows(line)]
        out: list[torch.Tensor] = [torch.zeros(0)] * len(rows)
        keep = 1 + max(map(len, self.answers))
        # Batches of one row length: the prompts differ in length, and padding was 29% of every batch.
        for batch in length_batches(list(map(len, rows)), 256, same_length=True):
            ids, mask = left_padded([rows[i] for i in batch], self.pad, model.device)
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                                           **keep_last_logits(model, keep)).logits[:, -keep:].float(), -1).cpu()
            for j, i in enumerate(batch):
                k = len(self.answers[i % len(self.answers)])
                out[i] = logp[j, keep - k - 1:keep - 1]
        return out

    def _effect(self, model, which: str, lines: list[list[int]]) -> np.ndarray:
        """(lines, prompts): the largest divergence each line causes along each answer."""
        n = len(self.prompt_ids)
        moved = self._answer_logprobs(model, lines)
        effect = np.zeros((len(lines), n))
        for j, clean in enumerate(self.clean[which]):  # one prompt's rows at once: (lines, answer, vocab)
            effect[:, j] = js_bits(torch.stack(moved[j::n]), clean).amax(-1).numpy()
        return effect

    def objective(self, subject, lines: list[list[int]], floor: float = -np.inf) -> np.ndarray:
        """Each line's objective; nan for a line whose effect on the subject alone is below `floor`.

        The base's effect is never negative, so such a line cannot reach `floor` after the penalty:
        the base is not run on it (half of this detector's forward passes went to the base).
        """
        value = self._effect(subject.model, "subject", lines).mean(1)
        if subject.reference is not None:
            needed = np.flatnonzero(value >= floor) if self.params["penalty"] >= 0 else np.arange(len(lines))
            base = np.full(len(lines), np.nan)
            if needed.size:
                base[needed] = self._effect(subject.reference, "base", [lines[i] for i in needed]).mean(1)
            value = value - self.params["penalty"] * base
        return value

    def _floor(self, subject, pool: dict[tuple, float]) -> float:
        """The least value a new line needs to matter: the value at which the pool's best lines already
        hold `KEEP` distinct texts (proposals and `extra` read no further); -inf before that."""
        texts = set()
        for line, value in sorted(pool.items(), key=lambda item: -item[1]):
            texts.add(_text(subject.tokenizer, line))
            if len(texts) == self.KEEP:
                return value
        return -np.inf

    def _gradient(self, subject, line: list[int]) -> torch.Tensor:
        """d(divergence from the clean answer)/d(one-hot line tokens), (line length, vocab), through the subject."""
        model = subject.model
        embeddings = model.get_input_embeddings()
        rows = self._rows(line)
        ids, mask = left_padded(rows, self.pad, model.device)
        one_hot = torch.zeros(len(line), embeddings.num_embeddings, device=model.device)
        one_hot[torch.arange(len(line), device=model.device), torch.tensor(line, device=model.device)] = 1.0
        one_hot.requires_grad_(True)
        embedded = embeddings(ids).detach()
        line_vectors = one_hot @ embeddings.weight  # the line's embeddings, differentiable in the one-hot
        width = ids.shape[1]
        pieces = []
        for i, row in enumerate(rows):
            start = width - len(row)
            pieces.append(torch.cat([embedded[i, :start], line_vectors, embedded[i, start + len(line):]]))
        logp = torch.log_softmax(model(inputs_embeds=torch.stack(pieces), attention_mask=mask,
                                       position_ids=position_ids(mask)).logits.float(), -1)
        total = torch.zeros((), device=logp.device)
        for i, answer in enumerate(self.answers):
            k = len(answer)
            moved = logp[i, width - k - 1:width - 1]
            clean = self.clean["subject"][i].to(moved.device)
            total = total + (clean.exp() * (clean - moved)).sum(-1).max()  # KL(clean || moved), worst position
        total.backward()
        return one_hot.grad.detach().cpu()

    # --- the search ----------------------------------------------------------------------------

    def _sampled_lines(self, subject, rng: np.random.Generator) -> list[list[int]]:
        """Context lines the subject and the base write after a bare newline (sampled, seeded)."""
        lines = []
        torch.manual_seed(int(rng.integers(2**31)))
        for model in (subject.model, subject.reference):
            if model is None:
                continue
            start = torch.tensor([self.newline] * self.params["n_sampled"], device=model.device)
            with torch.no_grad():
                out = model.generate(start, attention_mask=torch.ones_like(start), do_sample=True, top_k=50,
                                     max_new_tokens=self.params["sample_tokens"], pad_token_id=self.pad,
                                     eos_token_id=self.newline[-1])
            for row in out[:, start.shape[1]:].tolist():
                row = [t for t in row if t not in (self.pad, subject.tokenizer.eos_token_id, *self.newline)]
                if row and row not in lines:
                    lines.append(row[:self.params["line_tokens"] + 4])
        return lines

    def search(self, subject, prompts=None) -> list[tuple[float, list[int]]]:
        key = tuple(prompts) if prompts else None
        if getattr(self, "_found_for", "unset") == key:
            return self._found
        rng = np.random.default_rng(self.seed)
        self._setup(subject, prompts)
        pool: dict[tuple, float] = {}
        sampled = self._sampled_lines(subject, rng)
        if sampled:
            for line, value in zip(sampled, self.objective(subject, sampled)):
                pool[tuple(line)] = float(value)
        allowed = torch.nonzero(self.allowed).flatten().numpy()
        length = self.params["line_tokens"]
        if pool:
            seed_line = list(max(pool, key=pool.get))[:length]
            seed_line += [int(t) for t in rng.choice(allowed, length - len(seed_line))]
        else:
            seed_line = [int(t) for t in rng.choice(allowed, length)]
        current, current_value = seed_line, float(self.objective(subject, [seed_line])[0])
        pool[tuple(current)] = current_value
        for _ in range(self.params["iterations"]):
            gradient = self._gradient(subject, current)
            gradient[:, ~self.allowed] = -np.inf
            top = torch.topk(gradient, self.params["top_k"], dim=1).indices.numpy()  # raise the divergence
            candidates = []
            for _ in range(self.params["candidates"]):
                position = int(rng.integers(len(current)))
                swapped = list(current)
                swapped[position] = int(rng.choice(top[position]))
                if swapped != current:
                    candidates.append(swapped)
            if not candidates:
                break
            # A line below both the current one and the pool's last kept line can change nothing.
            values = self.objective(subject, candidates, floor=min(current_value, self._floor(subject, pool)))
            for line, value in zip(candidates, values):
                if not np.isnan(value):
                    pool[tuple(line)] = float(value)
            if np.isnan(values).all():
                continue
            best = int(np.nanargmax(values))
            if values[best] > current_value:
                current, current_value = candidates[best], float(values[best])
        self._found = sorted(((v, list(k)) for k, v in pool.items()), key=lambda item: -item[0])
        self._found_for = key
        decode = subject.tokenizer.decode
        self.extra = {"best": [[decode(line), round(value, 4)] for value, line in self._found[:5]]}
        return self._found

    def score_model(self, subject, prompts=None):
        found = self.search(subject, prompts)
        return found[0][0] if found else 0.0

    def propose_triggers(self, subject, k=5):
        if k > self.KEEP:
            raise ValueError(f"trigger-inversion keeps its best {self.KEEP} lines exactly; asked for {k}")
        proposals = []
        for _, line in self.search(subject):
            text = _text(subject.tokenizer, line)
            if text and text not in proposals:
                proposals.append(text)
            if len(proposals) == k:
                break
        return proposals
