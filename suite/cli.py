"""Command line: ``python -m suite run|list|show|report``.

Bad input (a malformed file, unknown key, wrong type, unknown optimizer/role/kwarg, a bad
``--set``) prints one line naming the file, key and valid choices, exits with status 2, and
starts nothing: every check runs before the first run is launched.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import asdict
from typing import Any

from suite.errors import ConfigError, ResultsError

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (status 2), like a config error."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _add_experiment_options(parser: argparse.ArgumentParser, optional: bool = False) -> None:
    parser.add_argument(
        "experiment",
        nargs="?" if optional else None,
        help="a name from `suite list experiments`, or a path to your own experiment file (.yaml)",
    )
    parser.add_argument(
        "--budget",
        default="quick",
        choices=("smoke", "quick", "full"),
        help="smoke: seconds (tests); quick: minutes; full: the documented budget (default: quick)",
    )
    parser.add_argument("--seeds", type=int, help="run seeds 0..N-1 instead of the file's seeds")
    parser.add_argument("--arms", help="comma-separated subset of arms to run")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any key of the experiment file, e.g. "
        "--set arms.adam.q.lr=1e-4 or --set task.total_timesteps=20000 "
        "(value parsed as YAML, then type-checked); repeatable",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="suite",
        description="Which optimizer belongs with which model: run "
        "per-role optimizer comparisons over seeds and check documented claims.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    run = verbs.add_parser(
        "run",
        help="run every unfinished run of an experiment (resumes)",
        description="Expand arms x seeds into runs and run the unfinished "
        "ones; finished runs are skipped, interrupted runs resume from their "
        "last checkpoint.",
    )
    _add_experiment_options(run)
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="runs in parallel processes (default: the number of CPU cores)",
    )
    run.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per run (default 1: small RL networks run fastest so)",
    )
    run.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="auto: cuda if available, else cpu",
    )
    run.add_argument(
        "--executor",
        default="local",
        choices=("local", "ray"),
        help="local: worker processes on this machine; ray: tasks on a Ray cluster, results "
        "into the local results directory (pip install 'suite[ray]'; see suite/executors.py)",
    )
    run.add_argument(
        "--address",
        help="Ray cluster for --executor ray: auto (`ray start` on this machine), HOST:6379, "
        "or ray://HOST:10001 (default: $RAY_ADDRESS, else a local Ray instance)",
    )
    run.add_argument("--results", default="results", help="results directory (default ./results)")
    run.add_argument("--no-report", action="store_true", help="skip the summary table at the end")
    run.add_argument(
        "--until-decided",
        action="store_true",
        help="add seeds in batches (of the initial seed count) until no claim is inconclusive "
        "or --max-seeds is reached. Optional stopping: the CIs are not corrected for it",
    )
    run.add_argument("--max-seeds", type=int, help="seed limit per arm for --until-decided")
    run.add_argument(
        "--stack-seeds",
        nargs="?",
        const="auto",
        metavar="METHOD",
        help="train each arm's seeds together as one stacked model in one process (dcgan: "
        "grouped or vmap, vae: vmap; default auto): the way to fill a GPU with small models. "
        "Each seed's result is what its lone run records, to float tolerance; elementwise "
        "optimizers only (gans/stacked.py)",
    )

    listing = verbs.add_parser("list", help="list experiments, optimizers, schedules, runs, claims")
    listing.add_argument(
        "what", choices=("experiments", "optimizers", "schedules", "runs", "claims")
    )
    listing.add_argument("--results", default="results", help="results directory (for runs)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    show = verbs.add_parser("show", help="print an experiment's resolved config")
    _add_experiment_options(show)
    show.add_argument("--json", action="store_true", help="machine-readable output")

    report = verbs.add_parser(
        "report",
        help="write report.md/report.html (claims, metrics, curves, samples) and print a summary",
    )
    _add_experiment_options(report, optional=True)
    report.add_argument("--results", default="results", help="results directory")
    report.add_argument("--json", action="store_true", help="print the report's data as JSON")
    report.add_argument(
        "--all",
        action="store_true",
        help="report every experiment and budget with results, and write results/index.html",
    )
    return parser


def _load(args) -> Any:
    from suite.config import load_experiment

    arms = [a.strip() for a in args.arms.split(",") if a.strip()] if args.arms else None
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"need at least 1 seed, got {args.seeds}", key="--seeds")
    return load_experiment(args.experiment, args.budget, args.overrides, args.seeds, arms)


def cmd_run(args) -> int:
    from suite.progress import make_display
    from suite.report import print_summary
    from suite.runner import expand, resolve_device, run_grid
    from suite.store import Store

    experiment = _load(args)
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1 or args.threads < 1:
        raise ConfigError("must be >= 1", key="--workers" if workers < 1 else "--threads")
    if args.address and args.executor != "ray":
        raise ConfigError("only applies with --executor ray", key="--address")
    if args.max_seeds is not None and not args.until_decided:
        raise ConfigError("only applies with --until-decided", key="--max-seeds")
    if args.until_decided and args.executor != "local":
        raise ConfigError("runs with the local executor only", key="--until-decided")
    stack = _stack_method(experiment, args)
    try:
        # On a Ray cluster the workers' devices count, not this machine's (suite/executors.py).
        device = resolve_device(args.device) if args.executor == "local" else args.device
    except RuntimeError as error:
        raise ConfigError(str(error), key="--device") from None
    runs = expand(experiment)
    store = Store(args.results)
    where = f"{workers} workers" if args.executor == "local" else f"Ray {args.address or 'local'}"
    print(
        f"{experiment.name} [{experiment.budget} budget]: {len(experiment.arms)} arms x "
        f"{len(experiment.seeds)} seeds = {len(runs)} runs on {device}, {where} "
        f"-> {store.root}",
        flush=True,
    )
    if args.executor == "ray":
        from suite.executors import run_grid_ray

        counts = run_grid_ray(
            runs, store, device, args.threads, make_display(), args.address, args.workers
        )
    elif args.until_decided:
        counts = _run_until_decided(experiment, args.max_seeds, store, workers, device, args, stack)
    else:
        counts = run_grid(runs, store, workers, device, args.threads, make_display(), stack)
    print("runs: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if not args.no_report:
        print_summary(experiment, store)
    return 0 if not counts.get("failed") else 1


def _stack_method(experiment, args) -> str | None:
    """``--stack-seeds``'s method for this experiment, checked before anything runs."""
    if args.stack_seeds is None:
        return None
    from suite.trainers import stack_method

    if args.executor != "local":
        raise ConfigError("runs with the local executor only", key="--stack-seeds")
    method = stack_method(experiment.trainer, args.stack_seeds)
    from gans.stacked import check_stackable

    for arm, specs in experiment.arms.items():
        for role, spec in specs.items():
            try:
                check_stackable(role, spec)
            except ValueError as error:
                message = f"{error} (--stack-seeds: run this arm without it)"
                raise ConfigError(message, key=f"arms.{arm}") from None
    return method


