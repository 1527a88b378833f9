"""Command-line argument types shared by the lab's commands, so bad values stop before any work starts."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer of at least 1 (`--jobs 0` used to run serially, `--n-per-condition 0` to fail mid-run)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def name_list(text: str) -> tuple[str, ...]:
    """Comma-separated names, none empty, each once. `--zoo default,,blind` or `--detectors ""` is a typo,
    not a request: an empty entry used to be dropped (and an empty list to mean the default, or no
    detectors at all) without a word."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"must be comma-separated names, none empty, got {text!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"names {', '.join(repeated)} more than once, got {text!r}")
    return names
