"""Command line: ``python -m suite run|list|show|report``.

Bad input (a malformed file, unknown key, wrong type, unknown optimizer/role/kwarg, a bad
``--set``) prints one line naming the file, key and valid choices, exits with status 2, and
starts nothing: every check runs before the first run is launched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path
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


def _add_reference_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reference",
        metavar="ARM",
        help="compare every arm against this arm (default: against the best arm)",
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
        choices=("local", "ray"),  # suite/run/__init__.py: EXECUTORS
        help="local: worker processes on this machine; ray: tasks on a Ray cluster, results "
        "into the local results directory (pip install 'suite[ray]'; see suite/run/ray.py)",
    )
    run.add_argument(
        "--address",
        help="Ray cluster for --executor ray: auto (`ray start` on this machine), HOST:6379, "
        "or ray://HOST:10001 (default: $RAY_ADDRESS, else a local Ray instance)",
    )
    run.add_argument("--results", default="results", help="results directory (default ./results)")
    run.add_argument(
        "--no-report",
        action="store_true",
        help="skip the report (report.md/html/json) and the closing comparison",
    )
    _add_reference_option(run)
    run.add_argument(
        "--until-decided",
        action="store_true",
        help="add seeds in batches (of the initial seed count) until no claim is inconclusive "
        "or --max-seeds is reached. Each look judges only its own seeds, at alpha / the looks "
        "planned (Bonferroni), so stopping at the first decided look keeps the error rate",
    )
    run.add_argument("--max-seeds", type=int, help="seed limit per arm for --until-decided")
    run.add_argument(
        "--tuned",
        action="store_true",
        help="tune each arm at an equal budget of trials on tuning seeds (the file's `tuning` "
        "section), then run the selected and the documented settings (suite/tuning.py)",
    )
    run.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep each finished run's last checkpoint (its model, optimizer state and replay "
        "buffer: tens of MB per RL seed); by default it is removed when the run finishes, as "
        "it exists to resume an interrupted run",
    )
    run.add_argument(
        "--stack-seeds",
        nargs="?",
        const="auto",
        metavar="METHOD",
        help="train each arm's seeds together as one stacked model in one process (dcgan: "
        "grouped or vmap, vae: vmap, sac/dqn: bmm, the suite's own SAC/DQN, not SB3; default "
        "auto): the way to fill a GPU with small models. Each seed's result is what its lone "
        "run records, to float tolerance; elementwise optimizers only, and K-FAC for sac/dqn "
        "(suite/trainers.py: STACKED)",
    )

    listing = verbs.add_parser(
        "list", help="list experiments, optimizers, specs, schedules, runs, claims"
    )
    listing.add_argument(
        "what", choices=("experiments", "optimizers", "specs", "schedules", "runs", "claims")
    )
    listing.add_argument(
        "experiment",
        nargs="?",
        help="runs, claims: only this experiment's (a name, or the path of your own file)",
    )
    listing.add_argument("--results", default="results", help="results directory (for runs)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    show = verbs.add_parser("show", help="print an experiment's resolved config")
    _add_experiment_options(show)
    show.add_argument("--tuned", action="store_true", help="also print the resolved trials")
    show.add_argument("--json", action="store_true", help="machine-readable output")

    report = verbs.add_parser(
        "report",
        help="write report.md/report.html (claims, metrics, curves, samples) and print a summary",
    )
    _add_experiment_options(report, optional=True)
    report.add_argument("--results", default="results", help="results directory")
    report.add_argument("--json", action="store_true", help="print the report's data as JSON")
    _add_reference_option(report)
    report.add_argument(
        "--all",
        action="store_true",
        help="report every experiment and budget with results, and write results/index.html",
    )
    _add_ledger_verbs(verbs)
    return parser


def _add_ledger_verbs(verbs) -> None:
    """``records`` (committed result records) and ``verdicts`` (the ledger built from them)."""
    records = verbs.add_parser(
        "records",
        help="save finished results into records/ (to commit), or load records/ into a results "
        "directory (so a new machine resumes and reports from them)",
    )
    records.add_argument("action", choices=("save", "load"))
    records.add_argument("experiment", nargs="?", help="only this experiment (default: all)")
    records.add_argument("--results", default="results", help="results directory")
    records.add_argument(
        "--root",
        help="records folder (default: the repository's records/, which the ledger reads); "
        "bench/parity-records/NAME keeps a parity bench's two sides apart",
    )
    verdicts = verbs.add_parser(
        "verdicts", help="the verdict ledger: every claim judged on the committed records"
    )
    verdicts.add_argument("--json", action="store_true", help="a list, one object per claim")
    verdicts.add_argument(
        "--write", action="store_true", help="also write VERDICTS.md at the project root"
    )


@contextlib.contextmanager
def deferred_interrupt():
    """Hold a Ctrl-C until the block is done, then raise it as KeyboardInterrupt.

    The block imports torch and stable-baselines3 (C++ extensions): a KeyboardInterrupt raised
    inside their import can end the interpreter from inside the extension (pybind11's
    error_already_set -> std::terminate, exit -6; or an exit by the signal, -2) instead of
    reaching main's one-line handler. Measured: 1 run in 12 interrupted 1 s after start.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals (and may set their handlers)
        return
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt


