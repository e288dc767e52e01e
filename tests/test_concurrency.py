"""Two ``suite run`` processes on one results directory: no run runs twice, the index stays
consistent. Claims are SQLite transactions (suite/store.py ``claim``); ``attempts`` counts them."""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

from suite.result import RunSpec
from suite.store import Store, owner_id

GRID = [
    "run",
    "quickstart",
    "--budget",
    "smoke",
    "--seeds",
    "2",
    "--arms",
    "adam,sgd_momentum",
    "--workers",
    "1",
    "--no-report",
]


def test_two_processes_on_one_results_directory_run_each_run_once(tmp_path):
    results = tmp_path / "results"
    command = [sys.executable, "-m", "suite", *GRID, "--results", str(results)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # the second starts while the first registers and claims
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for process in (first, second):
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, out + err
    rows = Store(results).rows()
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows)
    # Each run was claimed (started) exactly once, by one of the two processes.
    assert [r["attempts"] for r in rows] == [1, 1, 1, 1]
    results_files = sorted(results.rglob("result.json"))
    assert len(results_files) == 4
    for path in results_files:
        result = json.loads(path.read_text())
        assert result["status"] == "done"
        assert "resumed" not in (path.parent / "log.txt").read_text()


def _claim(args: tuple[str, str, int]) -> bool:
    root, run_id, index = args
    # Owners that look alive (this host, a live pid, no start time) but are distinct.
    return Store(root).claim(run_id, f"{owner_id().rsplit(':', 1)[0]}-{index}:")


def test_many_processes_claiming_one_run_at_once_only_one_wins(tmp_path):
    store = Store(tmp_path)
    run = RunSpec("exp", "adam", 0, "smoke", "dqn", {}, {"q": {}})
    store.register([run])
    with mp.get_context("fork").Pool(8) as pool:
        won = pool.map(_claim, [(str(tmp_path), run.run_id, i) for i in range(16)])
    assert sum(won) == 1
    [row] = store.rows()
    assert row["attempts"] == 1 and row["status"] == "running"


def test_index_survives_a_process_killed_inside_a_transaction(tmp_path):
    # SIGKILL while holding the write lock (BEGIN IMMEDIATE, update made, no COMMIT): SQLite's
    # journal rolls it back; the next process sees the index as before and can write.
    store = Store(tmp_path)
    run = RunSpec("exp", "adam", 0, "smoke", "dqn", {}, {"q": {}})
    store.register([run])
    code = (
        "import sqlite3, os, signal, sys\n"
        f"db = sqlite3.connect({str(store.index_path)!r}, isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "db.execute(\"UPDATE runs SET status = 'done', attempts = 99\")\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == -9
    [row] = store.rows()
    assert row["status"] == "pending" and row["attempts"] == 0
    assert store.claim(run.run_id, owner_id())
    assert Path(tmp_path / "index.sqlite").exists()
