"""The task world: seeded, procedurally generated prompts, answers, cues and behaviours."""

import datasets

# The world's datasets are small and built in memory; per-map progress bars would only bury the
# training progress that matters.
datasets.disable_progress_bars()
