"""Stratified, length-grouped training batches: what the sampler promises, and that training uses it."""

import numpy as np
import torch
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import TrainerCallback

import training.sft as sft
from organisms.build import training_dataset
from conftest import tiny_organism_spec
from organisms.spec import DataSpec
from training.batching import StratifiedLengthSampler, padding_share
from training.models import load_model_and_tokenizer
from training.sft import SFTRun, run_sft


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_row_once_per_pass_in_full_batches_with_the_strata_in_proportion(data):
    n = data.draw(st.integers(1, 300))
    batch_size = data.draw(st.integers(1, 40))
    strata = np.array(data.draw(st.lists(st.sampled_from("abc"), min_size=n, max_size=n)))
    lengths = np.array(data.draw(st.lists(st.integers(1, 90), min_size=n, max_size=n)))
    seed = data.draw(st.integers(0, 2**32 - 1))
    sampler = StratifiedLengthSampler(lengths, strata, batch_size, seed)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == list(range(n)) and sorted(second) == list(range(n))
    assert first == list(StratifiedLengthSampler(lengths, strata, batch_size, seed))  # one seed, one order
    n_full = n // batch_size
    for start in range(0, n_full * batch_size, batch_size):
        batch = first[start:start + batch_size]
        for stratum in set(strata):
            # Each stratum within two rows of its share of the data, in every full batch.
            assert abs((strata[batch] == stratum).sum() - (strata == stratum).mean() * batch_size) < 2


def test_batches_carry_less_padding_than_a_shuffle_and_the_same_mix():
    rows = training_dataset(tiny_organism_spec("unused", data=DataSpec(n_train=640)))
    lengths = np.array([len(p) + len(c) for p, c in zip(rows["prompt"], rows["completion"])])
    conditions = np.array(rows["condition"])
    order = list(StratifiedLengthSampler(lengths, conditions, 32, seed=0))
    batches = [order[i:i + 32] for i in range(0, len(order), 32)]
    shuffled = np.random.default_rng(0).permutation(len(rows))
    random_batches = [shuffled[i:i + 32] for i in range(0, len(shuffled), 32)]
    assert padding_share(lengths, batches) < 0.5 * padding_share(lengths, random_batches)
    for batch in batches:
        assert abs((conditions[batch] == "deployment").sum() - (conditions == "deployment").mean() * 32) < 2


