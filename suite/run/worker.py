"""The worker: what one run process does. Claim its runs, train them (one run, or several
seeds of one arm as one stacked model), record each result, release the claims.

A run claims itself in the index before it starts and writes ``result.json`` last, so running
the same command again skips finished runs and resumes interrupted ones from their last
checkpoint. Executors (suite/run/local.py, suite/run/ray.py) start workers; a trainer gets a
suite/run/context.py RunContext (what else it may import: tests/test_layout.py).
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from suite.errors import ResultsError
from suite.result import FINISHED, Result, RunSpec
from suite.run.context import Diverged, RunContext
from suite.store import Store, owner_id, owner_pid, pid_alive

HEARTBEAT_EVERY_S = 60.0
EXIT_RESULTS_ERROR = 3


@dataclass
class WorkerJob:
    """What one worker process runs: its runs (one, or the seeds of one arm with ``stack``)."""

    runs: list[RunSpec]  # decoded once, where the grid is expanded
    results_root: str
    device: str
    threads: int
    stack: str | None = None  # a stacking method of the trainer (suite/trainers.py: STACKED)
    grid_pid: int | None = None  # the `suite run` process to watch; None where nobody does
    keep_checkpoints: bool = False  # suite run --keep-checkpoints
    events: Any = field(default=None, repr=False)  # the live display's queue


def _peak_memory(device: str) -> tuple[float, float | None]:
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    gpu_mb = None
    if device.startswith("cuda"):
        import torch

        gpu_mb = torch.cuda.max_memory_allocated() / 2**20
    return rss_mb, gpu_mb


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def _watch(store: Store, run_ids: list[str], owner: str, grid_pid: int | None):
    """The liveness duties of a worker, run from RunContext.progress (already rate-limited):
    stop when the grid process is gone, and refresh the runs' heartbeats now and then."""
    last_heartbeat = time.perf_counter()

    def watch() -> None:
        nonlocal last_heartbeat
        if grid_pid is not None and not pid_alive(grid_pid):
            # The `suite run` that started us is gone (killed). Our parent is its forkserver,
            # which outlives it, so the grid process itself is watched: stop and give the run
            # back, so the next command resumes it instead of an orphan training on unseen.
            raise KeyboardInterrupt
        now = time.perf_counter()
        if now - last_heartbeat >= HEARTBEAT_EVERY_S:
            last_heartbeat = now
            for run_id in run_ids:
                store.heartbeat(run_id, owner)

    return watch


def execute(job: WorkerJob) -> list[str]:
    """Run ``job`` in this process: claim, train, write the results. Returns their statuses.

    A lone run calls the trainer's ``train``; a stack (``job.stack``) calls its stack module's
    ``train_stack``, which returns one result per seed, each what its lone run would record. A
    lone run whose directory holds a stack's checkpoint that its trainer cannot load resumes as
    a stack of one.
    """
    import torch

    from suite.trainers import stacked_module, trainer_module

    torch.set_num_threads(job.threads)
    store, owner = Store(job.results_root), owner_id()
    runs = [run for run in job.runs if _claim(store, run, owner)]
    if not runs:
        return ["skipped"] * len(job.runs)
    config, specs = _settings(trainer_module(runs[0].trainer), runs[0])
    watch = _watch(store, [run.run_id for run in runs], owner, job.grid_pid)
    contexts = [RunContext(r, store.run_dir(r), job.device, job.events, watch) for r in runs]
    for ctx in contexts:
        label = ctx.run.label + (" (stacked)" if job.stack else "")
        ctx.emit("start", label=label, pid=os.getpid())
    try:
        if job.stack is None:
            # A lone run that a stack checkpointed goes on as a stack of one (_stacked_resume).
            method = _stacked_resume(runs[0], contexts[0])
            if method is None:
                results = [trainer_module(runs[0].trainer).train(config, specs, contexts[0])]
            else:
                stack = stacked_module(runs[0].trainer)
                results = stack.train_stack(config, specs, contexts, method)
        else:
            results = _train_stack(store, job.stack, config, specs, contexts)
    except KeyboardInterrupt:
        for ctx in contexts:
            _hand_back(store, ctx, owner)
        raise
    except Diverged as diverged:  # stacks record each seed's own; this one ended them all
        results = [ctx.diverged_result(diverged) for ctx in contexts]
    except Exception as error:  # noqa: BLE001 - one run's failure must not stop the grid
        results = [_failed(store, ctx, error) for ctx in contexts]
    for ctx, result in zip(contexts, results, strict=True):
        _finish(store, ctx, result, owner, job.keep_checkpoints)
    return [result.status for result in results]


def _train_stack(
    store: Store, method: str, config, specs, contexts: list[RunContext]
) -> list[Result]:
    """The seeds of a stacked job: those whose directory holds a lone run's checkpoint the stack
    cannot load (the stack module's ``resumes_lone``) go on lone, one after another, each with
    its own divergence or failure; the others train as one stack."""
    from suite.trainers import StackTrainer, hook, stacked_module, trainer_module

    stack = stacked_module(contexts[0].run.trainer)
    resumes_lone = hook(stack, StackTrainer, "resumes_lone")
    lone = [i for i, ctx in enumerate(contexts) if resumes_lone is not None and resumes_lone(ctx)]
    results: dict[int, Result] = {}
    for i in lone:
        try:
            results[i] = trainer_module(contexts[i].run.trainer).train(config, specs, contexts[i])
        except Diverged as diverged:
            results[i] = contexts[i].diverged_result(diverged)
        except Exception as error:  # noqa: BLE001 - one seed's failure must not stop the others
            results[i] = _failed(store, contexts[i], error)
    rest = [i for i in range(len(contexts)) if i not in results]
    if rest:
        trained = stack.train_stack(config, specs, [contexts[i] for i in rest], method)
        results.update(zip(rest, trained, strict=True))
    return [results[i] for i in range(len(contexts))]


