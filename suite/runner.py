"""The runner: expand an experiment into arms x seeds runs and run each unfinished one.

Each run executes in its own spawned process (``--workers N`` at a time, one torch thread each
unless told otherwise): a crash or an out-of-memory kill fails that run and not the grid, and the
peak memory recorded is that run's own. A run claims itself in the index before it starts and
writes ``result.json`` last, so running the same command again skips finished runs and resumes
interrupted ones from their last checkpoint.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import queue as queue_module
import random
import resource
import signal
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from suite.config import Experiment
from suite.errors import ResultsError
from suite.result import FINISHED, Result, RunSpec
from suite.store import Store, owner_id, owner_pid, write_atomic

HEARTBEAT_EVERY_S = 60.0
PROGRESS_EVERY_S = 0.5


class Diverged(Exception):
    """A loss or parameter became NaN/inf: the run is recorded as diverged at ``step``."""

    def __init__(self, step: int, what: str):
        super().__init__(f"{what} is not finite at step {step}")
        self.step, self.what = step, what


def expand(experiment: Experiment) -> list[RunSpec]:
    """Arms x seeds, in arm order then seed order."""
    task = asdict(experiment.task)
    return [
        RunSpec(
            experiment=experiment.name,
            arm=arm,
            seed=seed,
            budget=experiment.budget,
            trainer=experiment.trainer,
            task=task,
            optimizers={role: spec.to_dict() for role, spec in specs.items()},
        )
        for arm, specs in experiment.arms.items()
        for seed in experiment.seeds
    ]


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return device


def rng_state() -> dict[str, Any]:
    """The global random generators a trainer may draw from (python, numpy, torch), as data
    that ``torch.load(weights_only=True)`` reads back."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": numpy_state,
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put the global random generators back where ``rng_state()`` found them."""
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {**numpy_state["state"]}
    numpy_state["state"]["key"] = np.array(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RunContext:
    """What a trainer gets besides its config: seed, device, run directory, and the hooks to
    record curves, report progress, check for divergence and checkpoint."""

    def __init__(
        self,
        run: RunSpec,
        run_dir: Path,
        device: str,
        events=None,
        store: Store | None = None,
        owner: str = "",
        grid_pid: int | None = None,
    ):
        self.run, self.run_dir, self.device, self.seed = run, run_dir, device, run.seed
        self.curves: dict[str, list[list[float]]] = {}
        self.saved_rng: dict[str, Any] | None = None
        self.elapsed_before_s = 0.0
        self.started = time.perf_counter()
        self._events, self._store, self._owner = events, store, owner
        self._grid_pid = grid_pid  # the `suite run` process; None where nobody watches it
        self._last_progress = self._last_heartbeat = 0.0
        self._log = open(run_dir / "log.txt", "a", encoding="utf-8")  # noqa: SIM115

    # --- recording ---------------------------------------------------------------------------

    def record(self, step: int, metrics: dict[str, float]) -> None:
        """Append ``metrics`` at ``step`` to the curves, the log and the live display."""
        for name, value in metrics.items():
            self.curves.setdefault(name, []).append([int(step), float(value)])
        self.log(f"step {step}: " + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items()))
        self._send("progress", step=int(step), metrics={k: float(v) for k, v in metrics.items()})

    def progress(self, step: int, total: int) -> None:
        """Tell the display how far the run is (rate-limited, cheap to call every step)."""
        now = time.perf_counter()
        if now - self._last_progress < PROGRESS_EVERY_S:
            return  # the common case, every training step: one clock read
        self._last_progress = now
        self._send("progress", step=int(step), total=int(total))
        if self._grid_pid is not None and not _alive(self._grid_pid):
            # The `suite run` that started us is gone (killed). Our parent is its forkserver,
            # which outlives it, so the grid process itself is watched: stop and give the run
            # back, so the next command resumes it instead of an orphan training on unseen.
            raise KeyboardInterrupt
        if self._store is not None and now - self._last_heartbeat >= HEARTBEAT_EVERY_S:
            self._last_heartbeat = now
            self._store.heartbeat(self.run.run_id, self._owner)

    def check_finite(self, step: int, **values: float) -> None:
        """Raise Diverged if any named value (a loss, a parameter norm) is NaN or inf."""
        for name, value in values.items():
            if not _finite(value):
                raise Diverged(step, name)

    def log(self, message: str) -> None:
        self._log.write(f"{time.strftime('%H:%M:%S')} {message}\n")
        self._log.flush()

    def _send(self, kind: str, **payload: Any) -> None:
        if self._events is not None:
            self._events.put((kind, self.run.run_id, payload))

    # --- checkpoints -------------------------------------------------------------------------

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + time.perf_counter() - self.started

    def save_checkpoint(
        self, state: dict[str, Any], name: str = "checkpoint.pt", rng: dict | None = None
    ) -> None:
        """Save ``state`` (tensors, numbers, strings, lists, dicts) with the curves and the
        global random generators' states (see ``restore_rng``), atomically.

        :param rng: the generator states to save instead of this process's (a stack of seeds
            saves, for each seed, the states its lone run would have: gans/stacked.py).
        """
        import torch

        saved = {
            "state": state,
            "curves": self.curves,
            "elapsed_s": self.elapsed_s(),
            "rng": rng if rng is not None else rng_state(),
        }
        buffer = io.BytesIO()
        torch.save(saved, buffer)
        write_atomic(self.run_dir / name, buffer.getvalue())

    def load_checkpoint(self, name: str = "checkpoint.pt") -> dict[str, Any] | None:
        """The last saved state (curves restored), or None when the run starts fresh."""
        import torch

        path = self.run_dir / name
        if not path.exists():
            return None
        saved = torch.load(path, map_location="cpu", weights_only=True)
        self.curves = saved["curves"]
        self.saved_rng = saved.get("rng")
        self.elapsed_before_s = float(saved["elapsed_s"])
        self.started = time.perf_counter()
        self.log(f"resumed from {name}")
        return saved["state"]

    def restore_rng(self) -> None:
        """Put python's, numpy's and torch's generators where the loaded checkpoint saved them.

        Call it after everything that reseeds or draws at construction (building networks,
        stable-baselines3's ``load``, which reseeds from the run's seed), right before training
        continues: a resumed run then draws the same numbers as an uninterrupted one.
        """
        if self.saved_rng is not None:
            set_rng_state(self.saved_rng)

    # --- the result --------------------------------------------------------------------------

    def result(
        self,
        metrics: dict[str, float],
        details: dict[str, Any] | None = None,
        artifacts: dict[str, str] | None = None,
        status: str = "done",
    ) -> Result:
        run = self.run
        return Result.for_run(
            run,
            status=status,
            metrics={k: float(v) for k, v in metrics.items()},
            curves=self.curves,
            device=self.device,
            details=details or {},
            artifacts=artifacts or {},
        )

    def diverged_result(self, diverged: Diverged) -> Result:
        """The result of a run that diverged: recorded, never dropped."""
        self.log(f"diverged: {diverged}")
        result = self.result({}, status="diverged")
        result.diverged_at_step, result.error = diverged.step, str(diverged)
        return result

    def close(self) -> None:
        self._log.close()


def _finite(value: Any) -> bool:
    import math

    import torch

    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return math.isfinite(float(value))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _peak_memory(device: str) -> tuple[float, float | None]:
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    gpu_mb = None
    if device.startswith("cuda"):
        import torch

        gpu_mb = torch.cuda.max_memory_allocated() / 2**20
    return rss_mb, gpu_mb


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def execute_run(
    run_data: dict[str, Any],
    results_root: str,
    device: str,
    threads: int,
    events=None,
    grid_pid: int | None = None,
) -> str:
    """Run one run in this process: claim, train, write the result. Returns the status."""
    import torch

    from suite.trainers import trainer_module

    torch.set_num_threads(threads)
    run = RunSpec.from_dict(run_data)
    store, owner = Store(results_root), owner_id()
    if not _claim(store, run, owner):
        return "skipped"
    module = trainer_module(run.trainer)
    config, specs = _settings(module, run)
    ctx = RunContext(run, store.run_dir(run), device, events, store, owner, grid_pid)
    ctx._send("start", label=run.label, pid=os.getpid())
    try:
        result = module.train(config, specs, ctx)
    except KeyboardInterrupt:
        _hand_back(store, ctx, owner)
        raise
    except Diverged as diverged:
        result = ctx.diverged_result(diverged)
    except Exception as error:  # noqa: BLE001 - one run's failure must not stop the grid
        result = _failed(store, ctx, error)
    _finish(store, ctx, result, owner)
    return result.status


def execute_stack(
    runs_data: list[dict[str, Any]],
    results_root: str,
    device: str,
    threads: int,
    method: str,
    events=None,
    grid_pid: int | None = None,
) -> list[str]:
    """Run several seeds of one arm in this process as one stacked model (``--stack-seeds``).

    Each run is claimed, recorded and resumed as if it ran alone; the stacked trainer
    (suite/trainers.py: STACKED) returns one result per run. Returns the statuses.
    """
    import torch

    from suite.trainers import stacked_module, trainer_module

    torch.set_num_threads(threads)
    runs = [RunSpec.from_dict(data) for data in runs_data]
    store, owner = Store(results_root), owner_id()
    runs = [run for run in runs if _claim(store, run, owner)]
    if not runs:
        return []
    config, specs = _settings(trainer_module(runs[0].trainer), runs[0])
    contexts = [
        RunContext(run, store.run_dir(run), device, events, store, owner, grid_pid) for run in runs
    ]
    for ctx in contexts:
        ctx._send("start", label=f"{ctx.run.label} (stacked)", pid=os.getpid())
    try:
        results = stacked_module(runs[0].trainer).train_stack(config, specs, contexts, method)
    except KeyboardInterrupt:
        for ctx in contexts:
            _hand_back(store, ctx, owner)
        raise
    except Exception as error:  # noqa: BLE001 - the stack's failure must not stop the grid
        results = [_failed(store, ctx, error) for ctx in contexts]
    for ctx, result in zip(contexts, results, strict=True):
        _finish(store, ctx, result, owner)
    return [result.status for result in results]


def _claim(store: Store, run: RunSpec, owner: str) -> bool:
    """Claim ``run`` for this process, unless another holds it or it is finished."""
    if not store.claim(run.run_id, owner) or _already_finished(store, run, owner):
        return False
    store.clean_temporary(run)
    return True


def _settings(module, run: RunSpec):
    """The trainer's Config and the role -> OptimizerSpec of ``run``."""
    from suite.config import from_dict
    from suite.optimizers import OptimizerSpec

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
    result.error = _one_line(error)
    return result


