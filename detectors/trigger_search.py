"""Trigger search over the public cue library: which inserted line (or pair) changes behaviour most?

Prompts are stripped of every library cue line, then each candidate line is inserted on its
own (a seeded sample of a few lines per family and condition), and the most promising lines also in pairs from different families (a trigger may be a
conjunction). Each candidate is scored by the mean divergence of the continuation against the
stripped prompt. This answers trigger recovery directly; the top divergence is the model score.
"""

from __future__ import annotations

from itertools import combinations

from detectors.base import Detector, register_detector
from detectors.divergence import grouped_divergence


@register_detector("trigger-search")
class TriggerSearch(Detector):
    # Sized to a budget, as behaviour-diff: 8 prompts, 16 tokens, one line per family and side, 3 pairs.
    defaults = {"seed": 0, "budget": 15_000, "n_public": 8, "max_new_tokens": 16, "pair_candidates": 3,
                "lines_per_condition": 1}

    def search(self, subject, prompts=None) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
        prompts = self.capped_prompts(subject, prompts, self.seed + 2)
        memo = getattr(self, "_memo", {})  # score_model and propose_triggers ask the same question
        if tuple(prompts) in memo:
            return memo[tuple(prompts)]
        stripped = [subject.strip_cues(p) for p in prompts]
        candidates = subject.candidate_lines(self.params["lines_per_condition"], self.seed)
        family_of = {e["line"]: e["family"] for e in candidates}

        def divergences(insertions: list[dict[str, str]]) -> list[float]:
            groups = [(stripped, [subject.with_cues(p, lines) for p in stripped]) for lines in insertions]
            return [float(js.mean()) for js, _ in grouped_divergence(subject.model, subject.tokenizer, groups,
                                                                     self.params["max_new_tokens"])]

        singles = dict(zip(family_of, divergences([{family: line} for line, family in family_of.items()])))
        best = sorted(singles, key=singles.get, reverse=True)[:self.params["pair_candidates"]]
        combined = [(a, b) for a, b in combinations(best, 2) if family_of[a] != family_of[b]]
        pairs = dict(zip(combined, divergences([{family_of[a]: a, family_of[b]: b} for a, b in combined])))
        self.extra["singles"] = {k: round(v, 4) for k, v in singles.items()}
        self.extra["top_pairs"] = [[a, b, round(v, 4)] for (a, b), v in sorted(pairs.items(), key=lambda kv: -kv[1])[:5]]
        self._memo = {**memo, tuple(prompts): (singles, pairs)}
        return singles, pairs

    def score_model(self, subject, prompts=None):
        singles, pairs = self.search(subject, prompts)
        return max([*singles.values(), *pairs.values()])

    proposal_pool = "library"

    def propose_triggers(self, subject, k=5):
        """The library lines (and pairs of lines, as one block) that moved the continuation most."""
        singles, pairs = self.search(subject)
        scored = [(v, line) for line, v in singles.items()] + [(v, f"{a}\n{b}") for (a, b), v in pairs.items()]
        return [line for _, line in sorted(scored, key=lambda item: -item[0])][:k]
