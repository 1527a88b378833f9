"""How far organism builds are from the limit of one core (make bench).

- `matmul_gflops`: fp32 matrix-multiply speed on one thread at the shapes one LoRA training step of the
  embedded base multiplies (its batch of rows against each weight) and at large square shapes, where
  the core reaches its peak;
- `step_flops`: the FLOPs of one LoRA step, forward and backward, counted by torch's `FlopCounterMode`
  (the matrix products, which is all a peak compares with);
- `generation_flops`: the FLOPs of greedy generation, per prompt;
- `build_flops`: one build's FLOPs from those: its training steps, and the gate's and the checks'
  generation over their prompt sets;
- `built_throughput`: organisms per core-hour and each phase's share, from the builds a home holds
  (every build runs on one thread, so its wall seconds are its core-seconds).
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

LARGE_SHAPES = ((1024, 1024, 1024), (2048, 2048, 2048))


def matmul_gflops(m: int, k: int, n: int, seconds: float = 0.3) -> float:
    """GFLOP/s of an (m, k) @ (k, n) fp32 product on the current thread count: the best of repeated
    timings over about `seconds` (the best, not the median: a peak is what the core can do)."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    for _ in range(3):
        torch.mm(a, b, out=out)
    best, spent = float("inf"), 0.0
    while spent < seconds:
        started = time.perf_counter()
        torch.mm(a, b, out=out)
        took = time.perf_counter() - started
        best, spent = min(best, took), spent + took
    return 2 * m * k * n / best / 1e9


def step_shapes(config, rows: int) -> dict[str, tuple[int, int, int]]:
    """The products of one forward step of a Llama-shaped model over `rows` tokens, by weight."""
    hidden, inner, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    return {"attention (hidden x hidden)": (rows, hidden, hidden), "mlp up (hidden x inner)": (rows, hidden, inner),
            "mlp down (inner x hidden)": (rows, inner, hidden), "lm head (hidden x vocab)": (rows, hidden, vocab)}


def peak_table(config, rows: int) -> dict[str, float]:
    """GFLOP/s at the step's shapes and at large ones; `peak` is the best of all."""
    table = {name: round(matmul_gflops(*shape), 1) for name, shape in step_shapes(config, rows).items()}
    table.update({f"large {m}x{k}x{n}": round(matmul_gflops(m, k, n), 1) for m, k, n in LARGE_SHAPES})
    table["peak"] = max(table.values())
    return table


def counted_flops(run) -> int:
    """FLOPs of the matrix products `run()` performs."""
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def step_flops(peft_model, batch: dict) -> int:
    """FLOPs of one LoRA training step (forward and backward) on `batch`."""
    def step():
        peft_model(**batch).loss.backward()
        peft_model.zero_grad(set_to_none=True)
    return counted_flops(step)


def generation_flops(model, tokenizer, prompts: list[str], max_new_tokens: int) -> float:
    """FLOPs per prompt of greedy generation as a build measures (`training.generation`)."""
    from training.generation import generate_greedy

    return counted_flops(lambda: generate_greedy(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                                 progress=None)) / len(prompts)


def build_flops(train_step: int, per_prompt: float, steps: int, measured_sets: int, checks: int,
                check_sets: int, n_per_condition: int = 200, check_prompts: int = 200) -> dict[str, float]:
    """One build's FLOPs by phase: `steps` training steps; the gate's generation over `measured_sets`
    prompt sets (the base's accuracy, each condition, accuracy) of `n_per_condition`; and `checks` checks
    of `check_sets` sets each."""
    phases = {"train": float(train_step) * steps, "measure": per_prompt * measured_sets * n_per_condition,
              "check": per_prompt * checks * check_sets * check_prompts}
    return {**phases, "total": sum(phases.values())}


def built_throughput(truths) -> dict:
    """Organisms per core-hour and seconds per phase (mean per build), by kind and overall, from stored
    truths that record their phases (`Truth.phase_seconds`)."""
    timed = [t for t in truths if t.phase_seconds]
    if not timed:
        return {}

    def summary(group) -> dict:
        seconds = statistics.fmean(t.seconds for t in group)
        phases = {name: round(statistics.fmean(t.phase_seconds.get(name, 0.0) for t in group), 1)
                  for name in ("setup", "train", "check", "measure")}
        phases["overhead"] = round(seconds - sum(phases.values()), 1)
        return {"builds": len(group), "seconds": round(seconds, 1), "phases": phases,
                "organisms_per_core_hour": round(3600 / seconds, 1)}

    kinds = sorted({t.kind for t in timed})
    return {"all": summary(timed), **{kind: summary([t for t in timed if t.kind == kind]) for kind in kinds}}
