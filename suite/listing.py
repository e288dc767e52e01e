"""What ``suite list`` prints: experiments, optimizers, schedules, runs, claims."""

from __future__ import annotations

import inspect
from typing import Any


def experiments(args) -> list[dict[str, Any]]:
    from suite.config import CONFIG_DIR, experiment_names, read_yaml, run_command

    rows = []
    for name in experiment_names():
        path = CONFIG_DIR / f"{name}.yaml"
        raw = read_yaml(path)
        budgets = raw.get("budgets", {}) if isinstance(raw, dict) else {}
        rows.append(
            {
                "experiment": name,
                "trainer": raw.get("trainer"),
                "arms": ",".join(raw.get("arms", {})),
                "budgets": ",".join(budgets),
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
    from suite.optimizers import OPTIMIZERS, optimizer_class

    rows = []
    for name in OPTIMIZERS:
        cls = optimizer_class(name)
        rows.append(
            {
                "optimizer": name,
                "class": f"{cls.__module__}.{cls.__qualname__}",
                "kwargs": _signature(cls.__init__, {"self", "params", "lr", "modules"}),
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


def runs(args) -> list[dict[str, Any]]:
    from suite.store import Store

    keep = ("run_id", "experiment", "budget", "arm", "seed", "status", "path")
    return [{k: row[k] for k in keep} for row in Store(args.results).rows()]


def claims(args) -> list[dict[str, Any]]:
    """Every claim in configs/ with its experiment and latest verdict: the verdict at the
    largest budget (full, then quick, then smoke) that has results in ``--results``."""
    from suite.config import BUDGETS, CONFIG_DIR, experiment_names, load_experiment, read_yaml
    from suite.report import claim_outcomes, select_results
    from suite.store import Store

    store = Store(args.results)
    rows = []
    for name in experiment_names():
        raw = read_yaml(CONFIG_DIR / f"{name}.yaml")
        if not isinstance(raw, dict) or not raw.get("claims"):
            continue
        budgets = [b for b in reversed(BUDGETS) if store.rows(name, b)]
        budget = next(iter(budgets), None)
        try:
            experiment = load_experiment(name, budget or next(iter(raw["budgets"]), "quick"))
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
    "schedules": schedules,
    "runs": runs,
    "claims": claims,
}


def print_rows(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("(none)")
        return
    columns = list(rows[0])
    widths = {c: min(60, max(len(c), *(len(str(r[c])) for r in rows))) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c])[: widths[c]].ljust(widths[c]) for c in columns))
