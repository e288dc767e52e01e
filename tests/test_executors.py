"""``--executor ray`` on a local Ray instance (127.0.0.1): results land in the local store, a
second command does no work, shipped run directories arrive whole, and a worker that dies is
retried (or, out of retries, recorded as failed while the grid goes on)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'suite[ray]')")

from suite.cli import main  # noqa: E402
from suite.config import expand, load_experiment  # noqa: E402
from suite.run.display import Display  # noqa: E402
from suite.run.ray import (  # noqa: E402
    pack_directory,
    run_grid_ray,
    unpack_directory,
    use_callers_priority,
)
from suite.store import Store  # noqa: E402

# The quickstart's smoke budget, shortened: one evaluation, at the end.
SHORT = ["task.total_timesteps=300", "task.eval_every=300"]


class ExitOnce(torch.optim.SGD):
    """SGD whose worker process dies at its first step unless ``marker`` exists (it creates it):
    the first attempt of a run crashes, the retry trains normally."""

    def __init__(self, params, lr=0.01, marker: str = ""):
        super().__init__(params, lr=lr)
        self.marker = marker

    def step(self, closure=None):
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return super().step(closure)


class ExitAlways(torch.optim.SGD):
    """SGD whose worker process dies at its first step, on every attempt."""

    def step(self, closure=None):
        os._exit(1)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # One local instance for the module (starting Ray costs seconds); the executor uses a Ray
    # that is already initialized as it is; its workers run at the test's priority, as connect()
    # starts them (not at Ray's nice 15, which starves them beside any other load).
    use_callers_priority()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    yield
    ray.shutdown()


def test_workers_of_a_local_instance_run_at_the_callers_priority():
    @ray.remote(max_calls=1)
    def niceness() -> int:
        return os.nice(0)

    assert ray.get(niceness.remote()) == os.nice(0)


def statuses(root: Path) -> dict[str, str]:
    return {row["arm"] + f"/{row['seed']}": row["status"] for row in Store(root).rows()}


def test_ray_grid_lands_in_the_local_store_and_resumes(tmp_path, capsys):
    args = ["run", "quickstart", "--budget", "smoke", "--arms", "adam", "--no-report"]
    args += [f"--set={s}" for s in SHORT]
    ray_args = [*args, "--seeds", "2", "--executor", "ray", "--workers", "2"]
    assert main([*ray_args, "--results", str(tmp_path / "ray")]) == 0
    assert statuses(tmp_path / "ray") == {"adam/0": "done", "adam/1": "done"}
    results = sorted((tmp_path / "ray").rglob("result.json"))
    assert len(results) == 2
    assert all((p.parent / "log.txt").exists() for p in results)
    first = {p: p.stat().st_mtime_ns for p in results}
    capsys.readouterr()

    # Same command again: everything is finished, nothing runs.
    assert main([*ray_args, "--results", str(tmp_path / "ray")]) == 0
    assert "2 of 2 runs already finished" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in results} == first

    # Seed 0 on Ray is the run the local runner trains: same per-run function, same numbers.
    local_args = [*args, "--seeds", "1", "--workers", "1", "--results", str(tmp_path / "local")]
    assert main(local_args) == 0
    (local,) = [json.loads(p.read_text()) for p in (tmp_path / "local").rglob("result.json")]
    remote = json.loads(next(p for p in results if "/seed0-" in str(p)).read_text())
    assert remote["run_id"] == local["run_id"]
    assert remote["metrics"] == local["metrics"]
    assert remote["curves"]["eval/return"] == local["curves"]["eval/return"]


def test_shipped_run_directory_arrives_whole(tmp_path):
    # A worker that does not see the results directory trains in scratch and ships it back.
    experiment = load_experiment("quickstart", "smoke", SHORT, seeds=1, arms=["adam"])
    runs = expand(experiment)
    store = Store(tmp_path)
    counts = run_grid_ray(runs, store, "cpu", 1, Display(io.StringIO()), force_ship=True)
    assert counts == {"done": 1}
    run_dir = store.run_dir(runs[0])
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "log.txt", "result.json"} <= names
    assert "step 300" in (run_dir / "log.txt").read_text()
    assert json.loads((run_dir / "result.json").read_text())["status"] == "done"
    assert not list(tmp_path.glob(".ray-driver-*")), "the driver's token file is left behind"


def test_dead_worker_is_retried_and_out_of_retries_is_recorded_failed(tmp_path):
    marker = tmp_path / "crashed-once"
    overrides = [
        *SHORT,
        "arms={once: {q: {optimizer: 'tests.test_executors:ExitOnce', lr: 0.01,"
        f" kwargs: {{marker: '{marker}'}}}}}},"
        " always: {q: {optimizer: 'tests.test_executors:ExitAlways', lr: 0.01}}}",
    ]
    experiment = load_experiment("quickstart", "smoke", overrides, seeds=1)
    store = Store(tmp_path / "results")
    output = io.StringIO()
    counts = run_grid_ray(expand(experiment), store, "cpu", 1, Display(output), max_retries=1)
    assert marker.exists(), "the first attempt never crashed"
    assert counts == {"done": 1, "failed": 1}
    assert statuses(tmp_path / "results") == {"once/0": "done", "always/0": "failed"}
    (failed,) = [r for r in store.results("quickstart") if r.status == "failed"]
    assert "Ray worker died (1 retries)" in failed.error
    assert "always/seed0 failed" in output.getvalue()


def test_pack_and_unpack_round_trip(tmp_path):
    source = tmp_path / "a"
    (source / "sub").mkdir(parents=True)
    (source / "x.txt").write_text("x")
    (source / "sub" / "y.bin").write_bytes(b"\0\1")
    (source / ".tmp").write_text("skipped: half-written temporary files stay behind")
    unpack_directory(pack_directory(source), tmp_path / "b")
    assert (tmp_path / "b" / "x.txt").read_text() == "x"
    assert (tmp_path / "b" / "sub" / "y.bin").read_bytes() == b"\0\1"
    assert not (tmp_path / "b" / ".tmp").exists()
    assert pack_directory(tmp_path / "missing") == pack_directory(tmp_path / "empty-too")
    # A shipped run directory replaces the driver's copy: a checkpoint its finished run dropped
    # goes, hidden temporary files stay.
    (tmp_path / "b" / "checkpoint.pt").write_bytes(b"stale")
    (tmp_path / "b" / ".result.json.7.tmp").write_bytes(b"a write in flight")
    unpack_directory(pack_directory(source), tmp_path / "b", replace=True)
    kept = sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*"))
    assert kept == [".result.json.7.tmp", "sub", "sub/y.bin", "x.txt"]
