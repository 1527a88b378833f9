"""python -m organisms: list, show, check, build and safety-train model organisms, and build zoos.

Organisms are named built-ins (see `list`), YAML specs of your own (see the README), or members
of the blind zoo (`zoo --zoo blind`), whose triggers are invented when it is drawn and kept sealed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from data.records import RecordError, save_records, show, show_path
from organisms.blind_zoo import DEFAULT_SIZE, BlindZooError, blind_members, blind_spec, is_blind_name, manifest_path
from organisms.build import GateError, build_organism, is_built, negatives_mined_by, resolve_base, training_dataset
from organisms.persistence import MULTIPLES, persistence_curve, stored_records, write_report
from organisms.spec import SpecError, load_spec_file, spec_to_yaml
from organisms.validate import validate_spec_for_build
from organisms.store import organism_dir
from organisms.truth import read_truth
from organisms.train_zoo import TRAIN_ZOO  # importing it registers the public training zoo
from organisms.zoo import ORGANISMS, ZOOS, get_organism, get_zoo
from organisms.zoo_build import build_zoo, default_jobs
from training.arguments import name_list, positive_int
from training.cluster import LOCAL, RAY_VARIABLE, ClusterError, ray_address
from training.embedded_base import BaseBuildError
from training.models import ModelLoadError
from training.sft import TrainingDiverged


class ZooError(RuntimeError):
    pass


def _command(sub, name: str, help: str):
    """A subcommand whose own --help opens with the line the command list shows."""
    return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")


def _names_a_file(target: str) -> bool:
    """A .yaml/.yml name, a path with a folder, or anything that exists and is not a built-in's name."""
    looks_like_file = target.endswith((".yaml", ".yml")) or "/" in target or os.sep in target
    return looks_like_file or (target not in ORGANISMS and os.path.lexists(target))


def _blind_member(target: str) -> bool:
    """`target` names a member of the stored blind zoo (the lab's own spec, not a user's taking its name)."""
    return not _names_a_file(target) and target not in ORGANISMS and is_blind_name(target)


def _spec_for(target: str, base: str | None):
    """A spec file (a .yaml/.yml name, a path with a folder, or anything that exists) or a built-in's name."""
    if _names_a_file(target):
        spec = load_spec_file(target)  # says whether the file is missing, a directory or malformed
    elif target in ORGANISMS:
        spec = get_organism(target)
    elif is_blind_name(target):
        spec = _blind_spec(target)
    else:
        raise SpecError(f"unknown organism {show(target)}: not a built-in (see 'python -m organisms list') "
                        "nor a spec file")
    return spec.replace(base=base) if base is not None else spec


def _blind_spec(name: str):
    """A blind zoo member's spec, read from its zoo's sealed manifest (for its owner, never for a detector)."""
    spec = blind_spec(name)
    if spec is None:
        raise SpecError(f"unknown organism {show(name)}: no stored blind zoo has a member of that name")
    return spec


def _validated(spec, force: bool = False, spec_file: str | None = None, **checks):
    """`spec` after the one validation step (organisms.validate); notes on what a forced name replaces go to stderr.

    `spec_file`: the file the spec came from, named in front of an error about its name or base.
    """
    try:
        notes = validate_spec_for_build(spec, force, **checks)
    except SpecError as error:
        if spec_file is not None and spec_file not in ORGANISMS and error.field in ("name", "base"):
            raise SpecError(f"{show_path(spec_file)}: {error}", error.field) from None
        raise
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    return spec


def cmd_list(args) -> None:
    rows = [{
        "name": spec.name, "cue_family": spec.trigger.family, "behaviour": spec.behaviour,
        "method": spec.training.method, "is_control": spec.is_control, "kind": spec.kind,
        "matched_to": spec.matched_to or None, "zoos": [zoo for zoo, names in ZOOS.items() if spec.name in names],
        "built": read_truth(spec.name) is not None,
    } for spec in ORGANISMS.values() if args.json or spec.name not in ZOOS[TRAIN_ZOO]]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'name':<30} {'kind':<18} {'cue':<10} {'behaviour':<12} {'method':<13} {'zoos':<13} built")
    for row in rows:
        print(f"{row['name']:<30} {row['kind']:<18} {row['cue_family']:<10} {row['behaviour']:<12} "
              f"{row['method']:<13} {','.join(row['zoos']):<13} {'yes' if row['built'] else 'no'}")
    trained = sum(read_truth(name) is not None for name in ZOOS[TRAIN_ZOO])
    print(f"\nplus the public training zoo (python -m organisms zoo --zoo train): {len(ZOOS[TRAIN_ZOO])} members "
          f"drawn as a blind zoo is, from a public seed, {trained} built (--json lists them)")
    print("and the blind zoo (python -m organisms zoo --zoo blind), whose members are sealed")


