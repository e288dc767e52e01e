"""Progress of a grid: a live view on a terminal, quiet plain lines otherwise.

The live view shows the grid (done / running / failed / pending, ETA) and one row per running
run (step, total, latest metric). Off a terminal (CI, pipes, logs) it prints one line when a run
finishes and nothing else.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _RunState:
    label: str
    step: int = 0
    total: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


class Display:
    """Plain display: a line per finished run."""

    def __init__(self, stream=None, notes: dict[str, str] | None = None):
        """:param notes: arm -> what ``--set`` changed in it, shown beside its runs' labels."""
        self.stream = stream or sys.stdout
        self.notes = notes or {}
        self.total = self.done = self.failed = self.diverged = 0
        self.running: dict[str, _RunState] = {}
        self.labels: dict[str, str] = {}
        self.arms: dict[str, str] = {}
        self.started = time.monotonic()
        self.durations: list[float] = []

    def begin(self, runs, done: int) -> None:
        self.total, self.done = len(runs), done
        self.arms = {r.run_id: r.arm for r in runs}
        self.labels = {r.run_id: self._label(r.label, r.arm) for r in runs}
        if done:
            self._print(f"{done} of {len(runs)} runs already finished; running the rest")

    def _label(self, label: str, arm: str) -> str:
        return f"{label} ({self.notes[arm]})" if self.notes.get(arm) else label

    def event(self, kind: str, run_id: str, payload: dict[str, Any]) -> None:
        if kind == "start":
            label = payload.get("label", self.labels.get(run_id, run_id))
            self.running[run_id] = _RunState(self._label(label, self.arms.get(run_id, "")))
        elif kind == "resumed":
            label = self.labels.get(run_id, run_id)
            self._print(f"{label}: resumed from {payload.get('checkpoint', 'its checkpoint')}")
        elif kind == "progress" and run_id in self.running:
            state = self.running[run_id]
            state.step = payload.get("step", state.step)
            state.total = payload.get("total", state.total)
            state.metrics.update(payload.get("metrics", {}))
        elif kind == "end":
            state = self.running.pop(run_id, _RunState(self.labels.get(run_id, run_id)))
            self.durations.append(time.monotonic() - state.started)
            self._finished(state.label, payload)

    def _finished(self, label: str, payload: dict[str, Any]) -> None:
        status = payload["status"]
        self.done += status in ("done", "diverged")
        self.failed += status == "failed"
        self.diverged += status == "diverged"
        shown = ", ".join(f"{k}={v:.4g}" for k, v in list(payload["metrics"].items())[:3])
        detail = payload.get("error") if status != "done" else shown
        self._print(
            f"[{self.done + self.failed}/{self.total}] {label} {status} "
            f"({payload['wall_time_s']:.1f} s) {detail or ''}".rstrip()
        )

    def crashed(self, run, exitcode: int) -> None:
        self.running.pop(run.run_id, None)
        self.failed += 1
        self._print(
            f"[{self.done + self.failed}/{self.total}] {run.label} failed "
            f"(worker died, exit code {exitcode})"
        )

    def eta_s(self) -> float | None:
        remaining = self.total - self.done - self.failed
        if not self.durations or remaining <= 0:
            return None
        mean = sum(self.durations) / len(self.durations)
        workers = max(1, len(self.running))
        return remaining * mean / workers

    def refresh(self) -> None:
        pass

    def end(self) -> None:
        pass

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class LiveDisplay(Display):
    """Rich live view for terminals."""

    def __init__(self, notes: dict[str, str] | None = None):
        super().__init__(notes=notes)
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=True)

    def begin(self, runs, done: int) -> None:
        super().begin(runs, done)
        self.live.start()

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def refresh(self) -> None:
        self.live.update(self._render())

    def _render(self):
        from rich.table import Table

        pending = self.total - self.done - self.failed - len(self.running)
        eta = self.eta_s()
        title = (
            f"grid: {self.done} done ({self.diverged} diverged), {len(self.running)} running,"
            f" {self.failed} failed, {pending} pending"
            + (f" - ETA {_duration(eta)}" if eta is not None else "")
        )
        table = Table(title=title, title_justify="left", expand=False)
        for column in ("run", "step", "progress", "elapsed", "latest"):
            table.add_column(column)
        for state in self.running.values():
            fraction = state.step / state.total if state.total else 0.0
            latest = ", ".join(f"{k}={v:.4g}" for k, v in list(state.metrics.items())[:2])
            table.add_row(
                state.label,
                f"{state.step}/{state.total or '?'}",
                f"{100 * fraction:5.1f}%",
                _duration(time.monotonic() - state.started),
                latest,
            )
        return table

    def end(self) -> None:
        self.live.stop()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def make_display(live: bool | None = None, notes: dict[str, str] | None = None) -> Display:
    live = sys.stdout.isatty() if live is None else live
    return LiveDisplay(notes=notes) if live else Display(notes=notes)
