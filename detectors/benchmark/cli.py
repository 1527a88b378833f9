"""python -m detectors: list the detectors, run the blind benchmark over built zoos, or verify a run.

`run` benchmarks every built member of the dev zoo and of the blind zoo (the report leads with
the blind zoo). Each (detector, organism, question) cell runs in its own sealed process. `verify`
recomputes every figure of a run from its saved items and exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from detectors.base import load_built_in_detectors
from detectors.benchmark.run import BenchmarkError, run_benchmark
from detectors.benchmark.protocol import BenchmarkConfig
from detectors.benchmark.report import blind_status, comparison_text, leaderboard
from detectors.benchmark.pool import PoolError, pool_runs
from detectors.benchmark.verify import VerifyError, verify_run
from organisms.blind_zoo import BlindZooError
from training.arguments import name_list, positive_int
from training.cluster import LOCAL, RAY_VARIABLE, ClusterError, ray_address
from training.models import ModelLoadError


def _command(sub, name: str, help: str):
    """A subcommand whose own --help opens with the line the command list shows."""
    return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")


def cmd_list(args) -> None:
    for name, cls in sorted(load_built_in_detectors().items()):
        summary = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        print(f"{name:<22} {summary}")


def detector_setting(text: str) -> tuple[str, str, object]:
    """`DETECTOR.PARAM=VALUE` -> (detector, parameter, value); the value is read as YAML (3, 0.5, true, text)."""
    import yaml

    target, equals, value = text.partition("=")
    detector, dot, parameter = target.partition(".")
    if not (equals and dot and detector.strip() and parameter.strip()):
        raise argparse.ArgumentTypeError(f"must be DETECTOR.PARAM=VALUE, got {text!r}")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not a number, true/false or text") from None
    return detector.strip(), parameter.strip(), parsed


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text!r}")
        return value
    return positive_int if minimum == 1 else parse


def _cores() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


# Where a field's annotation does not say how it is typed: the flags it has always had (--zoo, --set,
# --plugin, --ray), repeatable options, and the defaults that depend on this machine.
FIELD_OPTIONS = {
    "zoos": dict(flags=("--zoo", "--zoos")),
    "detector_params": dict(flags=("--set",), action="append", type=detector_setting, metavar="DETECTOR.PARAM=VALUE",
                            example="e.g. --set noise-injection.sigma=0.02 (repeatable; the value read as YAML)"),
    "plugins": dict(flags=("--plugin",), action="append", metavar="MODULE",
                    example="e.g. my_detector for ./my_detector.py (repeatable)"),
    "ray_address": dict(flags=("--ray",), nargs="?", const=LOCAL, metavar="ADDRESS",
                        example=f"with no address, a Ray instance started here; default: ${RAY_VARIABLE}, else no Ray"),
    "jobs": dict(default=_cores, example="on the command line, the number of cores, at most 8"),
}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per `BenchmarkConfig` field, typed by its annotation, documented by its `help`."""
    for f in dataclasses.fields(BenchmarkConfig):
        options = dict(FIELD_OPTIONS.get(f.name, {}))
        flags = options.pop("flags", (f"--{f.name.replace('_', '-')}",))
        example = options.pop("example", "")
        default = options.pop("default", None)
        default = default() if callable(default) else f.default
        if options.get("action") == "append":
            options["default"] = []
        elif f.type == "bool":
            options.update(action=argparse.BooleanOptionalAction, default=default)
        else:
            options["default"] = default
            if f.type.startswith("tuple[str"):
                options.setdefault("type", name_list)
            elif f.type == "int":
                options.setdefault("type", _count(f.metadata["minimum"]))
        shown = "" if default in (None, (), {}) or f.type == "dict" else \
            f" (default: {','.join(default) if isinstance(default, tuple) else default})"
        text = f.metadata["help"] + shown + (f"; {example}" if example else "")
        parser.add_argument(*flags, dest=f.name, help=text.replace("%", "%%"), **options)


def config_from_args(args) -> BenchmarkConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(BenchmarkConfig)}
    detector_params: dict = {}
    for detector, parameter, value in values["detector_params"]:
        detector_params.setdefault(detector, {})[parameter] = value
    values.update(detector_params=detector_params, plugins=tuple(values["plugins"]),
                  ray_address=ray_address(values["ray_address"]))
    return BenchmarkConfig(**values)


def cmd_run(args) -> None:
    config = config_from_args(args)
    run_dir, results = run_benchmark(config)
    status = blind_status(results)
    if status:
        print(f"\n{status}")
    for zoo in results["settings"]["zoos"]:
        print(f"\n{zoo} zoo\n{leaderboard(results, zoo)}\n\n{comparison_text(results, zoo)}")
    print(f"\nreport: {run_dir / 'report.md'} ({results['seconds']} s)")
    print(f"open in a browser: file://{(run_dir / 'report.html').resolve()}")


def cmd_pool(args) -> None:
    run_dir, results = pool_runs(args.run_dirs)
    status = blind_status(results)
    if status:
        print(status)
    if results["left_out"]:
        print(f"left out (not run with one fingerprint in every run): {', '.join(results['left_out'])}")
    print(f"\nblind zoos pooled from {len(args.run_dirs)} runs\n{leaderboard(results, 'blind')}\n\n"
          f"{comparison_text(results, 'blind')}")
    print(f"\nreport: {run_dir / 'report.md'}")
    print(f"open in a browser: file://{(run_dir / 'report.html').resolve()}")


def cmd_verify(args) -> int:
    checked, mismatches = verify_run(args.run_dir)
    for line in mismatches[:50]:
        print(f"mismatch {line}")
    if mismatches:
        print(f"{len(mismatches)} of {checked} figures do not match their items", file=sys.stderr)
        return 1
    print(f"verified: all {checked} figures of {args.run_dir} recomputed from its items")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m detectors", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = _command(sub, "list", help="list the registered detectors")
    p.set_defaults(run=cmd_list)
    p = _command(sub, "run", help="run the blind benchmark and write a report under $MESALAB_HOME/reports")
    add_config_arguments(p)
    p.set_defaults(run=cmd_run)
    p = _command(sub, "pool", help="one blind board over finished runs of one detector fingerprint on different "
                                   "blind zoos, with no cell run again")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (reports/<run-id>)")
    p.set_defaults(run=cmd_pool)
    p = _command(sub, "verify", help="recompute every figure of a run from its items; exit 1 on a mismatch")
    p.add_argument("run_dir", help="a run directory (reports/<run-id>, or reports/latest)")
    p.set_defaults(run=cmd_verify)
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except (BenchmarkError, ModelLoadError, BlindZooError, VerifyError, PoolError, ClusterError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
