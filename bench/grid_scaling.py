"""Grid scaling: a 4-arm x N-seed grid through the runner (``--workers`` processes) against the
same runs one after another in one process.

Both sides call the same per-run function (suite.run.worker.execute) with one torch thread per
run, into separate results directories, and the bench checks that they produced the same
numbers. It prints both wall times, the speedup (sequential / runner), and the runner's
orchestration overhead:

    overhead = (workers x runner wall time - summed per-run time) / (workers x runner wall time)

the share of the workers' time not spent inside a run (process start, imports, claiming and
recording, and an idle tail when the runs do not divide evenly among the workers). With one
worker this is runner wall time minus summed run time, as a fraction of the wall time.
Per-run time is the run's own ``wall_time_s`` (RunContext start to result).

Targets (issue 6): speedup >= 1.7x on 2 cores and >= 12x on 16 cores, overhead <= 5%.

Run::

    python bench/grid_scaling.py                         # PPO CartPole, quick budget, 2 seeds
    python bench/grid_scaling.py --seeds 4 --workers 16  # a 16-core machine
    python bench/grid_scaling.py --experiment quickstart --budget smoke   # DQN, seconds
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from suite.config import (
    expand,
    load_experiment,  # noqa: E402
)
from suite.result import RunSpec  # noqa: E402
from suite.run.display import Display  # noqa: E402
from suite.run.local import run_grid  # noqa: E402
from suite.run.worker import WorkerJob, execute  # noqa: E402
from suite.store import Store  # noqa: E402

DEFAULT_EXPERIMENT = str(Path(__file__).resolve().parent / "configs" / "ppo-cartpole-grid.yaml")


def run_sequentially(runs: list[RunSpec], root: Path) -> float:
    """Every run, one after another, in this process. Returns the wall time in seconds."""
    store = Store(root)
    store.register(runs)
    started = time.perf_counter()
    for run in runs:
        execute(WorkerJob([run], str(root), "cpu", 1))
    return time.perf_counter() - started


def run_with_runner(runs: list[RunSpec], root: Path, workers: int) -> float:
    """The runner with ``workers`` processes. Returns the wall time in seconds."""
    store = Store(root)
    started = time.perf_counter()
    run_grid(runs, store, workers, "cpu", threads=1, display=Display(io.StringIO()))
    return time.perf_counter() - started


def run_times(root: Path, experiment: str) -> dict[str, tuple[str, float, dict]]:
    """run id -> (status, the run's own wall time, metrics)."""
    return {r.run_id: (r.status, r.wall_time_s, r.metrics) for r in Store(root).results(experiment)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    parser.add_argument("--budget", default="quick", choices=("smoke", "quick", "full"))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    experiment = load_experiment(args.experiment, args.budget, args.overrides, args.seeds)
    runs = expand(experiment)
    import torch

    print(
        f"{experiment.name} [{args.budget}]: {len(experiment.arms)} arms x {args.seeds} seeds ="
        f" {len(runs)} runs, trainer {experiment.trainer}; {args.workers} workers,"
        f" {os.cpu_count()} cores; torch {torch.__version__}, python {platform.python_version()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="grid-scaling-") as scratch:
        runner_root, sequential_root = Path(scratch, "runner"), Path(scratch, "sequential")
        runner_wall = run_with_runner(runs, runner_root, args.workers)
        print(f"runner ({args.workers} workers): {runner_wall:.1f} s", flush=True)
        sequential_wall = run_sequentially(runs, sequential_root)
        print(f"sequential loop (1 process):  {sequential_wall:.1f} s", flush=True)
        by_runner = run_times(runner_root, experiment.name)
        by_loop = run_times(sequential_root, experiment.name)

    statuses = sorted({status for status, _, _ in by_runner.values()})
    same = all(by_runner[i][2] == by_loop[i][2] for i in by_runner) and by_runner.keys() == (
        by_loop.keys()
    )
    summed = sum(seconds for _, seconds, _ in by_runner.values())
    slots = args.workers * runner_wall
    overhead = (slots - summed) / slots
    print(f"run statuses: {', '.join(statuses)}; identical metrics on both sides: {same}")
    print(f"summed per-run time (runner side): {summed:.1f} s over {len(by_runner)} runs")
    print(f"speedup (sequential / runner): {sequential_wall / runner_wall:.2f}x")
    print(f"orchestration overhead: {100 * overhead:.1f}% of {args.workers} x runner wall time")


if __name__ == "__main__":
    main()
