"""Committed result records: the finished runs behind every verdict, in the repository.

``records/EXPERIMENT/BUDGET/ARM.jsonl`` holds one finished ``Result`` a line (done, diverged or
failed; checkpoints and image artifacts are not kept), sorted by seed and run id, so a clone can
re-judge every verdict (``python -m suite verdicts``) and a grid on a new machine resumes from
them (``python -m suite records load`` marks them finished in a results store).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from suite.errors import ConfigError, ResultsError
from suite.result import FINISHED, Result
from suite.store import Store, write_atomic

RECORDED = (*FINISHED, "failed")
# Curve values are kept to 7 significant digits (plots only; metrics are kept exact).
CURVE_DIGITS = 7


def _compact(result: Result) -> dict[str, Any]:
    data = result.to_dict()
    data["artifacts"] = {}  # image files are not committed
    data["curves"] = {
        name: [[step, float(f"{value:.{CURVE_DIGITS}g}")] for step, value in points]
        for name, points in result.curves.items()
    }
    return data


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=True)


def arm_file(root: Path, experiment: str, budget: str, arm: str) -> Path:
    return Path(root) / experiment / budget / f"{arm}.jsonl"


def read_file(path: Path) -> list[Result]:
    """The results of one records file; a malformed line is an error naming file and line."""
    results = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            results.append(Result.from_dict(json.loads(line)))
        except (ValueError, TypeError) as error:
            raise ResultsError(f"{path}:{number}: unreadable record: {error}") from None
    return results


def read_records(root: Path, experiment: str | None = None) -> list[Result]:
    """Every committed result under ``root`` (of one experiment, when named)."""
    pattern = f"{experiment}/*/*.jsonl" if experiment else "*/*/*.jsonl"
    return [r for path in sorted(Path(root).glob(pattern)) for r in read_file(path)]


def save(store: Store, root: Path, experiment: str | None = None) -> dict[str, int]:
    """Write the store's finished results into ``root`` (merged by run id with what is there).

    :returns: per records file, the number of records it holds now.
    """
    grouped: dict[Path, dict[str, dict[str, Any]]] = {}
    for row in store.rows(experiment):
        if row["status"] not in RECORDED:
            continue
        result = store.load_result(Path(row["path"]))
        if result is None or result.status not in RECORDED:
            continue
        path = arm_file(root, result.experiment, result.budget, result.arm)
        if path not in grouped:
            old = read_file(path) if path.is_file() else []
            grouped[path] = {r.run_id: _compact(r) for r in old}
        grouped[path][result.run_id] = _compact(result)
    counts = {}
    for path, by_id in grouped.items():
        lines = sorted(by_id.values(), key=lambda d: (d["seed"], d["run_id"]))
        text = "".join(_line(d) + "\n" for d in lines)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text.encode())
        counts[str(path)] = len(lines)
    return counts


def load(store: Store, results: Iterable[Result]) -> int:
    """Put committed results into ``store`` as finished runs; runs it already finished are kept.

    :returns: how many results were added.
    """
    added = 0
    done = {row["run_id"] for row in store.rows() if row["status"] in RECORDED}
    for result in results:
        if result.run_id in done:
            continue
        spec = result.run_spec()
        if spec.run_id != result.run_id:
            raise ConfigError(
                f"record {result.experiment}/{result.budget}/{result.arm} seed {result.seed}: "
                f"its run id {result.run_id} is not its config's ({spec.run_id})",
                key="run_id",
            )
        store.register([spec])
        store.save_result(spec, result)
        store.reconcile([spec])
        done.add(result.run_id)
        added += 1
    return added
