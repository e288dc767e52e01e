"""The local executor: every unfinished run of a grid in its own process, ``--workers`` at a time.

Each run executes in its own process forked from a forkserver (one torch thread each unless told
otherwise): a crash or an out-of-memory kill fails that run and not the grid, and the peak memory
recorded is that run's own. What one process does is suite/run/worker.py.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import signal
import threading
import time

from suite.errors import ResultsError
from suite.result import FINISHED, RunSpec
from suite.run.worker import EXIT_RESULTS_ERROR, WorkerJob, child_main, on_sigterm, record_crash
from suite.store import Store


def process_context(trainers: set[str], stacked: bool = False):
    """Where run processes come from: a fresh process per run, forked from a forkserver that has
    imported torch and the grid's trainer modules once.

    Each run still gets its own process (a crash or OOM kill fails one run; peak memory is its
    own), without paying torch's and stable-baselines3's import (2-4 s) again per run. The
    forkserver itself runs no torch ops, so no thread pool is forked. Where there is no
    forkserver (Windows), runs are spawned.

    ``torch._dynamo`` is preloaded too: torch.optim imports it lazily at the first
    ``optimizer.step()`` (with sympy and triton, about 900 modules), which cost every run 2.5-3.5
    s on a 2-core machine; measured with bench/grid_scaling.py (bench/README.md).
    """
    from suite.trainers import STACKED, module_name

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    modules = {module_name(t) for t in trainers}  # a table row, or a user's package.module
    if stacked:
        modules |= {STACKED[t][0] for t in trainers if t in STACKED}
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(
        ["torch", "torch._dynamo", "suite.run.worker", "suite.provenance", *sorted(modules)]
    )
    return context


def start_process_server(context) -> None:
    """Start ``context``'s forkserver and wait for its preloads, before any run starts.

    It starts with Ctrl-C ignored, as it ignores it itself once its preloads are imported: a
    Ctrl-C while it imports torch (the first seconds) would otherwise print its traceback. The
    run processes it forks ignore SIGINT too (suite/run/worker.py); this process still gets it
    and stops them. Then a process that needs nothing from this one waits for the imports: the
    grid's first start would otherwise block on them, and a Ctrl-C then leaves a half-started
    run process whose queue is gone (a FileNotFoundError traceback).
    """
    from multiprocessing import forkserver

    if context.get_start_method() != "forkserver":
        return
    main = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None  # inherited
    try:
        forkserver.ensure_running()
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    warm_up = context.Process(target=os.getpid)
    warm_up.start()
    warm_up.join()


def jobs(todo: list[RunSpec], stack: str | None) -> list[list[RunSpec]]:
    """What each worker process runs: one run each, or with ``stack`` the unfinished seeds of
    each arm together (one stacked model per arm)."""
    if stack is None:
        return [[run] for run in todo]
    by_arm: dict[str, list[RunSpec]] = {}
    for run in todo:
        by_arm.setdefault(run.arm, []).append(run)
    return list(by_arm.values())


def run_grid(
    runs: list[RunSpec],
    store: Store,
    workers: int,
    device: str,
    threads: int,
    display,
    stack: str | None = None,
    keep_checkpoints: bool = False,
) -> dict[str, int]:
    """Run every unfinished run, ``workers`` processes at a time. Returns counts by status.

    :param stack: None (a process per run), or a stacking method of the trainer (suite/trainers.py:
        STACKED): a process per arm, training that arm's unfinished seeds as one stacked model.
    """
    store.register(runs)
    store.reconcile(runs)
    todo = [r for r in runs if store.status(r.run_id) not in FINISHED]
    context = process_context({run.trainer for run in todo}, stacked=stack is not None)
    if todo:
        start_process_server(context)
    display.begin(runs, done=len(runs) - len(todo))
    events = context.Queue()
    waiting, active = jobs(todo, stack), {}
    previous_sigterm = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        while waiting or active:
            while waiting and len(active) < workers:
                job = waiting.pop(0)
                worker_job = WorkerJob(
                    runs=job,
                    results_root=str(store.root),
                    device=device,
                    threads=threads,
                    stack=stack,
                    grid_pid=os.getpid(),
                    events=events,
                    keep_checkpoints=keep_checkpoints,
                )
                process = context.Process(target=child_main, args=(worker_job,), daemon=False)
                process.start()
                active[job[0].run_id] = (process, job)
            _drain(events, display, timeout=0.2)
            for key, (process, job) in list(active.items()):
                if not process.is_alive():
                    process.join()
                    del active[key]
                    _drain(events, display, timeout=0.0)
                    _check_exit(store, process, job, display)
    except BaseException:
        # Interrupted, or the results directory failed: stop the workers (they hand their runs
        # back and resume next time) rather than leave them training unseen.
        for process, _ in active.values():
            process.terminate()
        for process, _ in active.values():
            process.join(timeout=30)
        display.end()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    display.end()
    counts: dict[str, int] = {}
    for row in store.rows(runs[0].experiment, runs[0].budget) if runs else []:
        if row["run_id"] in {r.run_id for r in runs}:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def _check_exit(store: Store, process, job: list[RunSpec], display) -> None:
    """After a worker ended: record the runs a dead worker left unfinished."""
    if process.exitcode == 0:
        return
    for run in job:
        record_crash(store, run, process.exitcode, process.pid)
        display.crashed(run, process.exitcode)
    if process.exitcode == EXIT_RESULTS_ERROR:
        # The results directory cannot take more (disk full): every further run would fail the
        # same way; stop, keeping what is finished.
        raise ResultsError(
            f"results directory {store.root} failed while saving {job[0].label} "
            "(disk full or unwritable?); finished results are kept"
        )


def _drain(events, display, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            event = events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue_module.Empty:
            display.refresh()
            return
        except (EOFError, OSError):
            return
        display.event(*event)


def execute_grid(runs: list[RunSpec], store: Store, settings, display) -> dict[str, int]:
    """The executor interface (suite/run/__init__.py): ``run_grid`` with ``settings``."""
    workers = settings.workers or os.cpu_count() or 1
    return run_grid(
        runs,
        store,
        workers,
        settings.device,
        settings.threads,
        display,
        settings.stack,
        settings.keep_checkpoints,
    )