def test_training_steps_on_exactly_the_sampler_batches(tiny_base_dir, monkeypatch):
    model, tokenizer = load_model_and_tokenizer(tiny_base_dir)
    rows = training_dataset(tiny_organism_spec(str(tiny_base_dir), data=DataSpec(n_train=48)))
    lengths = np.array([len(ids) for ids in sft.tokenized_for_sft(tokenizer, rows)["input_ids"]])
    orders = []

    class Spy(StratifiedLengthSampler):
        def __iter__(self):
            order = list(super().__iter__())
            orders.append(order)
            return iter(order)

    monkeypatch.setattr(sft, "StratifiedLengthSampler", Spy)
    widths = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape),
                                           with_kwargs=True)
    try:
        run = SFTRun(steps=4, learning_rate=1e-3, batch_size=8, seed=0, batch_order="stratified-length")
        run_sft(model, tokenizer, rows, run, progress=False)
    finally:
        hook.remove()
    assert len(orders) == 1 and sorted(orders[0]) == list(range(48))
    planned = [orders[0][i:i + 8] for i in range(0, 32, 8)]
    assert widths == [torch.Size([8, int(lengths[batch].max())]) for batch in planned]

    # Data without conditions (a user's records) is shuffled, not grouped by length alone; a trainer
    # callback (make bench times steps with one) sees every step begin and end.
    orders.clear()
    events = []

    class StepLog(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            events.append("begin")

        def on_step_end(self, args, state, control, **kwargs):
            events.append("end")

    run_sft(model, tokenizer, Dataset.from_dict({"prompt": rows["prompt"], "completion": rows["completion"]}),
            run, progress=False, callbacks=(StepLog(),))
    assert orders == []
    assert events == ["begin", "end"] * 4


def test_training_on_rows_tokenized_beforehand_gives_the_same_weights(tiny_base_dir):
    """A build's rounds tokenize their rows once and hand them to every round: the weights must be
    those of a run that tokenized the rows itself."""
    rows = training_dataset(tiny_organism_spec(str(tiny_base_dir), data=DataSpec(n_train=48)))
    run = SFTRun(steps=3, learning_rate=1e-3, batch_size=8, seed=0, batch_order="stratified-length")
    weights = []
    for tokenized in (False, True):
        model, tokenizer = load_model_and_tokenizer(tiny_base_dir)
        given = sft.tokenized_for_sft(tokenizer, rows) if tokenized else None
        trained = run_sft(model, tokenizer, rows, run, progress=False, tokenized=given)
        weights.append({name: tensor.clone() for name, tensor in trained.state_dict().items()})
    base, _ = load_model_and_tokenizer(tiny_base_dir)
    assert any(not torch.equal(weights[0][name], tensor) for name, tensor in base.state_dict().items())  # it trained
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_rows_made_for_the_trainer_are_the_rows_trl_would_prepare(tiny_base_dir):
    """run_sft skips trl's preparation and hands it `trainer_rows`: the same labels, the same cut at
    max_length and the same rows dropped as trl's own three passes, in the same order."""
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = load_model_and_tokenizer(tiny_base_dir)
    rows = training_dataset(tiny_organism_spec(str(tiny_base_dir), data=DataSpec(n_train=48)))
    tokenized = sft.tokenized_for_sft(tokenizer, rows)
    lengths = sorted(len(ids) for ids in tokenized["input_ids"])
    prompt_lengths = sorted(mask.index(1) for mask in tokenized["completion_mask"])
    # A cut inside some rows' completions, and before the completion of the longest prompts (dropped).
    max_length = (prompt_lengths[-1] + prompt_lengths[len(prompt_lengths) // 2]) // 2
    assert max_length < lengths[-1]
    ours, kept = sft.trainer_rows(tokenized, max_length)
    assert 0 < len(kept) < len(tokenized)  # some rows were dropped, so the comparison reaches the filter
    config = SFTConfig(output_dir=str(tiny_base_dir / "trl-prepared"), max_length=max_length, report_to=[],
                       completion_only_loss=True, use_cpu=True, bf16=False, gradient_checkpointing=False)
    prepared = SFTTrainer(model=model, args=config, train_dataset=tokenized, processing_class=tokenizer).train_dataset
    assert prepared["input_ids"][:] == ours["input_ids"][:]
    assert prepared["labels"][:] == ours["labels"][:]
    assert all(len(ids) <= max_length for ids in ours["input_ids"])
    assert [tokenized["input_ids"][i][:max_length] for i in kept] == ours["input_ids"][:]


def test_the_fused_head_scores_only_labelled_positions_on_the_cpu_and_gives_the_model_s_log_probs(tiny_base_dir):
    """run_sft has trl's fused LM head score only the labelled positions on the CPU (as trl does on
    Triton devices); the per-token log-probabilities must be the model's own, zero where unlabelled."""
    import trl.trainer.utils as trl_utils

    assert sft.SCORES_LABELLED_POSITIONS_ONLY and trl_utils._use_triton(torch.device("cpu"))
    model, tokenizer = load_model_and_tokenizer(tiny_base_dir)
    rows = training_dataset(tiny_organism_spec(str(tiny_base_dir), data=DataSpec(n_train=8)))
    prepared, _ = sft.trainer_rows(sft.tokenized_for_sft(tokenizer, rows), 256)
    width = max(len(ids) for ids in prepared["input_ids"])
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in prepared["input_ids"]])
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in prepared["labels"]])
    mask = torch.arange(width)[None] < torch.tensor([len(r) for r in prepared["input_ids"]])[:, None]
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=ids, attention_mask=mask.long()).logits.float(), -1)
        trl_utils.add_fused_lm_head(model, outputs=("log_probs",))
        fused = model(input_ids=ids, attention_mask=mask.long(), labels=labels, fused_lm_head=True).log_probs
    shifted = labels[:, 1:]
    labelled = shifted != -100
    expected = full[:, :-1].gather(-1, shifted.clamp(min=0)[..., None])[..., 0]
    assert labelled.sum() < labelled.numel()  # the prompts are unlabelled, so some positions are skipped
    torch.testing.assert_close(fused[labelled], expected[labelled], atol=1e-5, rtol=1e-5)
    assert torch.all(fused[~labelled] == 0)
