"""Run a grid on a Ray cluster: ``suite run NAME --executor ray [--address ADDRESS]``.

Each run becomes one Ray task that calls the same per-run function as the local runner
(suite.run.worker.execute), so a run trained on a cluster node is the run ``--executor local``
would have trained, and its ``result.json`` lands in the local results store.

Who owns what:

- **The index stays with the driver** (the machine that runs ``suite run``). The driver claims a
  run in ``index.sqlite`` before it submits it and records the outcome when the task returns, so
  resume works exactly as locally (finished runs are skipped, claims of a dead driver are taken
  over) and no worker ever opens SQLite over a network filesystem, where its locks are unreliable.
  Inside a task, the worker claims the run in a throwaway index in a scratch directory.
- **Run directories: shared when the worker sees the results directory, shipped otherwise.** The
  driver drops a fresh token file into the results directory. A worker that finds that token at
  the same absolute path (a shared filesystem mounted at the same path on every node, as on most
  clusters) trains directly in the run's directory, so checkpoints land there as they are written
  and an interrupted or crashed run resumes from its last one. A worker that does not see it gets
  the run directory's current files (config, log, last checkpoint) with the task, trains in a
  scratch copy, and returns the directory as a tar archive that the driver unpacks into the store.
  Checkpoints written during a shipped run live only on the worker until the run ends.
- **Retries.** A task whose worker process or node dies (killed, out of memory, node lost) is
  resubmitted by Ray up to ``max_retries`` times (Ray's ``max_retries``, system failures only).
  With a shared results directory the retry resumes from the run's last checkpoint. After the last
  retry the run is recorded as failed, like a local worker that died, and the grid goes on; the
  next identical command tries it again. Exceptions inside training are not retried: the worker
  records them as a failed (or diverged) run, as it does locally.

One run per Ray worker process (``max_calls=1``), like the local runner's one spawned process per
run: a crash or a leak stays in its run, and the peak memory recorded is that run's own.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from suite.result import FINISHED, Result, RunSpec
from suite.store import Store, owner_id, write_atomic

# Ray's own default for tasks; each retry starts a fresh worker process.
DEFAULT_MAX_RETRIES = 3
HEARTBEAT_EVERY_S = 60.0
POLL_EVERY_S = 0.2
TOKEN_PREFIX = ".ray-driver-"


def import_ray():
    """Ray, or an error that says how to install it (``pip install 'suite[ray]'``)."""
    try:
        import ray
    except ImportError:
        from suite.errors import ConfigError

        raise ConfigError(
            "--executor ray needs Ray: pip install 'suite[ray]' (or pip install ray)",
            key="--executor",
        ) from None
    return ray


def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Connect to a Ray cluster, or start a local Ray instance on this machine.

    :param address: ``None`` or ``"local"``: start a private local instance (``num_cpus`` CPUs,
        default all cores) unless ``RAY_ADDRESS`` names a cluster; ``"auto"``: the cluster that
        ``ray start`` runs on this machine; ``"HOST:6379"``: a cluster's head node;
        ``"ray://HOST:10001"``: a cluster through Ray Client. A Ray already initialized in this
        process (a test fixture, a notebook) is used as it is.
    :param num_cpus: CPUs of a local instance (ignored when joining a cluster).
    """
    ray = import_ray()
    if ray.is_initialized():
        return
    if address is None and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    # Run logs are in each run's log.txt; the workers' stdout would only interleave with the
    # progress display.
    options: dict[str, Any] = {"log_to_driver": False}
    if address in (None, "local"):
        options.update(address="local", include_dashboard=False, num_cpus=num_cpus)
        use_callers_priority()
    else:
        options["address"] = address
    ray.init(**options)


def use_callers_priority() -> None:
    """Run a local instance's workers at this process's priority, as the local executor's runs.
    Ray raises its workers' niceness by 15 (its ``worker_niceness``, an increment over the raylet,
    which a local instance starts as this process's child); beside any other work on the machine
    they then starve: a smoke run's ``import torch`` took 113-173 s instead of 7 s with two other
    processes busy. Set before the instance starts; a user's own value wins."""
    os.environ.setdefault("RAY_worker_niceness", "0")


# --- the worker side ------------------------------------------------------------------------


class _Events:
    """The events queue the worker expects, forwarding to the driver's sink actor.

    ``put`` does not wait for the driver (fire and forget); calls from one worker reach the actor
    in order, and ``flush`` waits for the last one so a run's "end" event is in before it returns.
    """

    def __init__(self, sink):
        self.sink, self.last = sink, None

    def put(self, event: tuple) -> None:
        self.last = self.sink.put.remote(event)

    def flush(self) -> None:
        if self.last is not None:
            import ray

            ray.get(self.last)


