"""The run context: everything a trainer gets besides its config and optimizer specs.

What a trainer gets of a run: ``RunContext`` (seed, device, run directory, curves, progress,
divergence checks, checkpoints, the result record), ``Diverged``, and the global random
generators' state as checkpoint data. What else of suite/ a trainer may import is listed once,
in tests/test_layout.py (``TRAINER_MAY_IMPORT``), which checks it.
"""

from __future__ import annotations

import io
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from suite.result import Result, RunSpec
from suite.store import write_atomic

PROGRESS_EVERY_S = 0.5


class Diverged(Exception):
    """A loss or parameter became NaN/inf: the run is recorded as diverged at ``step``."""

    def __init__(self, step: int, what: str):
        super().__init__(f"{what} is not finite at step {step}")
        self.step, self.what = step, what


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
        watch: Callable[[], None] | None = None,
    ):
        """
        :param events: a queue for the live display's events, or None.
        :param watch: called at most every PROGRESS_EVERY_S from ``progress``: the worker's
            liveness duties (heartbeat, stopping when the grid is gone; suite/run/worker.py).
        """
        self.run, self.run_dir, self.device, self.seed = run, run_dir, device, run.seed
        self.curves: dict[str, list[list[float]]] = {}
        self.saved_rng: dict[str, Any] | None = None
        self.elapsed_before_s = 0.0
        self.started = time.perf_counter()
        self._events, self._watch = events, watch
        # The run's checkpoints and the files they name (saved or loaded here): drop_checkpoint.
        self.checkpoints: set[str] = set()
        self.checkpoint_files: set[str] = set()
        self._last_progress = 0.0
        self._log = open(run_dir / "log.txt", "a", encoding="utf-8")  # noqa: SIM115

    # --- recording ---------------------------------------------------------------------------

    def record(self, step: int, metrics: dict[str, float]) -> None:
        """Append ``metrics`` at ``step`` to the curves, the log and the live display."""
        for name, value in metrics.items():
            self.curves.setdefault(name, []).append([int(step), float(value)])
        self.log(f"step {step}: " + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items()))
        self.emit("progress", step=int(step), metrics={k: float(v) for k, v in metrics.items()})

    def progress(self, step: int, total: int) -> None:
        """Tell the display how far the run is (rate-limited, cheap to call every step)."""
        now = time.perf_counter()
        if now - self._last_progress < PROGRESS_EVERY_S:
            return  # the common case, every training step: one clock read
        self._last_progress = now
        self.emit("progress", step=int(step), total=int(total))
        if self._watch is not None:
            self._watch()

    def check_finite(self, step: int, **values: float) -> None:
        """Raise Diverged if any named value (a loss, a parameter norm) is NaN or inf."""
        for name, value in values.items():
            if not _finite(value):
                raise Diverged(step, name)

    def log(self, message: str) -> None:
        self._log.write(f"{time.strftime('%H:%M:%S')} {message}\n")
        self._log.flush()

    def emit(self, kind: str, **payload: Any) -> None:
        """Send an event about this run to the live display (suite/run/display.py)."""
        if self._events is not None:
            self._events.put((kind, self.run.run_id, payload))

    # --- checkpoints -------------------------------------------------------------------------

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + time.perf_counter() - self.started

    def save_checkpoint(
        self,
        state: dict[str, Any],
        name: str = "checkpoint.pt",
        rng: dict | None = None,
        files: tuple[str, ...] = (),
    ) -> None:
        """Save ``state`` (tensors, numbers, strings, lists, dicts) with the curves and the
        global random generators' states (see ``restore_rng``), atomically.

        :param rng: the generator states to save instead of this process's (a stack of seeds
            saves, for each seed, the states its lone run would have: gans/stacked.py).
        :param files: the files in the run directory this checkpoint needs besides itself
            (written before it: a model, a replay buffer), dropped with it (drop_checkpoint).
        """
        import torch

        saved = {
            "state": state,
            "curves": self.curves,
            "elapsed_s": self.elapsed_s(),
            "rng": rng if rng is not None else rng_state(),
            "files": list(files),
        }
        buffer = io.BytesIO()
        torch.save(saved, buffer)
        write_atomic(self.run_dir / name, buffer.getvalue())
        self.checkpoints.add(name)
        self.checkpoint_files.update(files)

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
        self.checkpoints.add(name)
        self.checkpoint_files.update(saved.get("files", ()))
        self.log(f"resumed from {name}")
        self.emit("resumed", checkpoint=name)
        return saved["state"]

    def drop_checkpoint(self) -> None:
        """Remove the run's checkpoint and its files: a finished run is never resumed, and a
        replay buffer costs tens of MB per seed (``suite run --keep-checkpoints`` keeps them).
        The checkpoint goes first, so a kill in between never leaves it naming a missing file."""
        for name in [*sorted(self.checkpoints), *sorted(self.checkpoint_files)]:
            (self.run_dir / name).unlink(missing_ok=True)
        self.checkpoints, self.checkpoint_files = set(), set()

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
    import torch

    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return math.isfinite(float(value))