def _load(args) -> Any:
    from suite.config import load_experiment
    from suite.tuning import check_tuning

    arms = [a.strip() for a in args.arms.split(",") if a.strip()] if args.arms else None
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"need at least 1 seed, got {args.seeds}", key="--seeds")
    experiment = load_experiment(args.experiment, args.budget, args.overrides, args.seeds, arms)
    try:
        check_tuning(experiment)  # the `tuning` section (suite/tuning.py), before anything runs
    except ConfigError as error:
        error.file = error.file or str(experiment.path)
        raise
    return experiment


def cmd_run(args) -> int:
    with deferred_interrupt():  # torch, the trainer and SB3 import here
        from suite.config import check_experiment_data, expand
        from suite.report.build import print_summary, write_report
        from suite.report.tuning import print_tuning
        from suite.run import GridSettings, executor
        from suite.run.device import resolve_device
        from suite.run.display import make_display
        from suite.store import Store

        experiment = _load(args)
    local = args.executor == "local"
    workers = args.workers if args.workers is not None else (os.cpu_count() if local else None)
    if (workers is not None and workers < 1) or args.threads < 1:
        raise ConfigError("must be >= 1", key="--threads" if args.threads < 1 else "--workers")
    if args.address and args.executor != "ray":
        raise ConfigError("only applies with --executor ray", key="--address")
    if args.max_seeds is not None and not args.until_decided:
        raise ConfigError("only applies with --until-decided", key="--max-seeds")
    if args.until_decided and not local:
        raise ConfigError("runs with the local executor only", key="--until-decided")
    if args.tuned:
        from suite.tuning import check_tuned, run_tuned

        check_tuned(experiment, args.until_decided)
    stack = _stack_method(experiment, args)
    try:
        # On a Ray cluster the workers' devices count, not this machine's (suite/run/ray.py).
        device = resolve_device(args.device) if local else args.device
    except RuntimeError as error:
        raise ConfigError(str(error), key="--device") from None
    settings = GridSettings(
        device, args.threads, workers, stack, args.address, args.keep_checkpoints
    )
    grid = executor(args.executor)
    _check_reference(experiment, args.reference)
    check_experiment_data(experiment)
    runs = expand(experiment)
    store = Store(args.results)
    where = f"{workers} workers" if local else f"Ray {args.address or 'local'}"
    print(
        f"{experiment.name} [{experiment.budget} budget]: {len(experiment.arms)} arms x "
        f"{len(experiment.seeds)} seeds = {len(runs)} runs on {device}, {where} "
        f"-> {store.root}",
        flush=True,
    )
    notes = arm_notes(args.overrides)
    for line in _override_lines(args.overrides):
        print(line, flush=True)
    _check_recorded_results(experiment, store)  # runs finished earlier, before any new one
    _check_one_implementation(experiment, store, runs, stack)
    if args.until_decided:
        from suite.sequential import run_until_decided

        counts = run_until_decided(experiment, args.max_seeds, store, settings)
    elif args.tuned:
        counts = run_tuned(
            experiment,
            store,
            settings,
            grid,
            lambda: MetricCheck(make_display(notes=notes), experiment),
        )
    else:
        display = MetricCheck(make_display(notes=notes), experiment)
        counts = grid.execute_grid(runs, store, settings, display)
    print("runs: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    _check_recorded_results(experiment, store)
    if not args.no_report:
        # The report is written at every budget: a run ends with where to read what it found.
        # It covers every arm of the file: a run of some arms (--arms) adds to the experiment's
        # report, it does not replace it with a report of those arms alone.
        if args.arms:
            from suite.config import load_experiment

            experiment = load_experiment(
                args.experiment, args.budget, args.overrides, args.seeds, None
            )
        data, paths = write_report(experiment, store, args.reference)
        print_summary(experiment, store, data, args.reference, paths, notes)
        print_tuning(data)  # the tuned comparison, where the experiment has one
    return 0 if not counts.get("failed") else 1


class MetricCheck:
    """A display that checks the first run to finish: a metric the file or a claim names that
    the run did not record stops the grid with one line naming the metrics it did record, as
    validation does for a trainer that declares them (``recorded_metrics``). Without this the
    grid would run to its end and report empty cells and "not run" claims, status 0."""

    def __init__(self, display, experiment):
        self.display, self.experiment, self.checked = display, experiment, False

    def event(self, kind: str, run_id: str, payload: dict[str, Any]) -> None:
        self.display.event(kind, run_id, payload)
        if kind == "end" and payload.get("status") == "done" and not self.checked:
            self.checked = True
            _check_recorded(self.experiment, payload.get("metrics") or {})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.display, name)


