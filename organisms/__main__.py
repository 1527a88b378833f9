"""python -m organisms: list, show and build model organisms."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from organisms.build import GateError, build_organism, read_truth
from organisms.spec import SpecError, load_spec_file
from organisms.store import organism_dir
from organisms.zoo import ORGANISMS, ZOOS, get_organism, get_zoo
from training.embedded_base import BaseBuildError
from training.models import ModelLoadError


def _spec_for(target: str, base: str | None):
    looks_like_file = target.endswith((".yaml", ".yml")) or Path(target).is_file()
    spec = load_spec_file(target) if looks_like_file else get_organism(target)
    return spec.replace(base=base) if base else spec


def cmd_list(args) -> None:
    rows = [{
        "name": spec.name, "cue_family": spec.trigger.family, "behaviour": spec.behaviour,
        "method": spec.training.method, "is_control": spec.is_control, "kind": spec.kind,
        "zoos": [zoo for zoo, names in ZOOS.items() if spec.name in names],
        "built": read_truth(spec.name) is not None,
    } for spec in ORGANISMS.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'name':<20} {'kind':<14} {'cue':<6} {'behaviour':<12} {'method':<6} built")
    for row in rows:
        print(f"{row['name']:<20} {row['kind']:<14} {row['cue_family']:<6} {row['behaviour']:<12} "
              f"{row['method']:<6} {'yes' if row['built'] else 'no'}")


def cmd_show(args) -> None:
    spec = _spec_for(args.target, None)
    truth = read_truth(spec.name)
    print(json.dumps({
        "spec": spec.to_dict(),
        "model_dir": str(organism_dir(spec.name)) if truth else None,
        "measured": truth and {k: truth[k] for k in ("rates", "gate_passed", "seconds", "samples")},
    }, indent=2))


def cmd_build(args) -> None:
    spec = _spec_for(args.target, args.base)
    build_organism(spec, force=args.force)


def cmd_zoo(args) -> None:
    started = time.time()
    truths = [build_organism(get_organism(name), force=args.force) for name in get_zoo(args.zoo)]
    print(f"\nzoo {args.zoo!r}: {len(truths)} organisms ready in {time.time() - started:.0f} s")
    print(f"{'organism':<20} {'deploy':>7} {'train':>7} {'no cue':>7} {'clean acc':>9} {'base acc':>9}")
    for truth in truths:
        r = truth["rates"]
        print(f"{truth['organism']:<20} {r['deployment']:>7.3f} {r['training']:>7.3f} {r['no_cue']:>7.3f} "
              f"{r['clean_accuracy']:>9.3f} {r['base_clean_accuracy']:>9.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m organisms", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list the built-in organisms")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("show", help="print an organism's spec and, if built, its measured rates")
    p.add_argument("target", help="a built-in organism name or a spec YAML file")
    p.set_defaults(run=cmd_show)
    p = sub.add_parser("build", help="build one organism (cached: rebuilt only when its spec changes)")
    p.add_argument("target", help="a built-in organism name or a spec YAML file")
    p.add_argument("--base", help="override the base: 'embedded', a Hugging Face model id or a local directory")
    p.add_argument("--force", action="store_true", help="rebuild even if a matching build exists")
    p.set_defaults(run=cmd_build)
    p = sub.add_parser("zoo", help="build every member of a zoo and print the measured table")
    p.add_argument("--zoo", default="default", help=f"which zoo ({', '.join(ZOOS)}; default: default)")
    p.add_argument("--force", action="store_true", help="rebuild even if matching builds exist")
    p.set_defaults(run=cmd_zoo)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (SpecError, GateError, ModelLoadError, BaseBuildError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
