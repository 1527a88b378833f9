"""python -m detectors: list the detectors, run the blind benchmark over built zoos, or verify a run.

`run` benchmarks every built member of the dev zoo and of the blind zoo (the report leads with
the blind zoo). Each (detector, organism, question) cell runs in its own sealed process. `verify`
recomputes every figure of a run from its saved items and exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import os
import sys

from detectors.base import load_built_in_detectors
from detectors.benchmark.run import BenchmarkError, run_benchmark
from detectors.benchmark.protocol import BenchmarkConfig
from detectors.benchmark.report import blind_status, comparison_text, leaderboard
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


def cmd_run(args) -> None:
    detector_params: dict = {}
    for detector, parameter, value in args.set:
        detector_params.setdefault(detector, {})[parameter] = value
    config = BenchmarkConfig(organisms=args.organisms, detectors=args.detectors, zoos=args.zoo, seed=args.seed,
                             n_per_condition=args.n_per_condition, jobs=args.jobs,
                             ray_address=ray_address(args.ray), plugins=tuple(args.plugin),
                             detector_params=detector_params)
    run_dir, results = run_benchmark(config)
    status = blind_status(results)
    if status:
        print(f"\n{status}")
    for zoo in results["settings"]["zoos"]:
        print(f"\n{zoo} zoo\n{leaderboard(results, zoo)}\n\n{comparison_text(results, zoo)}")
    print(f"\nreport: {run_dir / 'report.md'} ({results['seconds']} s)")


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
    p.add_argument("--organisms", type=name_list,
                   help="comma-separated organism names (default: every built member of the zoos)")
    p.add_argument("--detectors", type=name_list, help="comma-separated detector names (default: all; see 'list')")
    p.add_argument("--zoo", type=name_list, default="default,blind",
                   help="comma-separated zoos whose built members are benchmarked (default: default,blind): a "
                        "built-in zoo, 'blind' (the current blind zoo) or 'blind:all' (every blind zoo in the home "
                        "whose seed nobody gave and that these detector settings were the first to benchmark)")
    p.add_argument("--seed", type=int, default=0, help="seed for held-out prompts, detectors and bootstrap")
    p.add_argument("--n-per-condition", type=positive_int, default=BenchmarkConfig.n_per_condition,
                   help="held-out prompts per cue condition")
    p.add_argument("--jobs", type=positive_int, default=max(1, min(os.cpu_count() or 1, 8)),
                   help="sealed cells run side by side (default: the cores)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a module (importable from here, e.g. my_detector for ./my_detector.py) that registers "
                        "further detectors; imported by the scorer and inside every sealed cell (repeatable)")
    p.add_argument("--set", action="append", default=[], type=detector_setting, metavar="DETECTOR.PARAM=VALUE",
                   help="override one detector parameter (repeatable), e.g. --set noise-injection.sigma=0.02; "
                        "every override is recorded in results and changes the detector fingerprint")
    p.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                   help="run the cells as Ray tasks: on a cluster at ADDRESS, or on a Ray instance started here "
                        f"when no address is given (default: ${RAY_VARIABLE}, else no Ray)")
    p.set_defaults(run=cmd_run)
    p = _command(sub, "verify", help="recompute every figure of a run from its items; exit 1 on a mismatch")
    p.add_argument("run_dir", help="a run directory (reports/<run-id>, or reports/latest)")
    p.set_defaults(run=cmd_verify)
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except (BenchmarkError, ModelLoadError, BlindZooError, VerifyError, ClusterError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