def _sees_store(results_root: str, token_name: str, token: str) -> bool:
    """Whether this worker sees the driver's results directory (shared filesystem)."""
    try:
        return (Path(results_root) / token_name).read_text() == token
    except OSError:
        return False


def pack_directory(directory: Path) -> bytes:
    """The files of ``directory`` as an uncompressed tar archive (empty if it does not exist)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        if directory.is_dir():
            for path in sorted(directory.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    archive.add(path, arcname=str(path.relative_to(directory)))
    return buffer.getvalue()


def unpack_directory(data: bytes, directory: Path, replace: bool = False) -> None:
    """Write the files of a pack_directory archive into ``directory``, each one atomically.

    :param replace: then remove the files of ``directory`` the archive lacks (a shipped run
        directory started as a copy of the driver's, so what its run removed, e.g. the
        checkpoint a finished run drops, goes here too); hidden temporary files stay.
    """
    written = set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            target = (directory / member.name).resolve()
            if directory.resolve() not in target.parents:
                raise ValueError(f"archive member {member.name!r} points outside {directory}")
            write_atomic(target, archive.extractfile(member).read())
            written.add(target)
    if replace:
        for path in directory.rglob("*"):
            if path.is_file() and not path.name.startswith(".") and path.resolve() not in written:
                path.unlink()


def run_on_worker(
    run: RunSpec,
    results_root: str,
    run_path: str,
    token_name: str,
    token: str,
    run_files: bytes,
    device: str,
    threads: int,
    sink=None,
    force_ship: bool = False,
    keep_checkpoints: bool = False,
) -> tuple[str, bytes | None, str]:
    """One run on a Ray worker: suite.run.worker.execute in a scratch index. Returns (status,
    shipped run directory or None when it was trained in place, worker host name).

    :param run_path: the run's directory in the driver's store (absolute).
    :param run_files: the run directory's files on the driver (pack_directory), used when this
        worker does not see the results directory.
    :param force_ship: ship even if the results directory is visible (tests of the shipped path).
    """
    from suite.run.device import resolve_device
    from suite.run.worker import WorkerJob, execute

    device = resolve_device(device)
    shared = not force_ship and _sees_store(results_root, token_name, token)
    scratch_root = Path(tempfile.mkdtemp(prefix="suite-ray-"))
    try:
        scratch = Store(scratch_root)
        run_dir = scratch.run_dir(run)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        if shared:
            # The scratch index's run directory *is* the shared one, so checkpoints and the
            # result land where the driver's store expects them.
            Path(run_path).mkdir(parents=True, exist_ok=True)
            run_dir.symlink_to(run_path, target_is_directory=True)
        else:
            run_dir.mkdir()
            unpack_directory(run_files, run_dir)
        scratch.register([run])
        events = _Events(sink) if sink is not None else None
        job = WorkerJob(
            [run],
            str(scratch_root),
            device,
            threads,
            events=events,
            keep_checkpoints=keep_checkpoints,
        )
        (status,) = execute(job)
        if events is not None:
            events.flush()
        return status, None if shared else pack_directory(run_dir), socket.gethostname()
    finally:
        # rmtree removes the symlink, never the shared directory it points to.
        shutil.rmtree(scratch_root, ignore_errors=True)


# --- the driver side ------------------------------------------------------------------------


class _EventSink:
    """A Ray actor on the driver's cluster collecting the runs' progress events."""

    def __init__(self):
        self.events: list[tuple] = []

    def put(self, event: tuple) -> None:
        self.events.append(event)

    def drain(self) -> list[tuple]:
        events, self.events = self.events, []
        return events


def _record_failure(store: Store, run: RunSpec, owner: str, error: str) -> None:
    """A run whose worker died on every attempt: a failed result, like a local crash."""
    result = Result.for_run(
        run,
        status="failed",
        error=error.replace("\n", " ")[:500],
    )
    store.save_result(run, result)
    store.finish(run.run_id, "failed", owner)


def _cluster_device(ray, device: str) -> str:
    """``auto`` on a cluster means the cluster's GPUs if it has any, not the driver's."""
    if device != "auto":
        return device
    return "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"


def run_grid_ray(
    runs: list[RunSpec],
    store: Store,
    device: str,
    threads: int,
    display,
    address: str | None = None,
    workers: int | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    gpus_per_run: float = 1.0,
    force_ship: bool = False,
    keep_checkpoints: bool = False,
) -> dict[str, int]:
    """Run every unfinished run as a Ray task. Returns counts by status, like suite.run.local.run_grid.

    :param device: ``cpu``, ``cuda`` or ``auto`` (the cluster's GPUs if it has any).
    :param workers: runs in flight at once; default: the cluster's CPUs / ``threads``.
    :param gpus_per_run: GPUs a cuda run asks Ray for (0.25: four runs share a GPU).
    :param force_ship: ship run directories even where workers see the results directory.
    """
    store.register(runs)
    todo = [r for r in runs if store.status(r.run_id) not in FINISHED]
    display.begin(runs, done=len(runs) - len(todo))
    if not todo:
        display.end()
        return _counts(runs, store)
    connect(address, num_cpus=workers * threads if workers else None)
    ray = import_ray()
    device = _cluster_device(ray, device)
    owner, root = owner_id(), store.root.resolve()
    token_name, token = f"{TOKEN_PREFIX}{uuid.uuid4().hex}", uuid.uuid4().hex
    sink = ray.remote(num_cpus=0)(_EventSink).remote()
    task = ray.remote(max_calls=1)(run_on_worker).options(
        num_cpus=threads,
        num_gpus=gpus_per_run if device.startswith("cuda") else 0,
        max_retries=max_retries,
        retry_exceptions=False,
    )
    in_flight = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
    waiting, active = list(todo), {}
    last_heartbeat = time.monotonic()
    try:
        write_atomic(root / token_name, token.encode())
        while waiting or active:
            while waiting and len(active) < in_flight:
                run = waiting.pop(0)
                if not store.claim(run.run_id, owner):
                    continue  # another `suite run` on this results directory has it
                reference = task.remote(
                    run,
                    str(root),
                    str(store.run_dir(run).resolve()),
                    token_name,
                    token,
                    pack_directory(store.run_dir(run)),
                    device,
                    threads,
                    sink,
                    force_ship,
                    keep_checkpoints,
                )
                active[reference] = run
            ready, _ = ray.wait(list(active), num_returns=1, timeout=POLL_EVERY_S)
            _show(ray, sink, display)
            for reference in ready:
                run = active.pop(reference)
                _collect(ray, reference, run, store, owner, display, max_retries)
            if time.monotonic() - last_heartbeat >= HEARTBEAT_EVERY_S:
                last_heartbeat = time.monotonic()
                for run in active.values():
                    store.heartbeat(run.run_id, owner)
    except KeyboardInterrupt:
        for reference, run in active.items():
            ray.cancel(reference, force=True)
            store.release(run.run_id, owner)
        display.end()
        raise
    finally:
        (root / token_name).unlink(missing_ok=True)
    display.end()
    return _counts(runs, store)


def _counts(runs: list[RunSpec], store: Store) -> dict[str, int]:
    ids = {r.run_id for r in runs}
    counts: dict[str, int] = {}
    for row in store.rows(runs[0].experiment, runs[0].budget) if runs else []:
        if row["run_id"] in ids:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def _show(ray, sink, display) -> None:
    for event in ray.get(sink.drain.remote()):
        display.event(*event)
    display.refresh()


def _collect(
    ray, reference, run: RunSpec, store: Store, owner: str, display, max_retries: int
) -> None:
    """Record a finished task: unpack a shipped run directory, then mark the index."""
    try:
        status, shipped, _host = ray.get(reference)
    except ray.exceptions.RayError as error:
        # The worker died on every attempt (killed, out of memory, node lost).
        message = f"Ray worker died ({max_retries} retries): {_first_line(str(error))}"
        _record_failure(store, run, owner, message)
        display.event(
            "end",
            run.run_id,
            {"status": "failed", "metrics": {}, "wall_time_s": 0.0, "error": message},
        )
        return
    if shipped is not None:
        unpack_directory(shipped, store.run_dir(run), replace=True)
    result = store.load_result(store.run_dir(run).relative_to(store.root))
    if result is None:
        _record_failure(store, run, owner, f"the worker returned {status!r} but no result.json")
        return
    store.finish(run.run_id, result.status, owner)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def execute_grid(runs: list[RunSpec], store: Store, settings, display) -> dict[str, int]:
    """The executor interface (suite/run/__init__.py): ``run_grid_ray`` with ``settings``."""
    return run_grid_ray(
        runs,
        store,
        settings.device,
        settings.threads,
        display,
        settings.address,
        settings.workers,
        keep_checkpoints=settings.keep_checkpoints,
    )
