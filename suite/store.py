"""The results store: one directory per run and an SQLite index of every run and its status.

Layout under the results root (``--results``, default ``./results``)::

    index.sqlite                                   every run: id, experiment, arm, seed, status
    EXPERIMENT/BUDGET/ARM/seedN-RUNID/config.json  the resolved RunSpec
                                     /result.json  the Result (written last, atomically)
                                     /log.txt      the run's log
                                     /checkpoint*  what the trainer needs to resume

Files are written to a temporary name, flushed and renamed, so a kill leaves either the old or
the new file, never half of one. Runs are claimed in an SQLite transaction, so two ``suite run``
processes on one results directory never run the same run at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from suite.errors import ResultsError
from suite.result import FINISHED, Result, RunSpec

# A claim whose owner's heartbeat is older than this is taken over (owner on another host).
STALE_AFTER_S = 900.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    budget TEXT NOT NULL,
    arm TEXT NOT NULL,
    seed INTEGER NOT NULL,
    path TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    heartbeat REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
)
"""


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, whole.

    :raises ResultsError: the write failed (full disk, unwritable directory); the old file, if
        any, is left as it was and the temporary file is removed.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        raise ResultsError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def is_temporary(path: Path) -> bool:
    """A temporary file of write_atomic or of a trainer's checkpoint (``.NAME.tmp...``)."""
    return path.name.startswith(".") and ".tmp" in path.name


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True).encode())


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is missing).

    With it an owner id names one process, not a pid the system may have handed out again
    after the owner was killed (a claim would otherwise stay held by a stranger).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22 (starttime); the command name (field 2) may hold spaces, so split after ')'.
    return stat.rpartition(")")[2].split()[19]


def owner_id(pid: int | None = None) -> str:
    """``host:pid:start``: the process that holds a claim."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_pid(owner: str | None) -> int | None:
    """The pid in an owner id, if the owner is on this host."""
    if not owner:
        return None
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_alive(owner: str | None, heartbeat: float | None) -> bool:
    if not owner:
        return False
    pid = owner_pid(owner)
    if pid is not None:
        if not pid_alive(pid):
            return False
        started = owner.rpartition(":")[2]
        return not started or _start_time(pid) in ("", started)
    return heartbeat is not None and time.time() - heartbeat < STALE_AFTER_S


class Store:
    """The results directory of one user: run directories plus the SQLite index."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as error:
            raise ResultsError(f"results directory {self.root} is not writable: {error}") from None
        self.index_path = self.root / "index.sqlite"
        with self._connect() as db:
            db.execute(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.index_path, timeout=60, isolation_level=None)
        except sqlite3.Error as error:
            raise ResultsError(f"cannot open the index {self.index_path}: {error}") from None
        try:
            db.execute("PRAGMA busy_timeout = 60000")
            yield db
        except sqlite3.DatabaseError as error:
            raise ResultsError(f"index {self.index_path}: {error}") from None
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # --- paths -------------------------------------------------------------------------------

    def run_dir(self, run: RunSpec) -> Path:
        return self.root / run.experiment / run.budget / run.arm / f"seed{run.seed}-{run.run_id}"

    # --- index -------------------------------------------------------------------------------

    def register(self, runs: list[RunSpec]) -> None:
        """Add runs to the index (pending) and write their config.json; known runs are kept."""
        now = time.time()
        for run in runs:
            config = self.run_dir(run) / "config.json"
            if not config.exists():
                write_json_atomic(config, run.to_dict())
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO runs (run_id, experiment, budget, arm, seed, path, status,"
                " updated) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                [
                    (
                        r.run_id,
                        r.experiment,
                        r.budget,
                        r.arm,
                        r.seed,
                        str(self.run_dir(r).relative_to(self.root)),
                        now,
                    )
                    for r in runs
                ],
            )

    def reconcile(self, runs: list[RunSpec]) -> None:
        """Make the index agree with the result files, which are written first.

        A kill between writing ``result.json`` and marking the run finished leaves the index
        behind; the file is the truth, so such a run is marked finished and not run again (its
        result stays byte-identical). A finished run whose result file is gone is run again.
        """
        statuses = {row["run_id"]: row["status"] for row in self.rows()}
        for run in runs:
            path = self.run_dir(run).relative_to(self.root)
            try:
                result = self.load_result(path)
            except ResultsError:
                result = None  # half a file cannot exist (atomic writes); treat as missing
            on_file = result.status if result is not None else None
            indexed = statuses.get(run.run_id)
            if on_file in FINISHED and indexed != on_file:
                self._set_status(run.run_id, on_file)
            elif on_file not in FINISHED and indexed in FINISHED:
                self._set_status(run.run_id, "pending")

    def _set_status(self, run_id: str, status: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, owner = NULL, updated = ? WHERE run_id = ?",
                (status, time.time(), run_id),
            )

    def clean_temporary(self, run: RunSpec) -> None:
        """Remove temporary files a killed writer left in a run directory (claim held)."""
        for path in self.run_dir(run).glob(".*"):
            if path.is_file() and is_temporary(path):
                path.unlink(missing_ok=True)

    def status(self, run_id: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def claim(self, run_id: str, owner: str) -> bool:
        """Take a run for ``owner`` unless it is finished or a live process holds it."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT status, owner, heartbeat FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None or row[0] in FINISHED:
                return False
            if row[0] == "running" and row[1] != owner and _owner_alive(row[1], row[2]):
                return False
            now = time.time()
            db.execute(
                "UPDATE runs SET status = 'running', owner = ?, heartbeat = ?, updated = ?,"
                " attempts = attempts + 1 WHERE run_id = ?",
                (owner, now, now, run_id),
            )
        return True

    def heartbeat(self, run_id: str, owner: str) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE runs SET heartbeat = ? WHERE run_id = ? AND owner = ?",
                (time.time(), run_id, owner),
            )

    def finish(self, run_id: str, status: str, owner: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, owner = NULL, updated = ? WHERE run_id = ?"
                " AND owner = ?",
                (status, time.time(), run_id, owner),
            )

    def release(self, run_id: str, owner: str) -> None:
        """Give a claimed run back (interrupted): the next command resumes it."""
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = 'pending', owner = NULL, updated = ?"
                " WHERE run_id = ? AND owner = ? AND status = 'running'",
                (time.time(), run_id, owner),
            )

    def rows(self, experiment: str | None = None, budget: str | None = None) -> list[dict]:
        query, args = "SELECT * FROM runs WHERE 1=1", []
        if experiment:
            query, args = query + " AND experiment = ?", [*args, experiment]
        if budget:
            query, args = query + " AND budget = ?", [*args, budget]
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = [
                dict(r) for r in db.execute(query + " ORDER BY experiment, budget, arm, seed", args)
            ]
        for row in rows:
            if row["status"] == "running" and not _owner_alive(row["owner"], row["heartbeat"]):
                row["status"] = "interrupted"
        return rows

    # --- results -----------------------------------------------------------------------------

    def save_result(self, run: RunSpec, result: Result) -> None:
        write_json_atomic(self.run_dir(run) / "result.json", result.to_dict())

    def load_result(self, path: Path) -> Result | None:
        file = self.root / path / "result.json"
        try:
            return Result.from_dict(json.loads(file.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as error:
            raise ResultsError(f"unreadable result {file}: {error}") from None

    def results(self, experiment: str, budget: str | None = None) -> list[Result]:
        """Every recorded result of an experiment (all statuses), in arm/seed order."""
        found = []
        for row in self.rows(experiment, budget):
            result = self.load_result(Path(row["path"]))
            if result is not None:
                found.append(result)
        return found