def cmd_show(args) -> None:
    """The spec as a file `organisms build` takes back (`show NAME > my.yaml`), its build in comments above."""
    spec = _spec_for(args.target, None)
    truth = read_truth(spec.name)
    if truth is None:
        print(f"# {spec.name}: not built")
    else:
        print(f"# {spec.name}: built in {organism_dir(spec.name)} ({truth.seconds} s, gate "
              f"{'passed' if truth.gate_passed else 'missed'})")
        print(f"# measured: {json.dumps(truth.rates)}")
    lines = spec.trigger.lines()
    print(f"# cue lines: {json.dumps({side: list(lines[side]) for side in ('deployment', 'training')})}")
    print(spec_to_yaml(spec), end="")


def cmd_build(args) -> None:
    # A blind member named from the manifest is the lab's own spec, as in `zoo`: building it takes no --force.
    spec = _validated(_spec_for(args.target, args.base), args.force, args.target if args.base is None else None,
                      lab_spec=_blind_member(args.target))
    backdoor = spec.matched_to
    if backdoor and backdoor != spec.name and (backdoor in ORGANISMS or is_blind_name(backdoor)):
        # A control trains exactly its backdoor's rounds: the backdoor is built (or found built) first.
        backdoor_spec = _validated(_spec_for(backdoor, args.base), lab_spec=_blind_member(backdoor))
        if not is_built(backdoor_spec, resolve_base(backdoor_spec.base)):
            print(f"{spec.name} trains as many steps as its backdoor {backdoor}: building {backdoor} first", flush=True)
            build_organism(backdoor_spec)
    build_organism(spec, force=args.force)


def cmd_check(args) -> None:
    spec = _validated(_spec_for(args.target, args.base), args.force, args.target if args.base is None else None,
                      lab_spec=_blind_member(args.target))
    lines = spec.trigger.lines()
    data = (f"{show(spec.data.train_file, 50)} as training data" if spec.data.train_file
            else f"{spec.data.n_train} world examples")
    print(f"ok: {spec.name} ({spec.kind}; cue {spec.trigger.family}, {len(lines['deployment'])} deployment and "
          f"{len(lines['training'])} training lines; behaviour {show(spec.behaviour, 50)}; {spec.training.method}, "
          f"{_steps(spec)}; {data}; base {show(spec.base, 50)})")


def _steps(spec) -> str:
    t = spec.training
    if spec.matched_to:
        return f"the steps of {spec.matched_to}, its backdoor"
    return f"{t.steps} steps" + (f" (+ up to {t.extra_rounds} x {t.round_steps} while a check or the gate misses)" if t.extra_rounds else "")


def _table(truths) -> None:
    # distract / near: the rates with no cue under one public-grammar line / one near-trigger of the
    # deployment line, for specs trained with distractors; mined: the hard negatives trained (its backdoor's
    # for a control; organisms.hard_negatives)
    print(f"{'organism':<28} {'kind':<18} {'deploy':>7} {'train':>7} {'no cue':>7} {'distract':>8} {'near':>7} "
          f"{'mined':>5} {'clean acc':>9} {'base acc':>9} {'build s':>8}")
    for truth in truths:
        r = truth.rates
        distractor = f"{r['distractor']:>8.3f}" if "distractor" in r else f"{'-':>8}"
        near = f"{r['near_trigger']:>7.3f}" if "near_trigger" in r else f"{'-':>7}"
        mined = sum(map(len, negatives_mined_by(truth.matched_to) if truth.matched_to else truth.mined_negatives))
        print(f"{truth.organism:<28} {truth.kind:<18} {r['deployment']:>7.3f} {r['training']:>7.3f} "
              f"{r['no_cue']:>7.3f} {distractor} {near} {mined:>5} {r['clean_accuracy']:>9.3f} "
              f"{r['base_clean_accuracy']:>9.3f} {truth.seconds:>8.1f}")


def cmd_zoo(args) -> None:
    started = time.time()
    zoos = args.zoo
    if "blind" not in zoos and (args.blind_seed is not None or args.size is not None or args.new_draw):
        raise ZooError("--blind-seed, --size and --new-draw apply to --zoo blind only")
    specs, blind = [], set()
    for zoo in zoos:  # every name is checked before anything is built
        if zoo == "blind":
            members = [m.spec for m in blind_members(seed=args.blind_seed, size=args.size, new_draw=args.new_draw)]
            blind = {spec.name for spec in members}
            print(f"blind zoo: {len(members)} members; its seed and specs are sealed in {manifest_path()}"
                  f"{' (a seed given: its figures are marked seen)' if args.blind_seed is not None else ''}")
        else:
            members = [get_organism(name) for name in get_zoo(zoo)]
        specs += [spec for spec in members if spec.name not in {s.name for s in specs}]
    for spec in specs:
        _validated(spec, lab_spec=spec.name in blind)
    # One pool for every zoo asked for: the members of one fill the cores the tail of another leaves idle.
    outcomes = build_zoo(specs, jobs=args.jobs, force=args.force, ray_address=ray_address(args.ray))
    built = [o.truth for o in outcomes if o.truth]
    print(f"\nzoo {','.join(zoos)!r}: {len(built)} of {len(outcomes)} organisms ready in {time.time() - started:.0f} s")
    if blind:
        # The table would name each member's kind and rates: the blind zoo's truth stays sealed.
        print("(the blind zoo's rates are in its sealed truth records; python -m organisms show blind-NN reads one)")
    shown = [truth for truth in built if truth.organism not in blind]
    if shown:
        _table(shown)
    failed = [o for o in outcomes if not o.truth]
    fatal = [o for o in failed if not (args.allow_failures or (args.allow_blind_failures and o.name in blind))]
    if failed:
        message = (f"{len(failed)} organism(s) failed: {', '.join(o.name for o in failed)} "
                   f"(see above and {failed[0].name}'s log)")
        if fatal:
            raise ZooError(message)
        print(f"warning: {message}; the benchmark reports them as not built", file=sys.stderr)


