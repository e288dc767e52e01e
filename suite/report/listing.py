"""What ``suite list`` prints: experiments, optimizers, specs, schedules, runs, claims."""

from __future__ import annotations

import hashlib
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

from suite.errors import ConfigError
from suite.report.render import terminal_width


def experiments(args) -> list[dict[str, Any]]:
    from suite.config import CONFIG_DIR, experiment_names, run_command
    from suite.schema import read_yaml

    rows = []
    for name in experiment_names():
        path = CONFIG_DIR / f"{name}.yaml"
        raw = read_yaml(path)
        budgets = raw.get("budgets", {}) if isinstance(raw, dict) else {}
        rows.append(
            {
                "experiment": name,
                "trainer": raw.get("trainer"),
                "arms": ", ".join(raw.get("arms", {})),
                "budgets": ", ".join(budgets),
                "command": run_command(path),
            }
        )
    return rows


def _signature(callable_, skip: set[str]) -> str:
    try:
        parameters = inspect.signature(callable_).parameters.values()
    except (TypeError, ValueError):
        return ""
    return ", ".join(str(p) for p in parameters if p.name not in skip)


def optimizers(args) -> list[dict[str, Any]]:
    """Every optimizer in the table and the Lookahead wrapper: class, source (paper and
    algorithm), the defaults the suite uses (the class signature) and how they differ from the
    paper or reference implementation."""
    from suite.optimizers import OPTIMIZERS, WRAPPERS, optimizer_class

    rows = []
    for name, row in OPTIMIZERS.items():
        rows.append(_optimizer_row(name, optimizer_class(name), row))
    for name, row in WRAPPERS.items():
        rows.append(_optimizer_row(f"{name} (wrapper)", row.cls(), row))
    return rows


# Parameters that choose a kernel or an API mode, not the algorithm: left out of `defaults`.
_NOT_SETTINGS = {
    "self",
    "params",
    "optimizer",
    "modules",
    "foreach",
    "maximize",
    "capturable",
    "differentiable",
    "fused",
}


def _optimizer_row(name: str, cls: type, row) -> dict[str, Any]:
    return {
        "optimizer": name,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "source": row.source,
        "defaults": _signature(cls.__init__, _NOT_SETTINGS),
        "differs": row.note or "-",
    }


