"""python -m detectors: list the detectors, or run the blind benchmark over built organisms."""

from __future__ import annotations

import argparse
import sys

from detectors import DETECTORS
from detectors.benchmark import BenchmarkConfig, BenchmarkError, leaderboard, run_benchmark
from training.models import ModelLoadError


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(n.strip() for n in text.split(",") if n.strip())


def cmd_list(args) -> None:
    for name, cls in sorted(DETECTORS.items()):
        summary = (cls.__module__ and sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        print(f"{name:<22} {summary}")


def cmd_run(args) -> None:
    config = BenchmarkConfig(organisms=_names(args.organisms), detectors=_names(args.detectors), zoo=args.zoo,
                             seed=args.seed, n_per_condition=args.n_per_condition)
    run_dir, results = run_benchmark(config)
    print()
    print(leaderboard(results))
    print(f"\nreport: {run_dir / 'report.md'} ({results['seconds']} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m detectors", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list the registered detectors")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("run", help="run the blind benchmark and write a report under $MESALAB_HOME/reports")
    p.add_argument("--organisms", help="comma-separated organism names (default: the zoo's built members)")
    p.add_argument("--detectors", help=f"comma-separated detector names (default: all: {', '.join(sorted(DETECTORS))})")
    p.add_argument("--zoo", default="default", help="zoo whose built members are benchmarked (default: default)")
    p.add_argument("--seed", type=int, default=0, help="seed for held-out prompts, detectors and bootstrap")
    p.add_argument("--n-per-condition", type=int, default=40, help="held-out prompts per cue condition")
    p.set_defaults(run=cmd_run)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (BenchmarkError, ModelLoadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