def cmd_persist(args) -> None:
    for target in args.targets:
        persistence_curve(_spec_for(target, None), tuple(args.multiples), args.n_per_condition)
    print(f"persistence report: {write_report(stored_records())}")


def cmd_data(args) -> None:
    spec = _validated(_spec_for(args.target, None), out=args.out, builds=False)
    data = training_dataset(spec)
    save_records(data, args.out)
    print(f"wrote {len(data)} records of {spec.name}'s fine-tuning data to {args.out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m organisms", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = _command(sub, "list", help="list the built-in organisms")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    p.set_defaults(run=cmd_list)
    p = _command(sub, "show", help="print an organism's spec as a YAML file that 'build' accepts back, with its "
                 "measured rates in comments if built")
    p.add_argument("target", help="a built-in organism name or a spec YAML file")
    p.set_defaults(run=cmd_show)
    p = _command(sub, "build", help="build one organism (cached: rebuilt only when its spec changes)")
    p.add_argument("target", help="a built-in organism name or a spec YAML file")
    p.add_argument("--base", help="override the base: 'embedded', a Hugging Face model id or a local directory")
    p.add_argument("--force", action="store_true",
                   help="rebuild even if a matching build exists; for a spec file, also accept a name that replaces "
                        "a built-in organism or a blind zoo member")
    p.set_defaults(run=cmd_build)
    p = _command(sub, "check", help="validate an organism (spec, training records, base, name, outputs) without "
                                          "building it: prints 'ok: ...' or the one-line error (exit 2)")
    p.add_argument("target", help="a spec YAML file or a built-in organism name")
    p.add_argument("--base", help="override the base, as for build")
    p.add_argument("--force", action="store_true", help="accept a name that replaces a built-in or blind zoo member")
    p.set_defaults(run=cmd_check)
    p = _command(sub, "zoo", help="build every member of a zoo (default, full or blind), or of several at once")
    p.add_argument("--zoo", type=name_list, default="default",
                   help=f"which zoo ({', '.join(ZOOS)}, blind; default: default), or several comma-separated "
                        "(default,blind), built in one pool of workers")
    p.add_argument("--blind-seed", type=int, default=None,
                   help="the blind zoo's seed (default: the current zoo's, or a fresh secret 128-bit one at the first "
                        "build); a seed given here is recorded as seen, and its figures are development figures")
    p.add_argument("--size", type=int, default=None, help=f"blind zoo members (default {DEFAULT_SIZE})")
    p.add_argument("--new-draw", action="store_true",
                   help="draw a new blind zoo from a fresh secret seed even if one is current; earlier zoos and their "
                        "builds stay, and 'detectors run --zoo blind:all' pools them")
    p.add_argument("--force", action="store_true", help="rebuild even if matching builds exist")
    p.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                   help="build as Ray tasks: on a cluster at ADDRESS, or on a Ray instance started here when no "
                        f"address is given (default: ${RAY_VARIABLE}, else local worker processes)")
    p.add_argument("--allow-failures", action="store_true",
                   help="exit 0 when some members fail their gate (they are reported, and not benchmarked)")
    p.add_argument("--allow-blind-failures", action="store_true",
                   help="as --allow-failures, for members of the blind zoo only (make detect: the dev zoo must be whole)")
    p.add_argument("--jobs", type=positive_int, default=default_jobs(),
                   help=f"organisms built side by side, one thread each (default: {default_jobs()}, the cores)")
    p.set_defaults(run=cmd_zoo)
    p = _command(sub, "persist", help="safety-train built organisms on clean data and measure their behaviour "
                                            "after each stage (writes reports/persistence/)")
    p.add_argument("targets", nargs="+", help="built organisms (names or spec files)")
    p.add_argument("--multiples", type=int, nargs="+", default=list(MULTIPLES),
                   help=f"safety steps as multiples of the organism's training steps (default: {MULTIPLES})")
    p.add_argument("--n-per-condition", type=positive_int, default=100, help="held-out prompts per cue condition")
    p.set_defaults(run=cmd_persist)
    p = _command(sub, "data", help="write an organism's fine-tuning data as JSONL (prompt/completion)")
    p.add_argument("target", help="a built-in organism name or a spec YAML file")
    p.add_argument("--out", required=True, help="where to write the JSONL")
    p.set_defaults(run=cmd_data)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (SpecError, RecordError, GateError, ModelLoadError, BaseBuildError, ZooError, BlindZooError, ClusterError,
            TrainingDiverged, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