def _check_recorded(experiment, recorded) -> None:
    from suite.config import check_recorded

    try:
        check_recorded(experiment.metrics, experiment.claims, set(recorded), experiment.trainer)
    except ConfigError as error:
        error.file = str(experiment.path)
        error.message += " (finished runs are kept: fix the name and run again)"
        raise


def _check_recorded_results(experiment, store) -> None:
    """The metric check (MetricCheck) on the runs of this configuration that finished earlier: a
    name one of them recorded is a real name, though runs from before a trainer recorded it lack
    it (the DCGAN's eval/classes_classifier)."""
    from suite.config import select_results

    done = [r for r in select_results(experiment, store) if r.status == "done"]
    if done:
        _check_recorded(experiment, set().union(*(r.metrics for r in done)))


def _check_reference(experiment, reference: str | None) -> None:
    if reference is not None and reference not in experiment.arms:
        raise ConfigError(
            f"no arm named {reference!r}", key="--reference", choices=list(experiment.arms)
        )


def arm_notes(overrides: list[str]) -> dict[str, str]:
    """arm -> what ``--set`` changed in it ("q.kwargs.eps=1e-6"), for every listing of runs:
    an overridden arm keeps its name, and this says it is not the file's arm."""
    notes: dict[str, list[str]] = {}
    for assignment in overrides:
        path, _, value = assignment.partition("=")
        keys = path.strip().split(".")
        if len(keys) > 2 and keys[0] == "arms":
            notes.setdefault(keys[1], []).append(f"{'.'.join(keys[2:])}={value.strip()}")
    return {arm: ", ".join(changes) for arm, changes in notes.items()}


def _override_lines(overrides: list[str]) -> list[str]:
    """One line naming the --set overrides that apply to every arm (task, seeds, ...)."""
    shared = [o.strip() for o in overrides if not o.strip().startswith("arms.")]
    return [f"--set (every arm): {', '.join(shared)}"] if shared else []


def _check_one_implementation(experiment, store, runs, stack: str | None) -> None:
    """An arm's runs all come from one implementation: SAC/DQN stacks are the suite's own
    (agents/stacked.py, ``details.implementation``), lone runs are stable-baselines3, so adding
    seeds one way to an arm whose finished runs went the other way would pool two programs
    under one arm name."""
    from suite.config import select_results
    from suite.result import FINISHED
    from suite.trainers import STACKED, StackTrainer, hook, stacked_module

    if experiment.trainer not in STACKED:
        return
    own = hook(stacked_module(experiment.trainer), StackTrainer, "IMPLEMENTATION")
    if own is None:  # a stack that trains what the lone trainer trains (DCGAN, VAE)
        return
    # Only runs that never started: an interrupted one resumes the way it began (worker.py).
    new_arms = {run.arm for run in runs if store.status(run.run_id) is None}
    for result in select_results(experiment, store):
        other = bool(result.details.get("implementation")) != (stack is not None)
        if result.arm in new_arms and other and result.status in FINISHED:
            was = "stacked (agents/stacked.py)" if stack is None else "lone (stable-baselines3)"
            now = "lone (stable-baselines3)" if stack is None else "stacked (agents/stacked.py)"
            raise ConfigError(
                f"its finished runs are {was} and these would be {now}: one arm would pool two "
                f"implementations; run {'with' if stack is None else 'without'} --stack-seeds, "
                "or into another --results directory",
                key=f"arms.{result.arm}",
                file=str(experiment.path),
            )


def _stack_method(experiment, args) -> str | None:
    """``--stack-seeds``'s method for this experiment, checked before anything runs."""
    if args.stack_seeds is None:
        return None
    from suite.optimizers import check_stackable
    from suite.trainers import StackTrainer, hook, stack_method, stacked_module

    if args.executor != "local":
        raise ConfigError("runs with the local executor only", key="--stack-seeds")
    method = stack_method(experiment.trainer, args.stack_seeds)
    # A stack module may batch more than the elementwise optimizers (agents/stacked.py: K-FAC).
    own_check = hook(stacked_module(experiment.trainer), StackTrainer, "check_stackable")
    check_stackable = own_check or check_stackable
    for arm, specs in experiment.arms.items():
        for role, spec in specs.items():
            try:
                check_stackable(role, spec)
            except ValueError as error:
                message = f"{error} (--stack-seeds: run this arm without it)"
                raise ConfigError(message, key=f"arms.{arm}") from None
    return method


