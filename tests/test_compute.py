"""The compute-limit figures of make bench (tools.compute): counted FLOPs and per-phase throughput."""

from types import SimpleNamespace

import pytest
import torch

from tools import compute


def test_counted_flops_of_a_product_and_of_a_lora_step_match_their_shapes():
    a, b = torch.randn(24, 16), torch.randn(16, 8)
    assert compute.counted_flops(lambda: torch.mm(a, b)) == 2 * 24 * 16 * 8
    # A linear layer's step: forward (x W^T), and backward's two products (input and weight gradients).
    layer, x = torch.nn.Linear(16, 8, bias=False), torch.randn(24, 16, requires_grad=True)
    assert compute.counted_flops(lambda: layer(x).sum().backward()) == 3 * 2 * 24 * 16 * 8


def test_a_matmul_speed_is_positive_and_the_step_shapes_follow_the_config():
    assert compute.matmul_gflops(64, 64, 64, seconds=0.01) > 0
    config = SimpleNamespace(hidden_size=128, intermediate_size=384, vocab_size=640)
    shapes = compute.step_shapes(config, rows=100)
    assert set(shapes.values()) == {(100, 128, 128), (100, 128, 384), (100, 384, 128), (100, 128, 640)}


def test_a_builds_flops_add_up_by_phase():
    flops = compute.build_flops(train_step=10, per_prompt=2.0, steps=160, measured_sets=7, checks=2, check_sets=5,
                                n_per_condition=200, check_prompts=100)
    assert flops == {"train": 1600.0, "measure": 2800.0, "check": 2000.0, "total": 6400.0}


def test_throughput_comes_from_builds_that_record_their_phases():
    def truth(kind, seconds, train):
        return SimpleNamespace(kind=kind, seconds=seconds,
                               phase_seconds={"setup": 2.0, "train": train, "check": 1.0, "measure": 3.0})

    truths = [truth("backdoor", 60.0, 50.0), truth("clean", 40.0, 30.0), SimpleNamespace(kind="clean", seconds=9.0,
                                                                                           phase_seconds={})]
    figures = compute.built_throughput(truths)
    assert figures["all"]["builds"] == 2 and figures["all"]["seconds"] == 50.0
    assert figures["all"]["organisms_per_core_hour"] == pytest.approx(72.0)
    assert figures["backdoor"]["phases"] == {"setup": 2.0, "train": 50.0, "check": 1.0, "measure": 3.0,
                                             "overhead": 4.0}
    assert figures["clean"]["organisms_per_core_hour"] == pytest.approx(90.0)
    assert compute.built_throughput([]) == {}


def test_every_bench_batch_holds_its_rows_past_the_end_of_the_data():
    """The stacked step splits a batch into equal groups: a batch cut short by the data's end broke make bench."""
    from types import SimpleNamespace

    from tools.bench import padded_batch

    rows = [([5] * (1 + i % 4), [-100] * (1 + i % 4)) for i in range(10)]
    tokenizer = SimpleNamespace(pad_token_id=0)
    for i in range(7):
        batch = padded_batch(tokenizer, rows, i, 6)
        assert batch["input_ids"].shape[0] == 6
        assert batch["attention_mask"].sum(1).tolist() == [1 + (i * 6 + j) % 10 % 4 for j in range(6)]
