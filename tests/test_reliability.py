"""Reliability under injected faults: SIGKILL of the whole grid at random moments, runs that
diverge, run out of memory or are killed, a full disk and an unwritable results directory.

Nothing finished may be lost or changed: every test compares the bytes of earlier results.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from suite.cli import main
from suite.result import FINISHED
from suite.store import Store, is_temporary

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
    "2",
    "--no-report",
]


def suite_command(results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "suite", *GRID, "--results", str(results), *extra]


def finished_results(results: Path) -> dict[Path, bytes]:
    """Every result.json under ``results`` with a finished status, as bytes (must parse whole)."""
    found = {}
    for path in results.rglob("result.json"):
        data = path.read_bytes()
        status = json.loads(data)["status"]  # a half-written file would not parse
        if status in FINISHED:
            found[path] = data
    return found


def check_store(results: Path, complete: bool) -> None:
    """The index and the run directories agree; at most one directory and row per run."""
    if not (results / "index.sqlite").exists():
        return
    rows = Store(results).rows()
    assert len(rows) <= 4 and len({r["run_id"] for r in rows}) == len(rows)
    assert len({(r["arm"], r["seed"]) for r in rows}) == len(rows), "duplicate runs"
    run_dirs = [p.parent for p in results.rglob("config.json")]
    assert len(run_dirs) == len({(d.parent.name, d.name.split("-")[0]) for d in run_dirs})
    for row in rows:
        result = results / row["path"] / "result.json"
        if row["status"] in FINISHED:
            assert json.loads(result.read_text())["status"] == row["status"]
    if complete:
        assert len(rows) == 4 and all(r["status"] == "done" for r in rows), rows
        assert len(finished_results(results)) == 4
        leftovers = [p for p in results.rglob("*") if is_temporary(p) or "journal" in p.name]
        assert not leftovers, leftovers


def claims_made(results: Path) -> int:
    """Runs started so far (the index's ``attempts``), read without taking a lock."""
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{results / 'index.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            return int(db.execute("SELECT COALESCE(SUM(attempts), 0) FROM runs").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def newest_write(results: Path) -> float:
    times = [p.stat().st_mtime for p in results.rglob("*.pt")] if results.exists() else []
    return max(times, default=0.0)


def kill_moment(phase: str, results: Path, rng: random.Random, process) -> None:
    """Wait for the moment a trial of ``phase`` kills at (or for the process to end).

    ``startup``: while importing, registering, spawning; ``claimed``: soon after a run starts;
    ``checkpoint``: right after a checkpoint write; ``result``: right after a result appears.
    """
    claims, written = claims_made(results), newest_write(results)
    results_now = len(list(results.rglob("result.json"))) if results.exists() else 0
    waits = {
        "startup": lambda: True,
        "claimed": lambda: claims_made(results) > claims,
        "checkpoint": lambda: newest_write(results) > written,
        "result": lambda: len(list(results.rglob("result.json"))) > results_now,
    }
    deadline = time.monotonic() + 60
    while not waits[phase]() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    # After a claim the run trains for about a second at the smoke budget: kill within it.
    delays = {"startup": (0.2, 2.5), "claimed": (0.0, 1.0), "checkpoint": (0.0, 0.5)}
    time.sleep(rng.uniform(*delays.get(phase, (0.0, 0.2))))


def kill_trials(results: Path, trials: int, seed: int) -> dict[str, int]:
    """Start the grid, SIGKILL its process group at a random moment, check, restart; repeat.

    :returns: counts of trials, kills (by phase), runs that ended on their own, and results
        lost or changed (must be 0).
    """
    rng = random.Random(seed)
    seen: dict[Path, bytes] = {}
    counts = {"trials": 0, "killed": 0, "completed": 0, "lost": 0}
    for _ in range(trials):
        phase = rng.choices(["startup", "claimed", "checkpoint", "result"], [6, 2, 1, 1])[0]
        process = subprocess.Popen(
            suite_command(results),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        kill_moment(phase, results, rng, process)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            counts["killed"] += 1
            counts[f"killed_{phase}"] = counts.get(f"killed_{phase}", 0) + 1
        else:
            assert process.returncode == 0
            counts["completed"] += 1
        counts["trials"] += 1
        now = finished_results(results)
        counts["lost"] += sum(1 for path, data in seen.items() if now.get(path) != data)
        seen.update(now)
        check_store(results, complete=False)
    done = subprocess.run(suite_command(results), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    now = finished_results(results)
    counts["lost"] += sum(1 for path, data in seen.items() if now.get(path) != data)
    counts["finished_before_last_restart"] = len(seen)
    check_store(results, complete=True)
    return counts


def test_grid_killed_at_random_moments_loses_nothing(tmp_path):
    counts = kill_trials(tmp_path / "results", trials=20, seed=7)
    print(f"kill trials: {counts}")
    assert counts["trials"] == 20 and counts["killed"] >= 10
    assert counts["lost"] == 0
    assert counts["finished_before_last_restart"] >= 1, "no result existed to be protected"
    attempts = [row["attempts"] for row in Store(tmp_path / "results").rows()]
    assert max(attempts) >= 2, "no run was ever interrupted and resumed"


@pytest.mark.slow
def test_grid_killed_a_hundred_times_loses_nothing(tmp_path):
    counts = kill_trials(tmp_path / "results", trials=100, seed=11)
    print(f"kill trials: {counts}")
    assert counts["lost"] == 0 and counts["killed"] >= 50


# --- the store's own guarantees --------------------------------------------------------------


def make_run(arm: str = "adam", seed: int = 0):
    from suite.result import RunSpec

    return RunSpec("exp", arm, seed, "smoke", "dqn", {"x": 1}, {"q": {"optimizer": "adam"}})


def test_result_written_but_index_not_updated_is_kept_as_it_is(tmp_path):
    # A kill between writing result.json and marking the index: the file is the truth.
    from suite.result import Result

    store, run = Store(tmp_path), make_run()
    store.register([run])
    assert store.claim(run.run_id, "otherhost:1:1")
    result = Result(**{k: v for k, v in run.to_dict().items() if k != "run_id"}, run_id=run.run_id)
    store.save_result(run, result)
    before = (store.run_dir(run) / "result.json").read_bytes()
    store.reconcile([run])
    assert store.status(run.run_id) == "done"
    assert not store.claim(run.run_id, "host:2:2")
    assert (store.run_dir(run) / "result.json").read_bytes() == before


def test_finished_run_whose_result_file_is_gone_runs_again(tmp_path):
    store, run = Store(tmp_path), make_run()
    store.register([run])
    assert store.claim(run.run_id, "h:1:1")
    store.finish(run.run_id, "done", "h:1:1")
    store.reconcile([run])
    assert store.status(run.run_id) == "pending"


def test_claim_held_by_a_dead_process_is_taken_over(tmp_path):
    store, run = Store(tmp_path), make_run()
    store.register([run])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from suite.store import owner_id

    # The pid of a finished process, and a live pid with the wrong start time (pid reuse).
    assert store.claim(run.run_id, owner_id(dead.pid).rsplit(":", 1)[0] + ":1")
    assert store.claim(run.run_id, owner_id(os.getpid()).rsplit(":", 1)[0] + ":12345")
    assert store.claim(run.run_id, owner_id())
    assert not store.claim(run.run_id, "someone:else:1")  # a live owner keeps its run
    assert [r["attempts"] for r in store.rows()] == [3]


def test_temporary_files_of_a_killed_writer_are_removed_on_claim(tmp_path):
    store, run = Store(tmp_path), make_run()
    store.register([run])
    run_dir = store.run_dir(run)
    for name in (".result.json.123.tmp", ".model-300.tmp.zip", ".replay-300.tmp.pkl"):
        (run_dir / name).write_bytes(b"half")
    (run_dir / "model-300.zip").write_bytes(b"whole")
    store.clean_temporary(run)
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "model-300.zip"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    from suite import store as store_module
    from suite.errors import ResultsError

    path = tmp_path / "result.json"
    store_module.write_atomic(path, b"old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "fsync", full)
    with pytest.raises(ResultsError, match="No space left on device"):
        store_module.write_atomic(path, b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == [path.name]


# --- divergence, out of memory, killed workers -----------------------------------------------


def test_diverged_oom_and_killed_runs_are_recorded_and_the_grid_goes_on(tmp_path, capsys):
    results = tmp_path / "results"
    args = [
        "run",
        "quickstart",
        "--budget",
        "smoke",
        "--seeds",
        "1",
        "--workers",
        "2",
        "--results",
        str(results),
        "--set",
        "arms.sgd_momentum.q={optimizer: 'tests.helpers:NaNAfterSteps', lr: 0.01}",
        "--set",
        "arms.rmsprop_deepmind.q={optimizer: 'tests.helpers:OutOfMemoryAtStep', lr: 0.01}",
        "--set",
        "arms.killed={q: {optimizer: 'tests.helpers:KilledAtStep', lr: 0.01}}",
    ]
    assert main(args) == 1  # a failed run: status 1, after the whole grid ran
    out = capsys.readouterr().out
    by_arm = {
        json.loads(p.read_text())["arm"]: json.loads(p.read_text())
        for p in results.rglob("result.json")
    }
    assert by_arm["adam"]["status"] == "done"
    # Smoke budget: learning_starts 100, train_freq 50, 5 gradient steps per update. The first
    # update comes after step 150 (SB3 trains once num_timesteps > learning_starts); its 3rd
    # optimizer step writes NaN, so the 4th TD loss is NaN: diverged at step 150.
    assert by_arm["sgd_momentum"]["status"] == "diverged"
    assert by_arm["sgd_momentum"]["diverged_at_step"] == 150
    assert "TD loss is not finite at step 150" in by_arm["sgd_momentum"]["error"]
    assert by_arm["rmsprop_deepmind"]["status"] == "failed"
    assert by_arm["rmsprop_deepmind"]["error"].startswith("out of memory: OutOfMemoryError")
    assert by_arm["killed"]["status"] == "failed"
    assert "worker process died (signal 9" in by_arm["killed"]["error"]
    statuses = {r["arm"]: r["status"] for r in Store(results).rows()}
    assert statuses == {a: r["status"] for a, r in by_arm.items()}
    # The report counts the diverged run (runs 1, diverged 1) and keeps the failed ones apart.
    assert "runs: 1 diverged, 1 done, 2 failed" in out
    from suite.config import load_experiment
    from suite.report.build import summary_data

    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    experiment = load_experiment("quickstart", "smoke", overrides, 1)
    arms = {a["name"]: a for a in summary_data(experiment, Store(results))["arms"]}
    assert arms["sgd_momentum"]["n_diverged"] == 1 and arms["sgd_momentum"]["n_runs"] == 1
    assert arms["rmsprop_deepmind"]["n_failed"] == 1 and arms["killed"]["n_failed"] == 1


def test_check_finite_names_the_value_and_step():
    from suite.result import RunSpec
    from suite.run.context import Diverged, RunContext

    run = RunSpec("e", "a", 0, "smoke", "dqn", {}, {})
    import tempfile

    import torch

    with tempfile.TemporaryDirectory() as directory:
        ctx = RunContext(run, Path(directory), "cpu")
        ctx.check_finite(7, loss=1.0, weights=torch.ones(3))
        with pytest.raises(Diverged, match="loss_d is not finite at step 9") as caught:
            ctx.check_finite(9, loss_g=0.5, loss_d=float("inf"))
        assert caught.value.step == 9
        with pytest.raises(Diverged, match="weights"):
            ctx.check_finite(10, weights=torch.tensor([1.0, float("nan")]))
        ctx.close()


# --- full disk, unwritable results directory -------------------------------------------------


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_full_disk_while_registering_is_one_line_and_keeps_results(tmp_path, capsys, monkeypatch):
    results = tmp_path / "results"
    (results / "quickstart").mkdir(parents=True)
    (results / "quickstart" / "result.json").write_text('{"keep": true}')
    before = snapshot(results)
    from suite import store as store_module

    real_fsync = store_module.os.fsync

    def full(fd):
        real_fsync(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "fsync", full)
    code = main([*GRID, "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "No space left on device" in err and "config.json" in err
    after = snapshot(results)
    assert {k: v for k, v in after.items() if k in before} == before
    assert not [k for k in after if ".tmp" in k]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MiB tmpfs (root only): a real full disk and, remounted read-only, a real unwritable
    results directory."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_disk_and_read_only_results_keep_earlier_results(tiny_disk):
    results = tiny_disk / "results"
    small = ["--set", "task.buffer_size=1000"]  # a 50 kB replay buffer fits the disk
    arm = ["--seeds", "1", "--workers", "1"]
    command = [sys.executable, "-m", "suite", *GRID[:4], *arm, "--no-report"]
    first = subprocess.run(
        [*command, "--arms", "adam", "--results", str(results), *small],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr
    before = snapshot(results)
    # The default 100k-transition replay buffer (5 MB) does not fit: the run fails, clearly.
    full = subprocess.run(
        [*command, "--arms", "sgd_momentum", "--results", str(results)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert full.returncode in (1, 2), full.stdout + full.stderr
    assert "Traceback" not in full.stderr
    said = full.stdout + full.stderr
    assert "No space left on device" in said or "disk full" in said, said
    after = snapshot(results)
    # Every earlier file as it was (the index gained the new run's row; adam's is unchanged).
    kept = {k: v for k, v in before.items() if k != "index.sqlite"}
    assert {k: v for k, v in after.items() if k in kept} == kept
    import sqlite3

    index = sqlite3.connect(f"file:{results / 'index.sqlite'}?mode=ro", uri=True)
    assert dict(index.execute("SELECT arm, status FROM runs").fetchall())["adam"] == "done"
    index.close()
    # Read-only: one line, status 2, nothing changed.
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    frozen = snapshot(results)
    readonly = subprocess.run(
        [*command, "--arms", "adam,sgd_momentum", "--results", str(results)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert readonly.returncode == 2
    assert len(readonly.stderr.strip().splitlines()) == 1, readonly.stderr
    assert "not writable" in readonly.stderr and str(results) in readonly.stderr
    assert snapshot(results) == frozen


def test_results_path_that_is_a_file_is_one_line(tmp_path, capsys):
    results = tmp_path / "results"
    results.write_text("not a directory")
    code = main([*GRID, "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not writable" in err
    assert results.read_text() == "not a directory"


def wait_for(predicate, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_runs_stop_and_are_given_back_when_only_the_grid_process_is_killed(tmp_path):
    # SIGKILL of the `suite run` process alone (not its group): its runs, forked from a
    # forkserver that outlives it, must notice, stop, and leave their runs for the next command.
    results = tmp_path / "results"
    command = suite_command(
        results, "--set", "task.total_timesteps=500000", "--set", "task.eval_every=100000"
    )
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = Store(results).rows() if (results / "index.sqlite").exists() else []
        if sum(row["status"] == "running" for row in rows) == 2:
            break
        time.sleep(0.2)
    assert sum(row["status"] == "running" for row in rows) == 2, rows
    process.kill()
    process.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statuses = {row["status"] for row in Store(results).rows()}
        if statuses <= {"pending"}:
            break
        time.sleep(0.2)
    assert statuses == {"pending"}, "orphaned runs kept their claims (still training unseen?)"
    logs = [p.read_text() for p in results.rglob("log.txt")]
    assert logs and all("interrupted" in log for log in logs)