def _leading_comment(path) -> str:
    """A YAML file's leading comment block, joined into one line (its citation)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def specs(args) -> list[dict[str, Any]]:
    """The named optimizer specs in configs/optimizers/ (an arm's role may name one) with the
    citation of their leading comment."""
    from suite.config import OPTIMIZER_SET_DIR
    from suite.schema import read_yaml

    rows = []
    for path in sorted(OPTIMIZER_SET_DIR.glob("*.yaml")):
        raw = read_yaml(path)
        raw = raw if isinstance(raw, dict) else {}
        extras = [k for k in ("schedule", "clip_grad_norm", "lookahead") if raw.get(k)]
        rows.append(
            {
                "spec": path.stem,
                "optimizer": raw.get("optimizer"),
                "lr": raw.get("lr"),
                "kwargs": raw.get("kwargs", {}),
                "also": ", ".join(f"{k}: {raw[k]}" for k in extras) or "-",
                "source": _leading_comment(path),
            }
        )
    return rows


def schedules(args) -> list[dict[str, Any]]:
    from suite.optimizers import SCHEDULES

    return [
        {
            "schedule": name,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "kwargs": _signature(cls.__init__, {"self", "optimizer", "last_epoch", "verbose"}),
        }
        for name, cls in SCHEDULES.items()
    ]


def spec_hash(task: dict[str, Any], optimizers: dict[str, Any]) -> str:
    """8 hex digits for an arm's resolved settings (suite.result.settings_identity: the seed and
    speed-only settings left out): runs of one arm name with different settings differ here."""
    from suite.result import settings_identity

    return hashlib.sha256(settings_identity(task, optimizers).encode()).hexdigest()[:8]


def _run_spec_hash(root: Path, relative: str) -> str:
    try:
        config = json.loads((root / relative / "config.json").read_text(encoding="utf-8"))
        return spec_hash(config["task"], config["optimizers"])
    except (OSError, ValueError, KeyError):
        return "-"


def runs(args) -> list[dict[str, Any]]:
    from suite.store import Store
    from suite.tuning import run_kind

    store = Store(args.results)
    keep = ("run_id", "experiment", "budget", "arm", "seed", "status")
    given = getattr(args, "experiment", None)
    # An experiment is named after its file: `list runs path/to/mine.yaml` lists mine's runs.
    name = Path(given).stem if given and Path(given).suffix in (".yaml", ".yml") else given
    rows = store.rows(name)
    if name and not rows:
        stored = sorted({row["experiment"] for row in store.rows()})
        raise ConfigError(f"no runs of {name!r} in {store.root}", key="list runs", choices=stored)
    return [
        {
            **{k: row[k] for k in keep},
            "tuning": run_kind(row["arm"]) or "-",  # trial / tuned (suite/tuning.py)
            "spec": _run_spec_hash(Path(store.root), row["path"]),
            "path": row["path"],
        }
        for row in rows
    ]


def claims(args) -> list[dict[str, Any]]:
    """Every claim in configs/ (or of the one experiment or file given) with its experiment and
    latest verdict: the verdict at the largest budget (full, then quick, then smoke) that has
    results in ``--results``."""
    from suite.config import (
        BUDGETS,
        experiment_names,
        find_experiment,
        load_experiment,
        select_results,
    )
    from suite.report.build import claim_outcomes
    from suite.schema import read_yaml
    from suite.store import Store

    store = Store(args.results)
    rows = []
    given = getattr(args, "experiment", None)
    for target in [given] if given else experiment_names():
        path = find_experiment(target)
        name = path.stem
        raw = read_yaml(path)
        if not isinstance(raw, dict) or not raw.get("claims"):
            continue
        budgets = [b for b in reversed(BUDGETS) if store.rows(name, b)]
        budget = next(iter(budgets), None)
        try:
            experiment = load_experiment(target, budget or next(iter(raw["budgets"]), "quick"))
        except Exception as error:  # noqa: BLE001 - one broken experiment must not hide the rest
            rows.append(
                {
                    "claim": "-",
                    "experiment": name,
                    "budget": "-",
                    "n": 0,
                    "verdict": f"error: {error}",
                    "statement": "",
                }
            )
            continue
        results = select_results(experiment, store) if budget else []
        for outcome in claim_outcomes(experiment, results):
            rows.append(
                {
                    "claim": outcome.claim.id,
                    "experiment": name,
                    "budget": budget or "-",
                    "n": outcome.n,
                    "verdict": outcome.verdict,
                    "statement": outcome.claim.statement,
                }
            )
    return rows


LISTINGS = {
    "experiments": experiments,
    "optimizers": optimizers,
    "specs": specs,
    "schedules": schedules,
    "runs": runs,
    "claims": claims,
}


GAP = "  "
MIN_COLUMN = 12  # a column is never squeezed below this many characters


def column_widths(
    natural: list[int], width: int | None, least: list[int] | None = None
) -> list[int]:
    """Each column's width: its natural one, the widest shrunk first until the row fits, never
    below ``least`` (its longest word, so names are not cut) nor MIN_COLUMN."""
    widths = list(natural)
    if width is None:
        return widths
    floor = [
        min(n, max(MIN_COLUMN, w))
        for n, w in zip(natural, least or [0] * len(natural), strict=True)
    ]
    room = width - len(GAP) * (len(widths) - 1)
    while sum(widths) > room:
        shrinkable = [i for i in range(len(widths)) if widths[i] > floor[i]]
        if not shrinkable:
            break  # too many columns for this terminal: let the lines run on
        widths[max(shrinkable, key=widths.__getitem__)] -= 1
    return widths


def _longest_word(text: str) -> int:
    return max((len(w) + 1 for w in text.replace(", ", " ").split()), default=0)


def _cell_lines(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``: a list ("a: int = 1, b: float = 2") breaks
    between its items, so "weight_decay: float = 0" stays whole; other text between words."""
    if len(text) <= width:
        return [text]
    items = text.split(", ")
    if not all(": " in item or "=" in item for item in items):  # prose: break between words
        return textwrap.wrap(text, width, break_on_hyphens=False) or [""]
    lines: list[str] = []
    for item in items:
        joined = f"{lines[-1]}, {item}" if lines else item
        if lines and len(joined) + 1 <= width:
            lines[-1] = joined
        elif len(item) + 1 <= width:
            if lines:
                lines[-1] += ","
            lines.append(item)
        else:
            if lines:
                lines[-1] += ","
            lines += textwrap.wrap(item, width, break_on_hyphens=False)
    return lines or [""]


def format_rows(rows: list[dict[str, Any]], width: int | None = None) -> list[str]:
    """A table whose cells wrap at word boundaries to fit ``width`` (None: never wrap)."""
    columns = list(rows[0])
    natural = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    least = [max(_longest_word(str(r[c])) for r in rows) for c in columns]
    widths = column_widths(natural, width, least)
    lines = [GAP.join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    for row in rows:
        cells = [_cell_lines(str(row[c]), w) for c, w in zip(columns, widths, strict=True)]
        for i in range(max(len(cell) for cell in cells)):
            parts = [
                (cell[i] if i < len(cell) else "").ljust(w)
                for cell, w in zip(cells, widths, strict=True)
            ]
            lines.append(GAP.join(parts).rstrip())
    return lines


def print_rows(rows: list[dict[str, Any]], width: int | None = None) -> None:
    """The rows as a table; long cells (sources, notes, signatures) wrap at word or item
    boundaries to the terminal's width, whole on a pipe."""
    if not rows:
        print("(none)")
        return
    for line in format_rows(rows, width if width is not None else terminal_width()):
        print(line)