def cmd_list(args) -> int:
    from suite.report import listing

    if args.experiment and args.what not in ("runs", "claims"):
        raise ConfigError(f"list {args.what} takes no experiment", key=args.experiment)
    rows = listing.LISTINGS[args.what](args)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        listing.print_rows(rows)
    return 0


def cmd_show(args) -> int:
    from suite.config import arm_task_changes, run_command

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
            | ({"task": arm_task_changes(experiment, arm)} if arm in experiment.arm_tasks else {})
            for arm, specs in experiment.arms.items()
        },
        "metrics": experiment.metrics,
        "claims": [claim.to_dict() for claim in experiment.claims],
    }
    if args.tuned:
        from suite.tuning import check_tuned, show

        check_tuned(experiment)
        resolved.update(show(experiment))
    if args.json:
        print(json.dumps(resolved, indent=2))
    else:
        import yaml

        print(yaml.safe_dump(resolved, sort_keys=False, width=100), end="")
    return 0


def cmd_report(args) -> int:
    from suite.report.build import print_summary, write_all, write_report
    from suite.report.tuning import print_tuning
    from suite.store import Store

    if args.all == (args.experiment is not None):
        raise ConfigError("give an experiment or --all (not both)", key="report")
    if not os.path.isdir(args.results):  # a report writes nothing where nothing has run
        raise ConfigError(f"no results directory {args.results!r}: nothing has run there yet")
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
    _check_reference(experiment, args.reference)
    _check_has_runs(experiment, store)
    data, paths = write_report(experiment, store, args.reference)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print_summary(experiment, store, data, args.reference, paths, arm_notes(args.overrides))
    print_tuning(data)
    return 0


def _check_has_runs(experiment, store) -> None:
    """A report of no runs is an error naming the budgets that have runs, not empty files."""
    from suite.config import BUDGETS, select_results

    name, budget = experiment.name, experiment.budget
    if select_results(experiment, store):
        return
    here = store.rows(name, budget)
    elsewhere = [b for b in BUDGETS if b != budget and store.rows(name, b)]
    if here:
        problem = f"none of the {len(here)} runs at the {budget} budget has these settings"
    else:
        problem = f"no runs at the {budget} budget in {store.root}"
    if elsewhere:
        hint = f"runs at: {', '.join(elsewhere)} (--budget {elsewhere[0]})"
    else:
        hint = f"no budget of {name} has runs there"
    raise ConfigError(f"{problem}; {hint}; no report written", file=name)


def cmd_records(args) -> int:
    from suite.paths import PROJECT_ROOT
    from suite.records import load, read_records, save
    from suite.store import Store

    root = Path(args.root) if args.root else PROJECT_ROOT / "records"
    store = Store(args.results)
    if args.action == "save":
        counts = save(store, root, args.experiment)
        for path, n in counts.items():
            print(f"{path}: {n} records")
        print(f"saved {sum(counts.values())} records in {len(counts)} files under {root}")
    else:
        added = load(store, read_records(root, args.experiment))
        print(f"loaded {added} records into {store.root} (finished runs; `run` skips them)")
    return 0


def cmd_verdicts(args) -> int:
    from suite.paths import PROJECT_ROOT
    from suite.report import ledger

    rows = ledger.build(PROJECT_ROOT / "records")
    text = ledger.markdown(rows)
    if args.write:
        (PROJECT_ROOT / ledger.LEDGER_FILE).write_text(text, encoding="utf-8")
    print(json.dumps(rows, indent=2) if args.json else text)
    return 0


COMMANDS = {
    "run": cmd_run,
    "list": cmd_list,
    "show": cmd_show,
    "report": cmd_report,
    "records": cmd_records,
    "verdicts": cmd_verdicts,
}


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.verb](args)
    except (ConfigError, ResultsError) as error:
        # One line whatever the input held (a key may contain \r or U+2028).
        print(f"error: {' '.join(str(error).splitlines())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        # A second Ctrl-C while shutting down must not print a traceback after this line. Only
        # as the program (argv from the command line): a caller of main([...]) keeps its
        # handler, and the processes it starts later would otherwise inherit SIGINT ignored.
        if argv is None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`suite list optimizers --json | head`): stop quietly. Python
        # would still try to flush stdout at exit and complain, so point it at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