def _stacked_resume(run: RunSpec, ctx: RunContext) -> str | None:
    """The stacking method a lone run must resume with, where its directory holds a stack's
    checkpoint in a format its lone trainer cannot load (agents/stacked.py: resume_method)."""
    from suite.trainers import STACKED, StackTrainer, hook, stacked_module

    if run.trainer not in STACKED:
        return None
    resume = hook(stacked_module(run.trainer), StackTrainer, "resume_method")
    return None if resume is None else resume(ctx)


def _claim(store: Store, run: RunSpec, owner: str) -> bool:
    """Claim ``run`` for this process, unless another holds it or it is finished."""
    if not store.claim(run.run_id, owner) or _already_finished(store, run, owner):
        return False
    store.clean_temporary(run)
    return True


def _settings(module, run: RunSpec):
    """The trainer's Config and the role -> OptimizerSpec of ``run``."""
    from suite.optimizers import OptimizerSpec
    from suite.schema import from_dict

    config = from_dict(module.Config, run.task, "task")
    specs = {role: from_dict(OptimizerSpec, spec, role) for role, spec in run.optimizers.items()}
    return config, specs


def _hand_back(store: Store, ctx: RunContext, owner: str) -> None:
    ctx.log("interrupted; the next identical command resumes from the last checkpoint")
    store.release(ctx.run.run_id, owner)
    ctx.close()


def _failed(store: Store, ctx: RunContext, error: Exception) -> Result:
    # A write that failed half-way (disk full) leaves its temporary file: free the space.
    store.clean_temporary(ctx.run)
    ctx.log(traceback.format_exc())
    result = ctx.result({}, status="failed")
    result.error = one_line(error)
    return result


def _finish(store: Store, ctx: RunContext, result: Result, owner: str, keep: bool) -> None:
    """Record ``result`` with its wall time, peak memory and environment, and release the run;
    a finished run's checkpoint is then dropped unless ``keep`` (a failed run resumes from it)."""
    from suite.provenance import environment

    result.wall_time_s = ctx.elapsed_s()
    result.peak_rss_mb, result.peak_gpu_mb = _peak_memory(ctx.device)
    result.environment = environment(ctx.device)
    store.save_result(ctx.run, result)
    store.finish(ctx.run.run_id, result.status, owner)
    if result.status in FINISHED and not keep:
        ctx.drop_checkpoint()
    ctx.emit(
        "end",
        status=result.status,
        metrics=result.metrics,
        wall_time_s=result.wall_time_s,
        error=result.error,
    )
    ctx.close()


def _already_finished(store: Store, run: RunSpec, owner: str) -> bool:
    """A result written by a run killed before it could mark the index: keep it, as it is."""
    try:
        result = store.load_result(store.run_dir(run).relative_to(store.root))
    except ResultsError:
        return False
    if result is None or result.status not in FINISHED:
        return False
    store.finish(run.run_id, result.status, owner)
    return True


def one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    if "out of memory" in text.lower():
        text = f"out of memory: {text}"
    return text.replace("\n", " ")[:500]


def child_main(job: WorkerJob) -> None:
    """A worker process's entry point: ``execute(job)``, with one-line errors and exit codes
    the executor reads (130 interrupted, EXIT_RESULTS_ERROR results directory failed)."""
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it sends SIGTERM
    try:
        execute(job)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # done: a stop while exiting, no traceback
    except KeyboardInterrupt:
        os._exit(130)
    except ResultsError as error:
        # The results directory failed (disk full): one line; the parent records the run.
        print(f"error: {error}", file=sys.stderr, flush=True)
        os._exit(EXIT_RESULTS_ERROR)
    except Exception as error:  # noqa: BLE001 - outside train(): report in one line, no traceback
        labels = ", ".join(run.label for run in job.runs)
        print(f"error: {labels}: {one_line(error)}", file=sys.stderr, flush=True)
        os._exit(1)


def record_crash(store: Store, run: RunSpec, exitcode: int, pid: int) -> None:
    """A worker that died without writing its result (killed, out of memory): record a failure.

    Only while the dead worker (``pid``) still holds the run's claim: a worker that died before
    claiming, or after handing the run back, must not touch a run another process holds.
    """
    rows = {r["run_id"]: r for r in store.rows(run.experiment, run.budget)}
    row = rows.get(run.run_id)
    if row is None or row["status"] in FINISHED or owner_pid(row["owner"]) != pid:
        return
    cause = f"signal {-exitcode}" if exitcode < 0 else f"exit code {exitcode}"
    result = Result.for_run(
        run,
        status="failed",
        error=f"worker process died ({cause}; out of memory?)",
    )
    store.save_result(run, result)
    store.finish(run.run_id, "failed", row["owner"] or "")
