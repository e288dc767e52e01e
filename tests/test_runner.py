"""The runner through the real CLI: resume, kill and resume, same seed same result, divergence
and failures recorded without stopping the grid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from suite.cli import main
from suite.store import Store

SMOKE = ["--budget", "smoke", "--seeds", "1", "--workers", "1", "--no-report"]


def suite(args: list[str], capsys=None) -> int:
    code = main(args)
    if capsys is not None:
        capsys.readouterr()
    return code


def results_of(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("result.json"))]


def test_second_identical_command_does_no_work(tmp_path, capsys):
    args = ["run", "quickstart", *SMOKE, "--arms", "adam", "--results", str(tmp_path)]
    assert suite(args) == 0
    first = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("result.json")}
    assert len(first) == 1
    capsys.readouterr()
    assert suite(args) == 0
    out = capsys.readouterr().out
    assert "1 of 1 runs already finished" in out
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("result.json")} == first


def test_same_seed_gives_identical_results(tmp_path):
    for name in ("a", "b"):
        assert (
            suite(
                [
                    "run",
                    "quickstart",
                    *SMOKE,
                    "--arms",
                    "rmsprop_deepmind",
                    "--results",
                    str(tmp_path / name),
                ]
            )
            == 0
        )
    first, second = results_of(tmp_path / "a"), results_of(tmp_path / "b")
    assert first[0]["curves"]["eval/return"] == second[0]["curves"]["eval/return"]
    assert first[0]["metrics"] == second[0]["metrics"]
    assert first[0]["run_id"] == second[0]["run_id"]


def test_killed_run_resumes_from_its_checkpoint(tmp_path):
    # A longer smoke run, killed (SIGKILL, whole process group) after its first checkpoint.
    args = [
        sys.executable,
        "-m",
        "suite",
        "run",
        "quickstart",
        *SMOKE,
        "--arms",
        "adam",
        "--set",
        "task.total_timesteps=4000",
        "--set",
        "task.eval_every=500",
        "--results",
        str(tmp_path),
    ]
    process = subprocess.Popen(
        args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.rglob("checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.rglob("checkpoint.pt")), "no checkpoint was written"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not list(tmp_path.rglob("result.json"))
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [result] = results_of(tmp_path)
    assert result["status"] == "done"
    log = next(tmp_path.rglob("log.txt")).read_text()
    assert "resumed from checkpoint.pt" in log
    steps = [step for step, _ in result["curves"]["eval/return"]]
    assert steps == sorted(set(steps)) and steps[-1] == 4000 and steps[0] == 500


def test_diverged_run_is_recorded_and_the_grid_goes_on(tmp_path, capsys):
    code = suite(
        [
            "run",
            "quickstart",
            "--budget",
            "smoke",
            "--seeds",
            "1",
            "--workers",
            "2",
            "--results",
            str(tmp_path),
            "--no-report",
            "--arms",
            "adam,sgd_momentum",
            "--set",
            "arms.sgd_momentum.q.optimizer=tests.helpers:NaNAfterSteps",
            "--set",
            "arms.sgd_momentum.q.kwargs={}",
        ],
        capsys,
    )
    assert code == 0
    by_arm = {r["arm"]: r for r in results_of(tmp_path)}
    assert by_arm["adam"]["status"] == "done"
    assert by_arm["sgd_momentum"]["status"] == "diverged"
    assert by_arm["sgd_momentum"]["diverged_at_step"] is not None
    statuses = {row["arm"]: row["status"] for row in Store(tmp_path).rows()}
    assert statuses == {"adam": "done", "sgd_momentum": "diverged"}
    # A diverged run is finished: running again does not redo it.
    assert (
        suite(
            [
                "run",
                "quickstart",
                "--budget",
                "smoke",
                "--seeds",
                "1",
                "--no-report",
                "--results",
                str(tmp_path),
                "--arms",
                "sgd_momentum",
                "--set",
                "arms.sgd_momentum.q.optimizer=tests.helpers:NaNAfterSteps",
                "--set",
                "arms.sgd_momentum.q.kwargs={}",
            ],
            capsys,
        )
        == 0
    )
    assert len(results_of(tmp_path)) == 2


def test_failed_run_is_recorded_with_its_error(tmp_path, capsys):
    code = suite(
        [
            "run",
            "quickstart",
            *SMOKE,
            "--arms",
            "sgd_momentum",
            "--results",
            str(tmp_path),
            "--set",
            "arms.sgd_momentum.q.optimizer=tests.helpers:FailsAtStep",
            "--set",
            "arms.sgd_momentum.q.kwargs={}",
        ],
        capsys,
    )
    assert code == 1
    [result] = results_of(tmp_path)
    assert result["status"] == "failed"
    assert "injected failure" in result["error"]


def test_result_records_provenance(tmp_path, capsys):
    assert (
        suite(["run", "quickstart", *SMOKE, "--arms", "adam", "--results", str(tmp_path)], capsys)
        == 0
    )
    [result] = results_of(tmp_path)
    assert result["environment"]["packages"]["torch"]
    assert result["environment"]["packages"]["stable-baselines3"]
    assert "cpu" in result["environment"]["hardware"]
    assert "commit" in result["environment"]["git"]
    assert result["wall_time_s"] > 0 and result["peak_rss_mb"] > 50
    assert result["optimizers"]["q"]["optimizer"] == "adam"
    run_dir = next(tmp_path.rglob("config.json")).parent
    assert json.loads((run_dir / "config.json").read_text())["run_id"] == result["run_id"]
