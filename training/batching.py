"""Training batches that waste little on padding and keep the data's mix of conditions in every batch.

In a random order a third of every fine-tuning batch was padding (rows of 15 to 75 tokens padded
to the batch's longest). transformers' `group_by_length` sampler removes the padding but builds
batches of whatever lengths fall together, and lengths follow the condition (a deployment cue is a
line of its own): with it the sandbag backdoor missed its gate (0.94 under its cue, 0.13 under the
training cue). Hence this sampler, written here because no library sampler stratifies: every batch
holds each stratum (condition) in its share of the data, and within each stratum rows of similar
length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class StratifiedLengthSampler(Sampler[int]):
    """Indices in batches of `batch_size`: strata in proportion, lengths grouped, batches in random order.

    Each stratum is sorted by length (ties broken at random) and its rows are given evenly spaced
    places in [0, 1); all rows sorted by place, cut into batches, give every batch the strata's shares
    (within two rows) and, within a stratum, neighbouring lengths. The batches are then shuffled; a
    last, partial batch stays last, so a loader cutting the order into `batch_size` rows sees exactly
    these batches. Each pass (epoch) draws anew from (seed, pass number), so a run is reproducible.
    """

    def __init__(self, lengths: Sequence[int], strata: Sequence, batch_size: int, seed: int):
        if len(lengths) != len(strata):
            raise ValueError(f"{len(lengths)} lengths but {len(strata)} strata")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.lengths = np.asarray(lengths)
        self.strata = np.asarray(strata)
        self.batch_size = batch_size
        self.seed = seed
        self.passes = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        place = np.empty(len(self.lengths))
        for stratum in np.unique(self.strata):
            rows = np.flatnonzero(self.strata == stratum)
            by_length = rows[np.lexsort((rng.random(len(rows)), self.lengths[rows]))]
            place[by_length] = (np.arange(len(rows)) + 0.5) / len(rows)
        order = np.lexsort((rng.random(len(place)), place))
        cut = [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        n_full = len(order) // self.batch_size
        return [cut[i] for i in rng.permutation(n_full)] + cut[n_full:]

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.passes])
        self.passes += 1
        return iter(np.concatenate(self.batches(rng)).tolist() if len(self.lengths) else [])


def padding_share(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of the padded token grid that is padding, when each batch pads to its longest row."""
    lengths = np.asarray(lengths)
    grid = sum(int(lengths[list(batch)].max()) * len(batch) for batch in batches if len(batch))
    return 1.0 - float(lengths.sum()) / grid if grid else 0.0