def _finish(store: Store, ctx: RunContext, result: Result, owner: str) -> None:
    """Record ``result`` with its wall time, peak memory and environment, and release the run."""
    from suite.provenance import environment

    result.wall_time_s = ctx.elapsed_s()
    result.peak_rss_mb, result.peak_gpu_mb = _peak_memory(ctx.device)
    result.environment = environment(ctx.device)
    store.save_result(ctx.run, result)
    store.finish(ctx.run.run_id, result.status, owner)
    ctx._send(
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


def _one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    if "out of memory" in text.lower():
        text = f"out of memory: {text}"
    return text.replace("\n", " ")[:500]


def _child_main(job, results_root, device, threads, events, grid_pid, stack):
    """A worker process: one run, or with ``stack`` (a method) several seeds of one arm."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it sends SIGTERM
    try:
        if stack is None:
            (run_data,) = job
            execute_run(run_data, results_root, device, threads, events, grid_pid)
        else:
            execute_stack(job, results_root, device, threads, stack, events, grid_pid)
    except KeyboardInterrupt:
        os._exit(130)
    except ResultsError as error:
        # The results directory failed (disk full): one line; the parent records the run.
        print(f"error: {error}", file=sys.stderr, flush=True)
        os._exit(EXIT_RESULTS_ERROR)
    except Exception as error:  # noqa: BLE001 - outside train(): report in one line, no traceback
        labels = ", ".join(f"{d.get('arm')}/seed{d.get('seed')}" for d in job)
        print(f"error: {labels}: {_one_line(error)}", file=sys.stderr, flush=True)
        os._exit(1)


EXIT_RESULTS_ERROR = 3


def _record_crash(store: Store, run: RunSpec, exitcode: int, pid: int) -> None:
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
    from suite.trainers import STACKED, TRAINERS

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    modules = {TRAINERS[t] for t in trainers}
    if stacked:
        modules |= {STACKED[t][0] for t in trainers if t in STACKED}
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(
        ["torch", "torch._dynamo", "suite.runner", "suite.provenance", *sorted(modules)]
    )
    return context


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
) -> dict[str, int]:
    """Run every unfinished run, ``workers`` processes at a time. Returns counts by status.

    :param stack: None (a process per run), or a stacking method of the trainer (suite/trainers.py:
        STACKED): a process per arm, training that arm's unfinished seeds as one stacked model.
    """
    store.register(runs)
    store.reconcile(runs)
    todo = [r for r in runs if store.status(r.run_id) not in FINISHED]
    display.begin(runs, done=len(runs) - len(todo))
    context = process_context({run.trainer for run in todo}, stacked=stack is not None)
    events = context.Queue()
    waiting, active = jobs(todo, stack), {}
    previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        while waiting or active:
            while waiting and len(active) < workers:
                job = waiting.pop(0)
                process = context.Process(
                    target=_child_main,
                    daemon=False,
                    args=(
                        [run.to_dict() for run in job],
                        str(store.root),
                        device,
                        threads,
                        events,
                        os.getpid(),
                        stack,
                    ),
                )
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
        _record_crash(store, run, process.exitcode, process.pid)
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
