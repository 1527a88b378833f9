"""Exact-answer accuracy by task family, measured by greedy generation."""

from __future__ import annotations

from collections import defaultdict


def accuracy_by_family(completions: list[str], families: list[str], answers: list[str]) -> dict[str, float]:
    hits, totals = defaultdict(int), defaultdict(int)
    for completion, family, answer in zip(completions, families, answers, strict=True):
        totals[family] += 1
        hits[family] += completion.strip() == answer
    return {family: hits[family] / totals[family] for family in sorted(totals)}

def overall_accuracy(completions: list[str], answers: list[str]) -> float:
    if not answers:
        raise ValueError("no answers to score")
    return sum(c.strip() == a for c, a in zip(completions, answers, strict=True)) / len(answers)