def _run_until_decided(
    experiment, max_seeds, store, workers, device, args, stack=None
) -> dict[str, int]:
    """Run the grid, judge the claims, and add seeds until none is inconclusive."""
    from suite.progress import make_display
    from suite.report import claim_outcomes, select_results
    from suite.runner import expand, run_grid

    if not experiment.claims:
        raise ConfigError("this experiment has no claims to decide", key="--until-decided")
    if max_seeds is None or max_seeds < len(experiment.seeds):
        raise ConfigError(
            f"--until-decided needs --max-seeds >= the {len(experiment.seeds)} seeds planned",
            key="--max-seeds",
        )
    counts: dict[str, int] = {}

    def run_batch(seeds: list[int]) -> list[str]:
        nonlocal counts
        batch = dataclasses.replace(experiment, seeds=seeds)
        counts = run_grid(
            expand(batch), store, workers, device, args.threads, make_display(), stack
        )
        outcomes = claim_outcomes(batch, select_results(batch, store))
        print(
            f"until-decided, {len(seeds)} seeds: "
            + ", ".join(f"{o.claim.id} {o.verdict}" for o in outcomes),
            flush=True,
        )
        return [o.verdict for o in outcomes]

    until_decided(experiment.seeds, max_seeds, run_batch)
    return counts


def until_decided(seeds: list[int], max_seeds: int, run_batch) -> list[int]:
    """Call ``run_batch(seeds)`` with more seeds until no verdict it returns is inconclusive.

    Seeds grow by batches of ``len(seeds)`` (new seeds continue after the largest), never past
    ``max_seeds``. Stopping once a CI excludes 0 is optional stopping, which inflates the false
    positive rate somewhat (Colas et al. 2018, Sec. 5): read such verdicts with that in mind.

    :returns: the seeds of the last batch.
    """
    batch = len(seeds)
    while True:
        verdicts = run_batch(seeds)
        if "inconclusive" not in verdicts or len(seeds) >= max_seeds:
            return seeds
        more = min(batch, max_seeds - len(seeds))
        seeds = seeds + list(range(max(seeds) + 1, max(seeds) + 1 + more))


def cmd_list(args) -> int:
    from suite import listing

    rows = listing.LISTINGS[args.what](args)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        listing.print_rows(rows)
    return 0


def cmd_show(args) -> int:
    from suite.config import run_command

    experiment = _load(args)
    resolved = {
        "experiment": experiment.name,
        "file": str(experiment.path),
        "command": run_command(experiment.path),
        "trainer": experiment.trainer,
        "budget": experiment.budget,
        "description": experiment.description,
        "task": asdict(experiment.task),
        "seeds": experiment.seeds,
        "arms": {
            arm: {role: spec.to_dict() for role, spec in specs.items()}
            for arm, specs in experiment.arms.items()
        },
        "metrics": experiment.metrics,
        "claims": [claim.to_dict() for claim in experiment.claims],
    }
    if args.json:
        print(json.dumps(resolved, indent=2))
    else:
        import yaml

        print(yaml.safe_dump(resolved, sort_keys=False, width=100), end="")
    return 0


def cmd_report(args) -> int:
    from suite.report import print_summary, write_all, write_report
    from suite.store import Store

    if args.all == (args.experiment is not None):
        raise ConfigError("give an experiment or --all (not both)", key="report")
    store = Store(args.results)
    if args.all:
        entries, paths = write_all(store)
        if args.json:
            print(json.dumps(entries, indent=2))
            return 0
        for entry in entries:
            for claim in entry["claims"]:
                budget = entry["budget"] or "no results"
                print(f"{entry['experiment']} [{budget}] {claim['id']}: {claim['verdict']}")
        print(f"index: {paths['html']}\n       {paths['md']}")
        return 0
    experiment = _load(args)
    data, paths = write_report(experiment, store)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print_summary(experiment, store, data)
    print(f"report: {paths['html']}\n        {paths['md']}")
    return 0


COMMANDS = {"run": cmd_run, "list": cmd_list, "show": cmd_show, "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.verb](args)
    except (ConfigError, ResultsError) as error:
        # One line whatever the input held (a key may contain \r or U+2028).
        print(f"error: {' '.join(str(error).splitlines())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
