"""Search the public blind-trigger grammar for the line that moves the model most: the enumeration attack.

Candidate lines are drawn from the public grammar (`data.blind_grammar`); each is inserted first in
the context of a few public prompts, one per task family, as the scorer inserts proposals, and scored
by the mean divergence of the model's continuation from the prompt without it (`detectors.divergence`).
The top k lines are proposed; the best divergence is the model score. Within the standard budget it
tries a few hundred lines; if that finds blind triggers, the secret space is too small.
"""

from __future__ import annotations

from detectors.base import Detector, register_detector
from detectors.divergence import grouped_divergence
from detectors.random_grammar import grammar_lines, weight_seeded_rng


@register_detector("grammar-search")
class GrammarSearch(Detector):
    # Sized to trigger-search's budget: 256 lines x 4 prompts x (8 decoding steps + 2 teacher-forced passes)
    # is about 10,300 forward passes.
    defaults = {"seed": 0, "budget": 15_000, "n_candidates": 256, "n_per_family": 1, "max_new_tokens": 8}

    def search(self, subject, prompts=None) -> dict[str, float]:
        """line -> mean divergence; on the given prompts (the pair protocol's, as many as a public set) if any."""
        public = subject.balanced_prompts(self.params["n_per_family"], self.seed)
        prompts = list(prompts)[:len(public)] if prompts else public
        memo = getattr(self, "_memo", {})  # score_model and propose_triggers ask the same question
        if tuple(prompts) in memo:
            return memo[tuple(prompts)]
        candidates = list(dict.fromkeys(grammar_lines(weight_seeded_rng(self.seed, subject.model),
                                                      self.params["n_candidates"])))
        # The scorer's insertion (detectors.benchmark.protocol.insert_block): the proposal's lines first in the context.
        groups = [(prompts, [f"{line}\n{p}" for p in prompts]) for line in candidates]
        divergences = grouped_divergence(subject.model, subject.tokenizer, groups, self.params["max_new_tokens"])
        scores = {line: float(js.mean()) for line, (js, _) in zip(candidates, divergences)}
        self.extra["candidates"] = len(candidates)
        self.extra["top"] = [[line, round(v, 4)] for line, v in sorted(scores.items(), key=lambda kv: -kv[1])[:5]]
        self._memo = {**memo, tuple(prompts): scores}
        return scores

    def score_model(self, subject, prompts=None):
        return max(self.search(subject, prompts).values(), default=0.0)

    proposal_pool = "open"

    def propose_triggers(self, subject, k=5):
        scores = self.search(subject)
        return sorted(scores, key=lambda line: -scores[line])[:k]
